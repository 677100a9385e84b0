"""bf16/fp16 elementwise arithmetic, comparisons and reductions on values, as the GPU computes them.

Raw interpreter (SPEC section 5): bf16 tensors are uint16 bit patterns and numpy computes on the
bits (x*x of bf16 1.539 gives -9.4e-31; comparisons order the bits, so every negative is "larger").
Here a bf16/fp16 operation widens its operands exactly to fp32, computes there and rounds the
result once to nearest even. For + - * / that equals the correctly rounded bf16/fp16 result (24 >=
2p + 2 bits: double rounding is innocuous). tl.exp, tl.log, tl.sqrt, ... accept only fp32/fp64
(triton checks, as the compiler does) and keep the raw interpreter's numpy functions (bundled
kernels unchanged); libdevice.py evaluates the libdevice forms.
fma is one rounding of the exact x*y + z in every float type (fma.rn), where raw rounds twice.
Comparisons follow fcmp's ordered/unordered NaN rules (raw: numpy's, wrong for ONE and U*).
minnum/maxnum (tl.minimum/tl.maximum without propagate_nan) return the non-NaN operand (min.f32).
A bf16/fp16 tl.sum adds in a pairwise tree rounding each addition to the type, like the GPU's
per-thread then butterfly reduction rounds each add (the order differs; the magnitude matches).
"""
from __future__ import annotations

import numpy as np
import triton.language as tl
from triton.runtime import interpreter as _interp

from kernelprop.faithful.rounding import exact_sum_round_to_odd
from kernelprop.faithful.values import is_low_precision, storage, values

TensorHandle = _interp.TensorHandle
RAW: dict = {}

BINARY = {"create_fadd": np.add, "create_fsub": np.subtract, "create_fmul": np.multiply,
          "create_fdiv": np.divide, "create_precise_divf": np.divide, "create_frem": np.fmod}


def _unordered(op):
    return lambda a, b: op(a, b) | np.isnan(a) | np.isnan(b)


# ordered predicates are false on NaN (numpy's comparisons already are, but != is true on NaN);
# unordered ones are true on NaN (numpy's are not): fcmp's IEEE predicates, for every float type
COMPARE = {"create_fcmpOLT": np.less, "create_fcmpOGT": np.greater, "create_fcmpOLE": np.less_equal,
           "create_fcmpOGE": np.greater_equal, "create_fcmpOEQ": np.equal,
           "create_fcmpONE": lambda a, b: np.not_equal(a, b) & ~np.isnan(a) & ~np.isnan(b),
           "create_fcmpULT": _unordered(np.less), "create_fcmpUGT": _unordered(np.greater),
           "create_fcmpULE": _unordered(np.less_equal), "create_fcmpUGE": _unordered(np.greater_equal),
           "create_fcmpUEQ": _unordered(np.equal), "create_fcmpUNE": np.not_equal}
MIN_MAX = {"create_minimumf": np.minimum, "create_maximumf": np.maximum,
           "create_minnumf": np.fmin, "create_maxnumf": np.fmax}


def _binary(name, op):
    def create(self, lhs, rhs):
        ty = lhs.dtype.scalar
        if not is_low_precision(ty):
            return RAW[name](self, lhs, rhs)
        with np.errstate(all="ignore"):
            return TensorHandle(storage(op(values(lhs.data, ty), values(rhs.data, ty)), ty), ty)
    return create


def _compare(name, op):
    def create(self, lhs, rhs):
        ty = lhs.dtype.scalar
        return TensorHandle(op(values(lhs.data, ty), values(rhs.data, ty)), tl.int1)  # raw: lhs's type
    return create


def _min_max(op):
    def create(self, lhs, rhs):
        ty = lhs.dtype.scalar
        return TensorHandle(storage(op(values(lhs.data, ty), values(rhs.data, ty)), ty), ty)
    return create


def create_fma(self, x, y, z):
    ty = z.dtype.scalar
    if not ty.is_floating() or ty.primitive_bitwidth == 64:
        return RAW["create_fma"](self, x, y, z)
    wide = [values(h.data, h.dtype.scalar).astype(np.float64) for h in (x, y, z)]
    with np.errstate(all="ignore"):
        return TensorHandle(storage(exact_sum_round_to_odd(wide[0] * wide[1], wide[2]), ty), ty)


def create_clampf(self, arg, lo, hi, propagate_nans):
    ty = arg.dtype.scalar
    if not is_low_precision(ty):
        return RAW["create_clampf"](self, arg, lo, hi, propagate_nans)
    clipped = np.clip(values(arg.data, ty), values(lo.data, ty), values(hi.data, ty))
    return TensorHandle(storage(clipped, ty), ty)


def tree_sum(x: np.ndarray, axis: int, ty) -> np.ndarray:
    """Sum bf16/fp16 values (fp32 array) along axis, pairwise, each addition rounded to ty."""
    x = np.moveaxis(x, axis, 0)
    while x.shape[0] > 1:
        if x.shape[0] % 2:
            x = np.concatenate([x, np.zeros_like(x[:1])])
        half = x.shape[0] // 2
        with np.errstate(all="ignore"):
            x = values(storage(x[:half] + x[half:], ty), ty)
    return x[0]


def reduce_sum(self, input):
    ty = input.dtype.scalar
    if not is_low_precision(ty):
        return RAW["sum"](self, input)
    data = values(input.handle.data, ty)
    axis = self.axis
    if axis is None:
        data, axis = data.reshape(-1), 0
    total = tree_sum(data, axis, ty)
    if self.keep_dims:
        total = np.expand_dims(total, axis) if self.axis is not None else total.reshape((1,) * input.handle.data.ndim)
    # storage() returns at least 1-d; a full reduction must stay a scalar, as in the raw interpreter
    return self.to_tensor(storage(np.asarray(total, dtype=np.float32), ty).reshape(np.shape(total)),
                          input.dtype)


def reduce_min_max(self, input, val_reduce_op, idx_reduce_op=None):
    tensor = input[0] if isinstance(input, tuple) else input
    ty = tensor.dtype.scalar
    if not is_low_precision(ty):
        return RAW["min_max"](self, input, val_reduce_op, idx_reduce_op)
    data = values(tensor.handle.data, ty)
    val = idx = None
    if val_reduce_op:
        reduced = val_reduce_op(data, axis=self.axis, keepdims=self.keep_dims)
        val = self.to_tensor(storage(np.asarray(reduced, dtype=np.float32), ty).reshape(np.shape(reduced)),
                             tensor.dtype)
    if idx_reduce_op:
        idx = self.to_tensor(idx_reduce_op(data, axis=self.axis, keepdims=self.keep_dims), tl.int32)
    if val is not None and idx is not None:
        return val, idx
    return val if val is not None else idx


def install(patcher) -> None:
    builder = _interp.InterpreterBuilder
    for table, make in ((BINARY, _binary), (COMPARE, _compare)):
        for name, op in table.items():
            RAW[name] = getattr(builder, name)
            patcher.set_attr(builder, name, make(name, op))
    for name, op in MIN_MAX.items():
        patcher.set_attr(builder, name, _min_max(op))
    for name in ("create_fma", "create_clampf"):
        RAW[name] = getattr(builder, name)
    patcher.set_attr(builder, "create_fma", create_fma)
    patcher.set_attr(builder, "create_clampf", create_clampf)
    RAW["sum"] = _interp.ReduceOps.sum
    RAW["min_max"] = _interp.ReduceOps.min_max
    patcher.set_attr(_interp.ReduceOps, "sum", reduce_sum)
    patcher.set_attr(_interp.ReduceOps, "min_max", reduce_min_max)
