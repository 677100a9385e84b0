"""Fused residual-add RMSNorm (SPEC section 9): z = RNE_in(x + residual), residual_out = z,
y = rms_norm(z, weight, eps, recipe) (SPEC section 3, every NormRecipe field).

.. math::
    z = round_{in}(x + r),\\quad ss = \\sum_c \\sum_{i \\in c} z_i^2,\\quad
    y = round_{out}((z \\cdot INV(ss / D + eps)) \\cdot w)

One program per row. A row that fits one block (next_pow2(D) <= 16384: every served hidden
size) is read once: x and residual are loaded, z is formed, stored and kept in registers for the
sum of squares and the output. A longer row streams blocks twice: the first pass forms, stores and
squares z, the second reads back the z this program stored (a barrier orders the two).
"""
import triton
import triton.language as tl

from kernelprop.golden.rmsnorm_inputs import NormRecipe
from kernelprop.kernels._bf16 import ROUNDING_CODE, _round_to_bf16
from kernelprop.kernels._checks import check_device, check_last_stride
from kernelprop.kernels._launch import KernelLaunch
from kernelprop.kernels.rms_norm import INV_CODE, _c, check_norm_args, check_norm_recipe

import torch

_MAX_ONE_BLOCK = 16384
_STREAM_BLOCK = 4096


@triton.jit
def _sum_z(x_row, r_row, cols, mask, Z_BF16: tl.constexpr):
    """z = RNE_in(x + r) of one block, as fp32 values (bf16 by bit arithmetic, SPEC 5)."""
    x = tl.load(x_row + cols, mask=mask, other=0.0).to(tl.float32)
    r = tl.load(r_row + cols, mask=mask, other=0.0).to(tl.float32)
    z = x + r
    if Z_BF16:
        z = _round_to_bf16(z, 0)
    return z


@triton.jit
def _scale(z, inv, w_ptr, stride_w, cols, mask, HAS_WEIGHT: tl.constexpr, OUT_BF16: tl.constexpr,
           ROUND_MODE: tl.constexpr, W_OFFSET: tl.constexpr, ROUND_BEFORE_W: tl.constexpr,
           COMPUTE_BF16: tl.constexpr):
    """y = OUT(C(C(z * inv) * C(W_OFFSET + w))), with OUT(z * inv) first where ROUND_BEFORE_W."""
    y = _c(z * inv, COMPUTE_BF16, ROUND_MODE)
    if HAS_WEIGHT:
        w = tl.load(w_ptr + cols * stride_w, mask=mask, other=0.0).to(tl.float32)
        if W_OFFSET != 0.0:
            w = w + W_OFFSET
        w = _c(w, COMPUTE_BF16, ROUND_MODE)
        if ROUND_BEFORE_W:
            y = _c(y, OUT_BF16, ROUND_MODE)
        y = _c(y * w, COMPUTE_BF16, ROUND_MODE)
    if OUT_BF16:
        y = _round_to_bf16(y, ROUND_MODE).to(tl.bfloat16)
    return y


@triton.jit
def _fused_add_rms_norm_kernel(
    x_ptr, stride_x,          # x [R, D] (bf16 or fp32), row stride
    r_ptr, stride_r,          # residual [R, D], x's dtype, row stride
    w_ptr, stride_w,          # weight [D] (x's dtype or fp32); unused without HAS_WEIGHT
    y_ptr, stride_y,          # y [R, D] out
    z_ptr, stride_z,          # residual_out [R, D] out, x's dtype
    D,                        # columns
    D_F,                      # D as fp32 (exact for D < 2^24)
    CHUNK,                    # columns per fp32 partial sum of squares (D: one reduction)
    eps,                      # fp32 epsilon
    BLOCK_C: tl.constexpr,    # columns per block (power of two)
    ONE_BLOCK: tl.constexpr,  # the row fits one block: read once, z kept in registers
    Z_BF16: tl.constexpr,     # x is bf16: z rounded to bf16 (RNE)
    HAS_WEIGHT: tl.constexpr,
    INV_MODE: tl.constexpr,   # 0 rsqrt, 1 recip_sqrt, 2 recip_sqrt_rn (rms_norm.INV_CODE)
    OUT_BF16: tl.constexpr,
    ROUND_MODE: tl.constexpr,
    W_OFFSET: tl.constexpr,       # recipe.weight_offset: w' = W_OFFSET + w in fp32
    ROUND_BEFORE_W: tl.constexpr, # z * inv rounded to the output dtype before * w'
    COMPUTE_BF16: tl.constexpr,   # every step rounded to bf16 (compute_dtype "input", bf16 x)
):
    """Rounding points: x, r upcast on load; z = x + r in fp32, rounded to x's dtype and stored;
    z^2 and partial sums in fp32, each chunk of CHUNK columns one tl.sum, chunk partials added left
    to right; v = div_rn(ss, D) + eps; INV per INV_MODE; y = (z * inv) * w; one output rounding.
    The recipes of real models (golden/recipes.py NormRecipe) add C(.) roundings to bf16 after
    each step (COMPUTE_BF16), w' = offset + w, and OUT(z * inv) before the weight product."""
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * stride_x
    r_row = r_ptr + row * stride_r
    y_row = y_ptr + row * stride_y
    z_row = z_ptr + row * stride_z
    offs = tl.arange(0, BLOCK_C)

    if ONE_BLOCK:
        mask = offs < D
        z = _sum_z(x_row, r_row, offs, mask, Z_BF16)
        tl.store(z_row + offs, z.to(z_ptr.dtype.element_ty), mask=mask)
        sq = _c(z * z, COMPUTE_BF16, ROUND_MODE)
        ss = tl.sum(tl.where(offs < CHUNK, sq, 0.0), axis=0)
        for c0 in range(CHUNK, D, CHUNK):                     # further chunks, left to right
            ss += tl.sum(tl.where((offs >= c0) & (offs < c0 + CHUNK), sq, 0.0), axis=0)
    else:
        ss = 0.0
        for c0 in range(0, D, CHUNK):
            acc = tl.zeros([BLOCK_C], tl.float32)
            for j in range(0, CHUNK, BLOCK_C):
                cols = c0 + j + offs
                mask = (j + offs < CHUNK) & (cols < D)
                zc = _sum_z(x_row, r_row, cols, mask, Z_BF16)
                tl.store(z_row + cols, zc.to(z_ptr.dtype.element_ty), mask=mask)
                acc += _c(zc * zc, COMPUTE_BF16, ROUND_MODE)
            ss += tl.sum(acc, axis=0)
        tl.debug_barrier()                                    # z stored above, read back below

    ss = _c(ss, COMPUTE_BF16, ROUND_MODE)
    ms = _c(tl.math.div_rn(ss, D_F), COMPUTE_BF16, ROUND_MODE)
    v = _c(ms + _c(tl.zeros_like(ms) + eps, COMPUTE_BF16, ROUND_MODE), COMPUTE_BF16, ROUND_MODE)
    if INV_MODE == 0:
        inv = tl.math.rsqrt(v)
    elif INV_MODE == 1:
        inv = 1.0 / tl.sqrt(v)
    else:
        inv = tl.math.div_rn(1.0, tl.math.sqrt_rn(v))
    inv = _c(inv, COMPUTE_BF16, ROUND_MODE)

    if ONE_BLOCK:
        y = _scale(z, inv, w_ptr, stride_w, offs, mask, HAS_WEIGHT, OUT_BF16, ROUND_MODE, W_OFFSET,
                   ROUND_BEFORE_W, COMPUTE_BF16)
        tl.store(y_row + offs, y, mask=mask)
    else:
        for c0 in range(0, D, BLOCK_C):
            cols = c0 + offs
            mask = cols < D
            zc = tl.load(z_row + cols, mask=mask, other=0.0).to(tl.float32)
            y = _scale(zc, inv, w_ptr, stride_w, cols, mask, HAS_WEIGHT, OUT_BF16, ROUND_MODE, W_OFFSET,
                       ROUND_BEFORE_W, COMPUTE_BF16)
            tl.store(y_row + cols, y, mask=mask)


def _config(D: int, chunk) -> dict:
    """ONE_BLOCK up to 16384 columns (64 KiB of fp32 z a program); else blocks of 4096 (or the
    chunk's power of two when smaller). num_warps: one per 512 columns of the block, 4..16."""
    whole = chunk is None or chunk >= D
    one_block = triton.next_power_of_2(D) <= _MAX_ONE_BLOCK
    if one_block:
        block_c = triton.next_power_of_2(D)
    else:
        block_c = min(triton.next_power_of_2(D if whole else chunk), _STREAM_BLOCK)
    return dict(BLOCK_C=block_c, ONE_BLOCK=one_block, CHUNK=D if whole else chunk,
                num_warps=max(4, min(16, block_c // 512)))


def check_fused_args(x, residual, weight, eps) -> float:
    """Raise TypeError / ValueError naming the argument for bad input (P13); returns eps in fp32.
    x's checks (and weight's, eps's) are rms_norm's; residual must match x in dtype, shape and
    device, with a contiguous last dim."""
    eps32 = check_norm_args(x, weight, eps)
    if not isinstance(residual, torch.Tensor):
        raise TypeError(f"residual must be a torch.Tensor shaped like x, got {type(residual).__name__}")
    if residual.dtype != x.dtype:
        raise TypeError(f"residual must have x's dtype ({str(x.dtype).replace('torch.', '')}), "
                        f"got {str(residual.dtype).replace('torch.', '')}")
    if tuple(residual.shape) != tuple(x.shape):
        raise ValueError(f"residual must have x's shape {tuple(x.shape)}, got {tuple(residual.shape)}")
    check_device("residual", residual, "x", x)
    check_last_stride("residual", residual)
    return eps32


def fused_add_rms_norm(x, residual, weight=None, *, eps=1e-6, recipe=None):
    """(y, residual_out) for x, residual [..., D] (bf16 or fp32, same dtype and shape) and weight
    [D] or None: residual_out = RNE_in(x + residual) (x's dtype), y = rms_norm(residual_out)
    (recipe.output_dtype(x.dtype)). Every NormRecipe field but the golden-only inv
    "rsqrt_approx" is honoured. Out of place: x and residual are never written. Last dims must be
    contiguous; rows may have any stride (views of rows are used when they exist)."""
    recipe = check_norm_recipe(recipe)
    eps32 = check_fused_args(x, residual, weight, eps)
    D = x.shape[-1]
    x2, r2 = x.reshape(-1, D), residual.reshape(-1, D)
    R = x2.shape[0]
    y = torch.empty((R, D), dtype=torch.bfloat16 if recipe.output_dtype(x.dtype) == "bf16"
                    else torch.float32, device=x.device)
    z = torch.empty((R, D), dtype=x.dtype, device=x.device)
    if R:
        fused_add_rms_norm_launch(x2, r2, weight, y, z, eps32, recipe).run()
    return y.reshape(x.shape), z.reshape(x.shape)


def fused_add_rms_norm_launch(x2, r2, weight, y, z, eps32: float, recipe: NormRecipe) -> KernelLaunch:
    """The launch for checked rows x2, r2 [R, D], weight [D] or None and allocated y, z (no checks
    here): the wrapper runs it and `./kp compile` compiles it, so both see one config."""
    R, D = x2.shape
    cfg = _config(D, recipe.chunk)
    w = weight if weight is not None else x2
    args = (x2, x2.stride(0), r2, r2.stride(0), w, w.stride(0) if weight is not None else 0,
            y, y.stride(0), z, z.stride(0), D, float(D), cfg["CHUNK"], eps32)
    constexprs = dict(BLOCK_C=cfg["BLOCK_C"], ONE_BLOCK=cfg["ONE_BLOCK"],
                      Z_BF16=x2.dtype == torch.bfloat16, HAS_WEIGHT=weight is not None,
                      INV_MODE=INV_CODE[recipe.inv], OUT_BF16=y.dtype == torch.bfloat16,
                      ROUND_MODE=ROUNDING_CODE[recipe.rounding], W_OFFSET=recipe.weight_offset,
                      ROUND_BEFORE_W=recipe.round_before_weight,
                      COMPUTE_BF16=recipe.compute_in(x2.dtype) == "bf16")
    options = dict(num_warps=cfg["num_warps"], enable_fp_fusion=False)
    return KernelLaunch(_fused_add_rms_norm_kernel, (R,), args, constexprs, options)


fused_add_rms_norm.recipe = NormRecipe()
fused_add_rms_norm.accepts_recipe = True
