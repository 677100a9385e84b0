"""RMSNorm goldens (SPEC section 3); their bounds: golden/rmsnorm_bounds.py.

.. math::
    ss = \\sum_i x_i^2 \\ (\\text{fp32, chunk by chunk}),\\quad
    inv = INV(ss / D + eps),\\quad y = round_{out}((x \\cdot inv) \\cdot w)

The golden models each fp32 step as one correctly rounded operation: each chunk's partial sum of
squares is formed in float64 and rounded once, partials are added left to right in fp32, INV is
1/sqrt in float64 rounded once ("rsqrt"), or fp32 sqrt then fp32 division ("recip_sqrt",
"recip_sqrt_rn": correctly rounded both, which is what div_rn(1, sqrt_rn) is). "rsqrt_approx"
rounds the exact 1/sqrt to `approx_bits` significand bits: a hardware rsqrt with k correct bits.

The recipes of real models (NormRecipe's docstring gives the order): w' = fp32(weight_offset + w);
round_before_weight rounds t = x * inv to the output dtype before y = t * w' (rounded again);
compute_dtype "input" with a bf16 x rounds every step to bf16 (C below): C(x^2), C(ss), C(ss / D),
C(ms + C(eps)), C(INV(v)), C(x * inv), C(offset + w), C(t * w'), each the fp32 operation then one
rounding (recipe.rounding). compute_dtype "promote" with a bf16 x: C(x^2) summed by
`bf16_tree_sum` (pairwise, every addition rounded to bf16), then fp32 steps, C(offset + w). The fp64 truth is the math: x w' / sqrt(mean(x^2) + eps) with the exact
offset + w; the roundings are not part of it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from kernelprop.golden.rmsnorm_inputs import NormRecipe
from kernelprop.golden.rounding import round_to_bf16

def _check(x: torch.Tensor, weight: Optional[torch.Tensor], eps,
           dtypes=(torch.bfloat16, torch.float32)) -> None:
    if not isinstance(x, torch.Tensor) or x.dtype not in dtypes:
        short = {torch.bfloat16: "bf16", torch.float32: "fp32", torch.float64: "fp64"}
        names = " or ".join(short[d] for d in dtypes)
        raise TypeError(f"x must be a {names} tensor, got {getattr(x, 'dtype', type(x))}")
    if x.dim() < 1 or x.shape[-1] < 1:
        raise ValueError(f"x must have a last dimension >= 1, got shape {tuple(x.shape)}")
    if weight is not None and tuple(weight.shape) != (x.shape[-1],):
        raise ValueError(f"weight must be [{x.shape[-1]}], got shape {tuple(weight.shape)}")
    if not (isinstance(eps, (int, float)) and 0 <= eps < float("inf")):
        raise ValueError(f"eps must be a finite float >= 0, got {eps!r}")


def rms_norm_fp64(x: torch.Tensor, weight: Optional[torch.Tensor] = None, *, eps: float = 1e-6,
                  weight_offset: float = 0.0):
    """Exact math in float64: x / sqrt(mean(x^2) + eps) * (weight_offset + weight). Returns float64.
    x may be float64 too (an exact value: the fused add-RMSNorm's exact sum x + residual)."""
    _check(x, weight, eps, dtypes=(torch.bfloat16, torch.float32, torch.float64))
    xd = x.double()
    y = xd / torch.sqrt((xd * xd).mean(-1, keepdim=True) + eps)
    return y if weight is None else y * (weight_offset + weight.double())


def sum_of_squares_fp32(x: torch.Tensor, chunk: Optional[int], squares=None) -> torch.Tensor:
    """fp32 sum of x^2 (or of the given fp32 `squares`) over the last dim: chunk partials rounded
    once each, added left to right."""
    sq = x.double() ** 2 if squares is None else squares.double()
    D = x.shape[-1]
    if chunk is None or chunk >= D:
        return sq.sum(-1).float()
    total = torch.zeros(x.shape[:-1], dtype=torch.float32, device=x.device)
    for start in range(0, D, chunk):
        total = total + sq[..., start:start + chunk].sum(-1).float()
    return total


def bf16_tree_sum(squares: torch.Tensor, rounding: str) -> torch.Tensor:
    """tl.sum of bf16 values (fp32 tensor [..., D]) as modelled: zeros pad D to the next power of two
    P (the kernel's block), then s[i] = bf16(s[i] + s[i + P/2]) until one value is left."""
    D = squares.shape[-1]
    P = 1 << (D - 1).bit_length()
    s = torch.nn.functional.pad(squares.float(), (0, P - D))
    while s.shape[-1] > 1:
        half = s.shape[-1] // 2
        s = round_to_bf16(s[..., :half] + s[..., half:], rounding)
    return s[..., 0]


def inverse_rms(v: torch.Tensor, recipe: NormRecipe) -> torch.Tensor:
    """INV(v) for an fp32 tensor v > 0 under recipe.inv, fp32."""
    if recipe.inv == "rsqrt":
        return (1.0 / torch.sqrt(v.double())).float()
    if recipe.inv in ("recip_sqrt", "recip_sqrt_rn"):
        return 1.0 / torch.sqrt(v)  # torch fp32 sqrt and division are correctly rounded
    exact = 1.0 / torch.sqrt(v.double())
    mantissa, exponent = torch.frexp(exact)                   # exact = mantissa * 2^exponent
    scale = 2.0 ** recipe.approx_bits
    return torch.ldexp(torch.round(mantissa * scale) / scale, exponent).float()


def round_to(t: torch.Tensor, dtype: str, rounding: str) -> torch.Tensor:
    """An fp32 tensor rounded to `dtype` ("bf16": recipe rounding; "fp32": unchanged), as fp32."""
    return t if dtype == "fp32" else round_to_bf16(t, rounding)


def offset_weight(weight: Optional[torch.Tensor], recipe: NormRecipe, compute: str = "fp32"):
    """w' = weight_offset + w: one fp32 addition (exact when the offset is 0), rounded to `compute`."""
    if weight is None:
        return None
    w = weight.float()
    return round_to(w + recipe.weight_offset, compute, recipe.rounding) if recipe.weight_offset else \
        round_to(w, compute, recipe.rounding)


@dataclass(frozen=True)
class NormTrace:
    y: torch.Tensor       # output in the recipe's dtype
    y_fp32: torch.Tensor  # t * w' before the output rounding (t without weight)
    ss: torch.Tensor      # [...] fp32 sum of squares (compute "input": rounded to x's dtype)
    v: torch.Tensor       # [...] fp32 ss / D + eps (compute "input": each step rounded)
    inv: torch.Tensor     # [...] fp32 INV(v) (compute "input": rounded)
    t: Optional[torch.Tensor] = None   # x * inv in fp32, before any rounding to a narrower dtype
    w: Optional[torch.Tensor] = None   # w' = fp32(offset + w) (compute "input": rounded), or None


def rms_norm_trace(x, weight=None, *, eps: float = 1e-6, recipe: NormRecipe = NormRecipe()) -> NormTrace:
    if not isinstance(recipe, NormRecipe):
        raise TypeError(f"recipe must be a NormRecipe, got {type(recipe).__name__}")
    _check(x, weight, eps)
    D = x.shape[-1]
    out = recipe.output_dtype(x.dtype)
    comp = recipe.compute_in(x.dtype)
    C = lambda t: round_to(t, comp, recipe.rounding)  # noqa: E731
    xf = x.float()
    squares = None if comp == "fp32" else C(xf * xf)
    if recipe.promotes(x.dtype):
        ss = bf16_tree_sum(round_to_bf16(xf * xf, recipe.rounding), recipe.rounding)
        eps32 = round_to_bf16(torch.tensor(eps, dtype=torch.float32), recipe.rounding)
    else:
        ss = C(sum_of_squares_fp32(x, recipe.chunk, squares))
        eps32 = C(torch.tensor(eps, dtype=torch.float32))
    v = C(C(ss / D) + eps32)
    inv = C(inverse_rms(v, recipe))
    t = xf * inv[..., None]
    y = C(t)
    w = offset_weight(weight, recipe, "bf16" if recipe.promotes(x.dtype) else comp)
    if w is not None:
        if recipe.round_before_weight:
            y = round_to(y, out, recipe.rounding)
        y = C(y * w)
    final = round_to(y, out, recipe.rounding)
    final = final.to(torch.bfloat16) if out == "bf16" else final
    return NormTrace(y=final, y_fp32=y, ss=ss, v=v, inv=inv, t=t, w=w)


def rms_norm_golden(x, weight=None, *, eps: float = 1e-6, recipe: NormRecipe = NormRecipe()):
    """The recipe-mirroring golden: y in recipe.output_dtype(x.dtype)."""
    return rms_norm_trace(x, weight, eps=eps, recipe=recipe).y


def nonfinite_rows(x: torch.Tensor) -> torch.Tensor:
    """[...] bool: the rows of x [..., D] holding a NaN or an infinity."""
    return ~torch.isfinite(x).all(-1)


def nonfinite_row_result(x: torch.Tensor, weight: Optional[torch.Tensor] = None,
                         weight_offset: float = 0.0) -> torch.Tensor:
    """The documented fp32 result of the rows of x holding a NaN or an infinity (finite weight),
    under every recipe (docs/bounds-rmsnorm.md#nonfinite):
      a NaN in the row: x_j^2 = NaN, so ss = NaN, v = NaN, inv = INV(NaN) = NaN and every
        y_i = x_i * NaN * w_i = NaN: the whole row is NaN;
      else an infinity: x_j^2 = +inf, ss = +inf (finite partials + inf, any order or chunking),
        v = inf / D + eps = +inf, inv = INV(+inf) = +0 (1 / sqrt(inf), rsqrt(inf), a k-bit rsqrt
        alike), so y_j = (+-inf * 0) * w_j = NaN at each infinite element and y_i = (x_i * +0) * w_i
        = a zero with the sign of x_i * w_i at every finite one (also x / sqrt(v) * w, the
        division form: x_i / inf = +-0).
    Rows without a non-finite element are returned as NaN here (not documented: not this
    function's rows). The weight is offset + w (NormRecipe.weight_offset). Shape and fp32 dtype of x."""
    xf = x.float()
    zero = torch.copysign(torch.zeros_like(xf), xf)
    if weight is not None:
        zero = zero * (weight_offset + weight.float())  # +-0 * finite w: the product's sign
    inf_row = torch.where(torch.isinf(xf), math.nan, zero)
    has_nan = torch.isnan(xf).any(-1, keepdim=True)
    return torch.where(has_nan | ~nonfinite_rows(x)[..., None], math.nan, inf_row)
