"""Zoo: public bugs of Triton and the rest of the stack under these kernels (survey bugs 22-30),
each reproduced on our own RMSNorm (the planted-bug torch base of impls/mutants/rmsnorm.py, or a
small Triton RMSNorm written here), from the thread's description. `ZOO` is the registry the kill
matrix runs (`kp mutants --zoo`); `CONTROLS` are the correct Triton kernels the entries are built on.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernelprop.golden.rmsnorm_inputs import NormRecipe
from kernelprop.golden.rounding import round_to_bf16
from kernelprop.impls.mutants._args import check_norm_args
from kernelprop.impls.mutants.rmsnorm import NARROW, NarrowCompute, RMSNorm
from kernelprop.impls.zoo import ZooControl, ZooEntry
from kernelprop.kernels._bf16 import _round_to_bf16

HERE = "impls/zoo/stack.py"
TRITON = "https://github.com/triton-lang/triton"
FLA = "https://github.com/fla-org/flash-linear-attention"
FP32_MIN_NORMAL = 2.0 ** -126


# %% Triton RMSNorms (default recipe: fp32 inside, 1 / sqrt, one RNE rounding to bf16)

@triton.jit
def _gram_rms_kernel(x_ptr, w_ptr, y_ptr, R, D, stride_xr, stride_yr, stride_w, eps,
                     HAS_WEIGHT: tl.constexpr, BITS: tl.constexpr, X_FP32: tl.constexpr,
                     BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr):
    """BLOCK_R rows per program; their sums of squares are the diagonal of the Gram tile x x^T,
    computed by tl.dot on the rows (bf16: exact products, fp32 accumulation; fp32 x: an IEEE fp32
    dot). BITS: the products of a bf16 x use the rows' raw 16-bit patterns as values."""
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.arange(0, BLOCK_D)
    mask = (rows[:, None] < R) & (cols[None, :] < D)
    x = tl.load(x_ptr + rows[:, None] * stride_xr + cols[None, :], mask=mask, other=0.0)
    if X_FP32:
        gram = tl.dot(x, tl.trans(x), input_precision="ieee")
    elif BITS:
        xb = x.to(tl.int16, bitcast=True).to(tl.float32)
        gram = tl.dot(xb, tl.trans(xb), input_precision="ieee")
    else:
        gram = tl.dot(x, tl.trans(x))
    diagonal = tl.arange(0, BLOCK_R)[:, None] == tl.arange(0, BLOCK_R)[None, :]
    ss = tl.sum(tl.where(diagonal, gram, 0.0), 1)
    inv = 1.0 / tl.sqrt(ss / D + eps)
    y = x.to(tl.float32) * inv[:, None]
    if HAS_WEIGHT:
        w = tl.load(w_ptr + cols * stride_w, mask=cols < D, other=0.0).to(tl.float32)
        y = y * w[None, :]
    tl.store(y_ptr + rows[:, None] * stride_yr + cols[None, :], _round_to_bf16(y, 0).to(tl.bfloat16),
             mask=mask)


@triton.autotune(configs=[triton.Config({"BLOCK_R": 1}), triton.Config({"BLOCK_R": 4})], key=["D"])
@triton.jit
def _rows_rms_kernel(x_ptr, w_ptr, y_ptr, R, D, stride_xr, stride_yr, stride_w, eps,
                     HAS_WEIGHT: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr,
                     ROW_AXIS: tl.constexpr = 0):
    """BLOCK_R rows per program (the autotuned parameter), one reduction per row; the row blocks
    on grid axis ROW_AXIS."""
    rows = tl.program_id(ROW_AXIS) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.arange(0, BLOCK_D)
    mask = (rows[:, None] < R) & (cols[None, :] < D)
    x = tl.load(x_ptr + rows[:, None] * stride_xr + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    ss = tl.sum(x * x, 1)
    inv = 1.0 / tl.sqrt(ss / D + eps)
    y = x * inv[:, None]
    if HAS_WEIGHT:
        w = tl.load(w_ptr + cols * stride_w, mask=cols < D, other=0.0).to(tl.float32)
        y = y * w[None, :]
    tl.store(y_ptr + rows[:, None] * stride_yr + cols[None, :], _round_to_bf16(y, 0).to(tl.bfloat16),
             mask=mask)


class TritonRMSNorm:
    """A Triton RMSNorm under the default recipe (declared; no recipe keyword): bf16 output."""

    recipe = NormRecipe()
    accepts_recipe = False

    def __call__(self, x, weight=None, *, eps=1e-6, recipe=None):
        check_norm_args(x, weight, eps, recipe)
        D = x.shape[-1]
        x2 = x.reshape(-1, D)
        if x2.stride(-1) != 1:
            x2 = x2.contiguous()
        y = torch.empty(x2.shape, dtype=torch.bfloat16, device=x.device)
        if x2.shape[0]:
            self.launch(x2, weight, y, float(eps))
        return y.reshape(x.shape)

    def launch(self, x2, weight, y, eps):
        raise NotImplementedError


class GramRMSNorm(TritonRMSNorm):
    """Sums of squares by tl.dot on bf16 tiles: correct (a control), and the case of triton
    #11584 under the raw interpreter (its bf16 dot multiplies bit patterns)."""

    bits = False

    def launch(self, x2, weight, y, eps):
        R, D = x2.shape
        block_r = 16
        _gram_rms_kernel[(triton.cdiv(R, block_r),)](
            x2, x2 if weight is None else weight, y, R, D, x2.stride(0), y.stride(0),
            1 if weight is None else weight.stride(0), eps, HAS_WEIGHT=weight is not None,
            BITS=self.bits, X_FP32=x2.dtype == torch.float32, BLOCK_R=block_r,
            BLOCK_D=max(16, triton.next_power_of_2(D)))


class GramOnBitPatterns(GramRMSNorm):
    """triton #11584: under the interpreter, tl.dot on bf16 multiplies the raw uint16 bit
    patterns (errors around 1e10); the faithful interpreter computes the real products, so the
    correct GramRMSNorm passes there. This kernel really computes its dot on the bit patterns
    (what the raw interpreter made of the correct one): the suite must kill it. Trigger: any
    bf16 row."""

    bits = True


class RowsRMSNorm(TritonRMSNorm):
    """Rows per program autotuned (1 or 4), grid cdiv(R, rows per program): correct under every
    config (a control)."""

    row_axis = 0

    def grid(self, R):
        return lambda meta: (triton.cdiv(R, meta["BLOCK_R"]),)

    def launch(self, x2, weight, y, eps):
        R, D = x2.shape
        _rows_rms_kernel[self.grid(R)](x2, x2 if weight is None else weight, y, R, D, x2.stride(0),
                                       y.stride(0), 1 if weight is None else weight.stride(0), eps,
                                       HAS_WEIGHT=weight is not None,
                                       BLOCK_D=triton.next_power_of_2(D), ROW_AXIS=self.row_axis)


class GridFloorsRows(RowsRMSNorm):
    """triton #9230: autotune benchmarks every config into the same output buffer, so a config
    leaving part of the output unwritten passes the harness (the earlier configs wrote it). Here
    config 1 (4 rows per program) launches R // 4 programs: the last R mod 4 rows are never
    written (NaN under the suite's poisoned allocations; stale memory on a GPU). Config 0 is
    right. Trigger: config 1, R not a multiple of 4."""

    def grid(self, R):
        return lambda meta: (R // meta["BLOCK_R"],)


class RowsOnGridAxis1(RowsRMSNorm):
    """flash-linear-attention #172 / PR #1077: the kernel's grid (NK, NV, B*H) put a count that
    grows with the problem on an axis CUDA caps at 65535, and the launch failed ("invalid
    argument") past it. Here the row blocks go on grid axis 1: right wherever it launches, an
    error on a GPU past 65535 row blocks. Trigger: R > 65535 (config 0) on CUDA."""

    row_axis = 1

    def grid(self, R):
        return lambda meta: (1, triton.cdiv(R, meta["BLOCK_R"]))


# %% torch RMSNorms on the mutant base

def _rtz(t):
    return round_to_bf16(t, "rtz")


class Bf16ProductsTruncated(NarrowCompute):
    """triton #11217: on AMD a bf16 multiply was lowered to v_dot2_bf16_bf16, which rounds its
    result toward zero (41% of RoPE outputs off). Here the declared recipe computes a bf16 x in
    bf16 (compute_dtype "input", each step rounded to nearest even) and every product (x^2,
    x * inv, t * w') rounds toward zero. Trigger: bf16 x."""

    def sum_of_squares(self, xf, chunk, c=lambda t: t):
        return super().sum_of_squares(xf, chunk, _rtz)

    def apply(self, xf, inv, weight, in_dtype, recipe=NARROW, c=lambda t: t):
        return super().apply(xf, inv, weight, in_dtype, recipe, _rtz if in_dtype == torch.bfloat16 else c)


def _flush(t):
    return torch.where(t.abs() < FP32_MIN_NORMAL, torch.zeros_like(t), t)


class DivSqrtFlushed(RMSNorm):
    """triton PR #8557: the precise div and sqrt flushed subnormal operands and results to zero
    (FTZ). Here ss / D, its sqrt and the division 1 / sqrt(v) flush: with eps = 0 and tiny rows,
    a subnormal mean becomes 0 and inv = inf (y = inf / NaN where the recipe keeps the
    subnormal). Trigger: eps = 0, mean of squares below 2^-126 (shape class eps0_tiny)."""

    def mean(self, ss, D):
        return _flush(ss / D)

    def inverse(self, v, recipe):
        v = _flush(v)
        return _flush(torch.rsqrt(v)) if recipe.inv == "rsqrt" else _flush(1.0 / _flush(torch.sqrt(v)))


class Int32RowOffsets(RMSNorm):
    """flash-linear-attention #1080 / PR #1082: block-pointer offsets computed in int32, so
    B*T*H*K > 2^31 wraps to wrong (or negative) addresses: silent wrong values and NaN, then an
    illegal access. Here each row's start, row * row stride, is computed in int32 and x is read
    through those offsets from its storage. Trigger: more than 2^31 elements before a row."""

    def load(self, x):
        D = x.shape[-1]
        x2 = x.reshape(-1, D)
        starts = torch.arange(x2.shape[0], dtype=torch.int32) * torch.tensor(x2.stride(0), dtype=torch.int32)
        flat = x2.as_strided((x2.untyped_storage().nbytes() // x2.element_size(),), (1,), 0)
        index = (starts.long()[:, None] + x2.storage_offset()
                 + torch.arange(D)[None, :] * x2.stride(1))
        return flat[index.to(flat.device)].reshape(x.shape).float()


gram_rms_norm = GramRMSNorm()
rows_rms_norm = RowsRMSNorm()
zoo_triton_11584_dot_bits = GramOnBitPatterns()
zoo_triton_11217_bf16_mul_rtz = Bf16ProductsTruncated()
zoo_triton_8557_ftz_div_sqrt = DivSqrtFlushed()
zoo_triton_9230_autotune_tail = GridFloorsRows()
zoo_fla_1077_grid_axis = RowsOnGridAxis1()
zoo_fla_1082_int32_offsets = Int32RowOffsets()


def _entry(name, bug, threads, mechanism, trigger, killers, survives=""):
    return ZooEntry(name=name, bug=bug, threads=tuple(threads), kind="rms_norm",
                    mechanism=mechanism, target=f"{HERE}:{name}", trigger=trigger,
                    expected_killers=tuple(killers), survives=survives)


def _out(name, bug, threads, mechanism, reason):
    return ZooEntry(name=name, bug=bug, threads=tuple(threads), kind="rms_norm",
                    mechanism=mechanism, in_scope=False, out_of_scope=reason)


ZOO = [
    _out("zoo_liger_884_compile_zeros", 22,
         ["https://github.com/linkedin/Liger-Kernel/issues/871",
          "https://github.com/linkedin/Liger-Kernel/pull/884"],
         "under torch.compile n_cols becomes a constexpr, upcast: LayerNorm outputs zeros",
         "torch.compile path (the suite calls kernels eagerly) and LayerNorm (not in the "
         "contract); needs a compiled-call mode: each property's call through "
         "torch.compile(fn, dynamic=...) as a second implementation, on a GPU (inductor's CPU "
         "path does not run Triton kernels)"),
    _entry("zoo_triton_11584_dot_bits", 23, [f"{TRITON}/issues/11584", f"{TRITON}/pull/11585"],
           "tl.dot on bf16 computed on the raw bit patterns (the raw interpreter's bug, as a "
           "kernel); the correct Gram-dot kernel is a control (faithful interpreter)",
           "any bf16 row", ("P1",)),
    _entry("zoo_triton_11217_bf16_mul_rtz", 24, [f"{TRITON}/issues/11217"],
           "bf16 products rounded toward zero (v_dot2_bf16_bf16 lowering), declared "
           "compute_dtype input with RNE", "bf16 x", ("P1",)),
    _entry("zoo_triton_8557_ftz_div_sqrt", 25, [f"{TRITON}/pull/8557"],
           "precise div / sqrt flush subnormals: a subnormal mean becomes 0, inv = inf",
           "eps = 0, mean of squares < 2^-126 (eps0_tiny)", ("P1",)),
    _out("zoo_triton_10821_sm103_chained_dot", 26, [f"{TRITON}/issues/10821"],
         "two tl.dot chained into one accumulator miscompiled on sm_103 (tcgen05, BLOCK_M >= 64)",
         "arch-specific codegen: needs a B300 (sm_103) and a two-part dot kernel (MLA nope + rope, "
         "D = 512 + 64); the lent machines are H100 / H200 and the CPU interpreter has no codegen"),
    _out("zoo_triton_11784_fp8_specials", 27, [f"{TRITON}/pull/11784"],
         "FP8 -> BF16 widening turns inf / NaN encodings into finite values",
         "fp8 encodings: the contract is bf16 only; needs an FP8 KV pool class with the FP8 "
         "NaN / inf encodings as P10 canaries (and the faithful interpreter's fp8 casts, which "
         "raise CannotCheckOnBackend today)"),
    _entry("zoo_triton_9230_autotune_tail", 28, [f"{TRITON}/issues/9230"],
           "autotune config 1 launches R // 4 programs: the last R mod 4 rows never written",
           "config 1, R mod 4 != 0", ("P1",)),
    _entry("zoo_fla_1077_grid_axis", 29, [f"{FLA}/issues/172", f"{FLA}/pull/1077"],
           "rows on grid axis 1, which CUDA caps at 65535: launch fails past 65535 rows",
           "R > 65535 on CUDA", ("P1",),
           survives="the CPU interpreter has no grid limit and the ci sizes stay below 256 rows; "
                    "needs the launch recorder of the PTX audit (--impl records an "
                    "implementation's launches) checked against KernelLaunch.grid_problems at "
                    "70,000 rows, or the nightly's 70k-row norm on a GPU"),
    _entry("zoo_fla_1082_int32_offsets", 30, [f"{FLA}/issues/1080", f"{FLA}/pull/1082"],
           "int32 element offsets: row * stride wraps past 2^31 elements",
           "a tensor of > 2^31 elements (4 GiB bf16)", ("P1",),
           survives="needs one > 2^31-element tensor: the large-offsets class of the nightly GPU "
                    "run (not landed on this branch); the CPU ci stays below 1e8 elements"),
]

CONTROLS = [
    ZooControl("zoo_gram_dot", "rms_norm", f"{HERE}:gram_rms_norm",
               "Triton RMSNorm with the sums of squares by a bf16 tl.dot (the base of "
               "zoo_triton_11584_dot_bits; blamed falsely under the raw interpreter)"),
    ZooControl("zoo_rows_autotuned", "rms_norm", f"{HERE}:rows_rms_norm",
               "Triton RMSNorm autotuned over rows per program, right under every config (the "
               "base of zoo_triton_9230_autotune_tail)"),
]
