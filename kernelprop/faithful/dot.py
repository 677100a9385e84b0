"""tl.dot as the tensor cores compute it, where the interpreter can say so.

Raw interpreter (SPEC section 5): bf16 operands are multiplied as their uint16 bit patterns.
Here bf16/fp16 operands are widened exactly to fp32; their products are exact in fp32 (8 + 8 and
11 + 11 significant bits <= 24) and are accumulated in fp32 (numpy's float32 matmul), then the
accumulator operand is added: D = A.B + C with fp32 accumulation, the result in the accumulator's
type (an fp16 accumulator: the fp32 sum rounded once). The summation order is numpy's, not the
tensor cores' (SPEC section 5: their alignment truncation is not modelled); every element is within
gamma_K * sum|a_k b_k| of the exact dot (tests/test_faithful_conformance.py checks the bound).
fp32 operands with input_precision "ieee" are the raw fp32 matmul. fp32 operands with "tf32" or
"tf32x3" (Triton's default on NVIDIA) round their operands on the GPU in a way not modelled here,
and fp8 operands have no model: both raise CannotCheckOnBackend."""
from __future__ import annotations

import numpy as np
from triton._C.libtriton import ir as _ir
from triton.runtime import interpreter as _interp

from kernelprop.faithful.errors import CannotCheckOnBackend
from kernelprop.faithful.values import is_low_precision, refuse_fp8, storage, values

TensorHandle = _interp.TensorHandle
RAW: dict = {}


def create_dot(self, a, b, d, input_precision, max_num_imprecise_acc):
    a_ty, b_ty, acc_ty = a.dtype.scalar, b.dtype.scalar, d.dtype.scalar
    refuse_fp8(a_ty, b_ty, operation="tl.dot")
    if a_ty.is_int() or a_ty.primitive_bitwidth == 64:
        return RAW["create_dot"](self, a, b, d, input_precision, max_num_imprecise_acc)
    if a_ty.primitive_bitwidth == 32 and input_precision != _ir.INPUT_PRECISION.IEEE:
        raise CannotCheckOnBackend(
            f"tl.dot on fp32 operands with input_precision={input_precision.name.lower()} "
            "(the GPU's tf32 operand rounding is not modelled; input_precision='ieee' is)")
    product = np.matmul(values(a.data, a_ty).astype(np.float32), values(b.data, b_ty).astype(np.float32))
    total = product + values(d.data, acc_ty).astype(np.float32)
    if is_low_precision(acc_ty):
        return TensorHandle(storage(total, acc_ty), acc_ty)
    return TensorHandle(total.astype(values(d.data, acc_ty).dtype), acc_ty)


def install(patcher) -> None:
    RAW["create_dot"] = _interp.InterpreterBuilder.create_dot
    patcher.set_attr(_interp.InterpreterBuilder, "create_dot", create_dot)
