"""RMSNorm goldens (SPEC section 3) and the bound between two implementations of one recipe.

.. math::
    ss = \\sum_i x_i^2 \\ (\\text{fp32, chunk by chunk}),\\quad
    inv = INV(ss / D + eps),\\quad y = round_{out}((x \\cdot inv) \\cdot w)

The golden models each fp32 step as one correctly rounded operation: each chunk's partial sum of
squares is formed in float64 and rounded once, partials are added left to right in fp32, INV is
1/sqrt in float64 rounded once ("rsqrt"), or fp32 sqrt then fp32 division ("recip_sqrt",
"recip_sqrt_rn": correctly rounded both, which is what div_rn(1, sqrt_rn) is). "rsqrt_approx"
rounds the exact 1/sqrt to `approx_bits` significand bits: a hardware rsqrt with k correct bits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from kernelprop.golden.recipes import NormRecipe
from kernelprop.golden.rounding import round_to_bf16

U_FP32 = 2.0 ** -24


def _check(x: torch.Tensor, weight: Optional[torch.Tensor], eps) -> None:
    if not isinstance(x, torch.Tensor) or x.dtype not in (torch.bfloat16, torch.float32):
        raise TypeError(f"x must be a bf16 or fp32 tensor, got {getattr(x, 'dtype', type(x))}")
    if x.dim() < 1 or x.shape[-1] < 1:
        raise ValueError(f"x must have a last dimension >= 1, got shape {tuple(x.shape)}")
    if weight is not None and tuple(weight.shape) != (x.shape[-1],):
        raise ValueError(f"weight must be [{x.shape[-1]}], got shape {tuple(weight.shape)}")
    if not (isinstance(eps, (int, float)) and 0 <= eps < float("inf")):
        raise ValueError(f"eps must be a finite float >= 0, got {eps!r}")


def rms_norm_fp64(x: torch.Tensor, weight: Optional[torch.Tensor] = None, *, eps: float = 1e-6):
    """Exact math in float64: x / sqrt(mean(x^2) + eps) * weight. Returns float64."""
    _check(x, weight, eps)
    xd = x.double()
    y = xd / torch.sqrt((xd * xd).mean(-1, keepdim=True) + eps)
    return y if weight is None else y * weight.double()


def sum_of_squares_fp32(x: torch.Tensor, chunk: Optional[int]) -> torch.Tensor:
    """fp32 sum of x^2 over the last dim: chunk partials rounded once each, added left to right."""
    sq = x.double() ** 2
    D = x.shape[-1]
    if chunk is None or chunk >= D:
        return sq.sum(-1).float()
    total = torch.zeros(x.shape[:-1], dtype=torch.float32, device=x.device)
    for start in range(0, D, chunk):
        total = total + sq[..., start:start + chunk].sum(-1).float()
    return total


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


@dataclass(frozen=True)
class NormTrace:
    y: torch.Tensor       # output in the recipe's dtype
    y_fp32: torch.Tensor  # (x * inv) * w before the output rounding
    ss: torch.Tensor      # [...] fp32 sum of squares
    v: torch.Tensor       # [...] fp32 ss / D + eps
    inv: torch.Tensor     # [...] fp32 INV(v)


def rms_norm_trace(x, weight=None, *, eps: float = 1e-6, recipe: NormRecipe = NormRecipe()) -> NormTrace:
    if not isinstance(recipe, NormRecipe):
        raise TypeError(f"recipe must be a NormRecipe, got {type(recipe).__name__}")
    _check(x, weight, eps)
    D = x.shape[-1]
    ss = sum_of_squares_fp32(x, recipe.chunk)
    v = ss / D + torch.tensor(eps, dtype=torch.float32)
    inv = inverse_rms(v, recipe)
    y = x.float() * inv[..., None]
    if weight is not None:
        y = y * weight.float()
    if recipe.out_dtype == "bf16":
        out = round_to_bf16(y, recipe.rounding).to(torch.bfloat16)
    else:
        out = y
    return NormTrace(y=out, y_fp32=y, ss=ss, v=v, inv=inv)


def rms_norm_golden(x, weight=None, *, eps: float = 1e-6, recipe: NormRecipe = NormRecipe()):
    """The recipe-mirroring golden: y in recipe.out_dtype."""
    return rms_norm_trace(x, weight, eps=eps, recipe=recipe).y


@dataclass(frozen=True)
class NormBackend:
    """Relative error bounds of one implementation's fp32 steps (see docs/bounds.md).

    inv_ulps: max error of its INV in fp32 ulps (an ulp is at most 2^-23 relative):
      H100 measured <= 3 ulp for rsqrt / 1/sqrt / div_rn(1, sqrt_rn) (SPEC 5); the interpreter and
      torch are correctly rounded per op (1/sqrt: two roundings, 1 ulp).
    sum_depth: additions on the longest path of its sum of squares (None: D - 1, any order).
      `norm_relative_gap` charges the golden's sum one rounding (chunk None); for chunked recipes
      the caller folds the golden's ceil(D / chunk) partial roundings and the implementation's
      fp32 x * x rounding into sum_depth (properties/replays_norm.py: p1_relative_gap).
    """

    inv_ulps: float = 3.0
    sum_depth: Optional[int] = None
    sum_lambda: Optional[float] = None

    def sum_rel(self, D: int) -> float:
        """Relative error bound of its sum of squares (positive terms) for row length D.

        sum_lambda None: gamma(depth), every order and input. A number lambda: the rounding errors
        delta_k of the additions are independent and mean zero, so the error sum_k delta_k S_k
        is a martingale with increments |delta_k S_k| <= u S_k <= u ss (partial sums of positive
        terms never exceed the total, whatever the order), and Azuma-Hoeffding gives
        |error| <= lambda u sqrt(depth) ss except with probability 2 exp(-lambda^2 / 2) per row
        (docs/bounds-rmsnorm.md#p1-model). The smaller of the two is used."""
        depth = D - 1 if self.sum_depth is None else self.sum_depth
        worst = gamma(depth)
        if self.sum_lambda is None:
            return worst
        return min(worst, self.sum_lambda * math.sqrt(depth) * U_FP32 * (1 + 2.0 ** -10))


def gamma(n, u: float = U_FP32):
    """Higham's gamma_n = n u / (1 - n u): bound on the relative error of n chained roundings."""
    return n * u / (1 - n * u)


def norm_relative_gap(trace: NormTrace, x: torch.Tensor, backend: NormBackend = NormBackend()):
    """[...] bound on |y_impl - y_golden| / |y| before the output rounding, per row.

    impl vs exact: ss within gamma(depth) (sum of positives, any order), golden within u; the
    division by D and the + eps add u each side; v's relative error enters INV halved (d(v^-1/2)
    = -1/2 v^-3/2 dv) and is damped by ss/D / v when eps dominates; INV adds inv_ulps * 2^-23 for
    the implementation and 2^-23 (two correctly rounded ops) for the golden; x * inv and * w add
    one rounding each, each side.
    """
    D = x.shape[-1]
    share = torch.where(trace.v > 0, (trace.ss / D) / trace.v, torch.ones_like(trace.v)).double()
    rel_v = (backend.sum_rel(D) + U_FP32) * share + 4 * U_FP32
    rel_inv = 0.5 * rel_v + (backend.inv_ulps + 1) * 2.0 ** -23
    return (rel_inv + 4 * U_FP32) * (1 + 1e-3)   # 1e-3: second-order terms, all << 1


def rounding_interval_gap(y: torch.Tensor, rel: torch.Tensor, mode: str) -> torch.Tensor:
    """|round(y(1+rel)) - round(y(1-rel))|: the largest change of the rounded output that a
    relative perturbation up to `rel` can cause (0 where the rounding is decided)."""
    yd = y.double()
    hi = (yd + yd.abs() * rel).float()
    lo = (yd - yd.abs() * rel).float()
    # the fp32 rounding of an endpoint moves it by at most half an fp32 ulp: widen by one ulp
    hi = torch.nextafter(hi, torch.full_like(hi, float("inf")))
    lo = torch.nextafter(lo, torch.full_like(lo, -float("inf")))
    return (round_to_bf16(hi, mode) - round_to_bf16(lo, mode)).abs()


def norm_p1_bound(trace: NormTrace, x: torch.Tensor, recipe: NormRecipe,
                  backend: NormBackend = NormBackend()) -> torch.Tensor:
    """Elementwise bound on |y_impl - y_golden| for an implementation of the same recipe.
    fp32 output: rel * |y|; bf16 output: the rounding flips that rel makes possible, exactly."""
    rel = norm_relative_gap(trace, x, backend)[..., None]
    if recipe.out_dtype == "fp32":
        bound = (trace.y_fp32.double().abs() * rel).float()
    else:
        bound = rounding_interval_gap(trace.y_fp32, rel, recipe.rounding)
    # 0 / 0 rows (x = 0, eps = 0) are NaN on both sides; metrics match NaN positions separately
    return torch.nan_to_num(bound, nan=0.0)
