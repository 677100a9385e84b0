"""RMSNorm (SPEC section 3): y = round_out((x * INV(sum(x^2) / D + eps)) * weight), fp32 inside.

.. math::
    ss = \\sum_{c} \\sum_{i \\in chunk_c} x_i^2 \\ (\\text{fp32, chunks added left to right}),\\quad
    v = ss / D + eps,\\quad y = round_{out}((x \\cdot INV(v)) \\cdot w)

INV is the recipe's: rsqrt (tl.math.rsqrt), recip_sqrt (1.0 / tl.sqrt), recip_sqrt_rn
(div_rn(1, sqrt_rn)). The output is rounded once, to bf16 by bit arithmetic (recipe.rounding) or
kept in fp32 (recipe.out_dtype; "input": x's dtype). The recipes of real models: w' = weight_offset
+ w in fp32; round_before_weight rounds x * inv to the output dtype before the weight product;
compute_dtype "input" on a bf16 x rounds every step to bf16 (golden/rmsnorm_inputs.py NormRecipe: C(x^2),
C(ss), C(ss / D), C(ms + C(eps)), C(INV(v)), C(x * inv), C(offset + w), C(t * w')), each the fp32
operation followed by the bit-arithmetic rounding.
"""
import math
import numbers

import torch
import triton
import triton.language as tl

from kernelprop.golden.rmsnorm_inputs import NormRecipe
from kernelprop.kernels._bf16 import ROUNDING_CODE, tl_round_to_bf16
from kernelprop.kernels._checks import check_device, check_last_stride
from kernelprop.kernels._launch import KernelLaunch

INV_CODE = {"rsqrt": 0, "recip_sqrt": 1, "recip_sqrt_rn": 2}


# %% kernel

@triton.jit
def to_compute_dtype(t, ON: tl.constexpr, MODE: tl.constexpr):
    """One rounding of an fp32 result to the compute dtype: bf16 (ON) or fp32 (unchanged)."""
    if ON:
        return tl_round_to_bf16(t, MODE)
    return t


@triton.jit
def _rms_norm_kernel(
    x_ptr,             # x viewed as [R, D], bf16 or fp32
    stride_xr,         # x stride between rows (columns are contiguous)
    w_ptr,             # weight [D] (x's dtype or fp32); unused without HAS_WEIGHT
    stride_w,          # weight stride
    y_ptr,             # y [R, D] contiguous, bf16 or fp32
    stride_yr,         # y stride between rows
    R,                 # rows
    D,                 # columns (the normalized dim)
    D_F,               # D as fp32 (exact for D < 2^24), the divisor of the mean
    CHUNK,             # columns per fp32 partial sum of squares (D: one reduction)
    eps,               # fp32 epsilon
    BLOCK_R: tl.constexpr,     # rows per program
    BLOCK_C: tl.constexpr,     # columns per block (power of two)
    ONE_BLOCK: tl.constexpr,   # the whole row is one chunk and fits one block: load x once
    HAS_WEIGHT: tl.constexpr,  # multiply by weight
    INV_MODE: tl.constexpr,    # 0 rsqrt, 1 recip_sqrt, 2 recip_sqrt_rn (INV_CODE)
    OUT_BF16: tl.constexpr,    # round the output to bf16 (else store fp32)
    ROUND_MODE: tl.constexpr,  # recipe.rounding code (kernels._bf16.ROUNDING_CODE)
    W_OFFSET: tl.constexpr = 0.0,        # recipe.weight_offset: w' = W_OFFSET + w in fp32
    ROUND_BEFORE_W: tl.constexpr = False,  # round x * inv to the output dtype before * w'
    COMPUTE_BF16: tl.constexpr = False,    # round every step to bf16 (compute_dtype "input")
):
    """BLOCK_R rows per program.

    Rounding points: x (and weight) upcast to fp32 on load; x^2 and every partial sum in fp32;
    each chunk of CHUNK columns is one tl.sum (in blocks of BLOCK_C summed elementwise first
    when CHUNK > BLOCK_C), chunk partials are added to ss left to right; v = div_rn(ss, D) + eps;
    INV per INV_MODE; y = (x * inv) * w in fp32; one output rounding (bf16 bit arithmetic).
    w = W_OFFSET + w in fp32; ROUND_BEFORE_W rounds x * inv to the output dtype before * w;
    COMPUTE_BF16 rounds x^2, ss, ss / D, eps, v, inv, x * inv, w and the product to bf16 (to_compute_dtype).
    ONE_BLOCK keeps x in registers; otherwise x is read twice (sum of squares, then output).
    """
    rows = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R).to(tl.int64)
    r_mask = rows < R
    x_rows = x_ptr + rows * stride_xr
    y_rows = y_ptr + rows * stride_yr
    offs = tl.arange(0, BLOCK_C)

    if ONE_BLOCK:
        c_mask = offs < D
        mask = r_mask[:, None] & c_mask[None, :]
        x = tl.load(x_rows[:, None] + offs[None, :], mask=mask, other=0.0).to(tl.float32)
        ss = tl.sum(to_compute_dtype(x * x, COMPUTE_BF16, ROUND_MODE), axis=1)
    else:
        ss = tl.full([BLOCK_R], 0.0, tl.float32)
        for c0 in range(0, D, CHUNK):                          # chunks, left to right
            acc = tl.full([BLOCK_R, BLOCK_C], 0.0, tl.float32)
            for j in range(0, CHUNK, BLOCK_C):                 # one block unless CHUNK > BLOCK_C
                cols = c0 + j + offs
                mask = r_mask[:, None] & ((j + offs < CHUNK) & (cols < D))[None, :]
                xc = tl.load(x_rows[:, None] + cols[None, :], mask=mask, other=0.0).to(tl.float32)
                acc += to_compute_dtype(xc * xc, COMPUTE_BF16, ROUND_MODE)
            ss += tl.sum(acc, axis=1)

    ss = to_compute_dtype(ss, COMPUTE_BF16, ROUND_MODE)
    ms = to_compute_dtype(tl.math.div_rn(ss, D_F), COMPUTE_BF16, ROUND_MODE)  # IEEE division, like the golden
    eps_c = to_compute_dtype(tl.zeros([BLOCK_R], tl.float32) + eps, COMPUTE_BF16, ROUND_MODE)  # C(eps)
    v = to_compute_dtype(ms + eps_c, COMPUTE_BF16, ROUND_MODE)
    v = tl.where(r_mask, v, 1.0)                               # rows past R: no 1/0 (never stored)
    if INV_MODE == 0:
        inv = tl.math.rsqrt(v)
    elif INV_MODE == 1:
        inv = 1.0 / tl.sqrt(v)
    else:
        inv = tl.math.div_rn(tl.full(v.shape, 1.0, tl.float32), tl.math.sqrt_rn(v))
    inv = to_compute_dtype(inv, COMPUTE_BF16, ROUND_MODE)

    if ONE_BLOCK:
        y = to_compute_dtype(x * inv[:, None], COMPUTE_BF16, ROUND_MODE)
        if HAS_WEIGHT:
            w = tl.load(w_ptr + offs * stride_w, mask=c_mask, other=0.0).to(tl.float32)
            if W_OFFSET != 0.0:
                w = w + W_OFFSET
            w = to_compute_dtype(w, COMPUTE_BF16, ROUND_MODE)
            if ROUND_BEFORE_W:
                y = to_compute_dtype(y, OUT_BF16, ROUND_MODE)
            y = to_compute_dtype(y * w[None, :], COMPUTE_BF16, ROUND_MODE)
        if OUT_BF16:
            y = tl_round_to_bf16(y, ROUND_MODE).to(tl.bfloat16)  # exact cast of a bf16 value
        tl.store(y_rows[:, None] + offs[None, :], y, mask=mask)
    else:
        for c0 in range(0, D, BLOCK_C):
            cols = c0 + offs
            c_mask = cols < D
            mask = r_mask[:, None] & c_mask[None, :]
            y = tl.load(x_rows[:, None] + cols[None, :], mask=mask, other=0.0).to(tl.float32) * inv[:, None]
            y = to_compute_dtype(y, COMPUTE_BF16, ROUND_MODE)
            if HAS_WEIGHT:
                w = tl.load(w_ptr + cols * stride_w, mask=c_mask, other=0.0).to(tl.float32)
                if W_OFFSET != 0.0:
                    w = w + W_OFFSET
                w = to_compute_dtype(w, COMPUTE_BF16, ROUND_MODE)
                if ROUND_BEFORE_W:
                    y = to_compute_dtype(y, OUT_BF16, ROUND_MODE)
                y = to_compute_dtype(y * w[None, :], COMPUTE_BF16, ROUND_MODE)
            if OUT_BF16:
                y = tl_round_to_bf16(y, ROUND_MODE).to(tl.bfloat16)
            tl.store(y_rows[:, None] + cols[None, :], y, mask=mask)


# %% launch configuration
# ONE_BLOCK when the row is one chunk (chunk None or >= D) and next_pow2(D) <= 16384 (64 KiB of
#   fp32 registers a program); otherwise chunks are streamed in blocks of
#   min(next_pow2(chunk), 4096) columns.
# BLOCK_R: rows per program so that a block holds about 4096 elements (small D: several rows
#   share a program; large D: one row), at most 64 and never more than the rows there are.
# num_warps: one warp per 1024 elements of the block, between 4 and 16.
_MAX_ONE_BLOCK = 16384
_MAX_CHUNK_BLOCK = 4096
_ELEMS_PER_PROGRAM = 4096


def _norm_config(R: int, D: int, chunk) -> dict:
    whole_row = chunk is None or chunk >= D
    one_block = whole_row and triton.next_power_of_2(D) <= _MAX_ONE_BLOCK
    if one_block:
        block_c = triton.next_power_of_2(D)
    else:
        block_c = min(triton.next_power_of_2(D if whole_row else chunk), _MAX_CHUNK_BLOCK)
    block_r = max(1, min(64, _ELEMS_PER_PROGRAM // block_c, triton.next_power_of_2(R)))
    num_warps = max(4, min(16, block_r * block_c // 1024))
    return dict(BLOCK_R=block_r, BLOCK_C=block_c, ONE_BLOCK=one_block, num_warps=num_warps,
                CHUNK=D if whole_row else chunk)


# %% wrapper

def check_norm_args(x, weight, eps) -> float:
    """Raise TypeError / ValueError naming the argument for bad rms_norm input (SPEC P13);
    returns eps rounded to fp32. Shared by the wrapper and the planted-bug catalogue's bases."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor [..., D], got {type(x).__name__}")
    if x.dtype not in (torch.bfloat16, torch.float32):
        raise TypeError(f"x must have dtype bfloat16 or float32, got {str(x.dtype).replace('torch.', '')}")
    if x.dim() < 1 or x.shape[-1] < 1:
        raise ValueError(f"x must be [..., D] with D >= 1, got shape {tuple(x.shape)}")
    D = x.shape[-1]
    if weight is not None:
        if not isinstance(weight, torch.Tensor):
            raise TypeError(f"weight must be a torch.Tensor [D] or None, got {type(weight).__name__}")
        if weight.dtype not in (x.dtype, torch.float32):
            raise TypeError(f"weight must have x's dtype ({str(x.dtype).replace('torch.', '')}) or float32, "
                            f"got {str(weight.dtype).replace('torch.', '')}")
        if tuple(weight.shape) != (D,):
            raise ValueError(f"weight must have shape [D] = [{D}], got {tuple(weight.shape)}")
        check_device("weight", weight, "x", x)
    check_device("x", x, "x", x)
    check_last_stride("x", x)
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise TypeError(f"eps must be a float, got {type(eps).__name__}")
    eps32 = float(torch.tensor(float(eps), dtype=torch.float32))
    if not (math.isfinite(eps32) and eps >= 0):
        raise ValueError(f"eps must be finite and >= 0 (in fp32), got {eps!r}")
    if D >= 2 ** 24:
        raise ValueError(f"x: D={D} must be < 2^24 (the mean divides by D in fp32)")
    return eps32


def check_norm_recipe(recipe) -> NormRecipe:
    """The recipe a norm kernel of this file's form runs (None: NormRecipe()); TypeError for another
    type, NotImplementedError for what the Triton kernels do not compute (the golden-only modelled
    rsqrt, compute_dtype "promote")."""
    recipe = NormRecipe() if recipe is None else recipe
    if not isinstance(recipe, NormRecipe):
        raise TypeError(f"recipe must be a NormRecipe or None, got {type(recipe).__name__}")
    if recipe.inv not in INV_CODE:
        raise NotImplementedError(
            f"recipe.inv={recipe.inv!r} is a modelled hardware rsqrt for the golden only; the Triton "
            f"kernel implements {tuple(INV_CODE)}")
    if recipe.compute_dtype == "promote":
        raise NotImplementedError("recipe.compute_dtype='promote' (a bf16 tl.sum of the squares) is not "
                                  "implemented by this kernel; it implements 'fp32' and 'input'")
    return recipe


def rms_norm(x, weight=None, *, eps=1e-6, recipe=None):
    """RMSNorm over the last dim of x [..., D] (bf16 or fp32) with optional weight [D].

    Returns y with x's shape, in recipe.output_dtype(x.dtype) (bf16 or fp32).
    x needs a contiguous last dim (ValueError otherwise); leading dims are flattened with
    reshape (a copy only when they cannot be viewed as rows, which does not change any value).
    recipe: NormRecipe (None: NormRecipe()); inv "rsqrt_approx" is golden-only.
    """
    recipe = check_norm_recipe(recipe)
    eps32 = check_norm_args(x, weight, eps)
    D = x.shape[-1]

    out_dtype = torch.bfloat16 if recipe.output_dtype(x.dtype) == "bf16" else torch.float32
    x2 = x.reshape(-1, D)
    R = x2.shape[0]
    y = torch.empty((R, D), dtype=out_dtype, device=x.device)
    if R == 0:
        return y.reshape(x.shape)
    norm_launch(x2, weight, y, eps32, recipe).run()
    return y.reshape(x.shape)


def norm_launch(x2, weight, y, eps32: float, recipe: NormRecipe) -> KernelLaunch:
    """The kernel launch for checked rows x2 [R, D], weight [D] or None and an allocated y (no
    checks here): the wrapper runs it and `./kp compile` compiles it, so both see one config."""
    R, D = x2.shape
    cfg = _norm_config(R, D, recipe.chunk)
    compute_bf16 = recipe.compute_in(x2.dtype) == "bf16"
    w = weight if weight is not None else x2  # placeholder pointer, never read without HAS_WEIGHT
    grid = (triton.cdiv(R, cfg["BLOCK_R"]),)
    args = (
        x2, x2.stride(0),
        w, w.stride(0) if weight is not None else 0,
        y, y.stride(0),
        R, D, float(D), cfg["CHUNK"], eps32,
    )
    constexprs = dict(
        BLOCK_R=cfg["BLOCK_R"], BLOCK_C=cfg["BLOCK_C"], ONE_BLOCK=cfg["ONE_BLOCK"],
        HAS_WEIGHT=weight is not None, INV_MODE=INV_CODE[recipe.inv],
        OUT_BF16=y.dtype == torch.bfloat16, ROUND_MODE=ROUNDING_CODE[recipe.rounding],
        W_OFFSET=recipe.weight_offset, ROUND_BEFORE_W=recipe.round_before_weight,
        COMPUTE_BF16=compute_bf16,
    )
    options = dict(
        num_warps=cfg["num_warps"],
        enable_fp_fusion=False,  # x * x + acc stays a multiply then an add, like the golden
    )
    return KernelLaunch(_rms_norm_kernel, grid, args, constexprs, options)


rms_norm.recipe = NormRecipe()
rms_norm.accepts_recipe = True
# its sm_90a PTX per INV variant (./kp compile; kernelprop.core.ptx_audit.declared_ptx): v is div_rn
INV_PTX = {"rsqrt": ("rsqrt.approx.ftz",), "recip_sqrt": ("sqrt.approx.ftz", "div.full"),
           "recip_sqrt_rn": ("sqrt.rn",)}
rms_norm.ptx = lambda recipe: ("div.rn", "cvt.rn.bf16") + INV_PTX.get(recipe.inv, ("div.full",))
