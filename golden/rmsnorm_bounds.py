"""RMSNorm bounds (docs/bounds-rmsnorm.md), beside the golden they bound (golden/rmsnorm.py).

Error model shared by all bounds (golden/error_model.py: u = U_FP32 = 2^-24; "ulp" = FP32_ULP_REL
= 2^-23 relative):
    ss  = sum x_i^2      relative error gamma(depth) (positive terms, any order of `depth` additions)
                         + absolute 2^-150 per square or partial that may land in the subnormals
    v   = ss / D + eps   + u (division) + u (addition), relative to v; ss's error damped by ss/D / v
    inv = INV(v)         v's relative error halved (d v^-1/2 = -1/2 v^-3/2 dv) + inv_ulps * 2^-23
    y   = x * inv [* w]  + u per product, then one rounding to the output dtype
The property replays (properties/replays_norm.py) build their Outcomes from these functions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from kernelprop.golden.error_model import (FP32_HALF_SUBNORMAL, FP32_MIN_NORMAL, FP32_ULP_REL,
                                           PTX_FIGURES, U_FP32, gamma)
from kernelprop.golden.output_margin import Fp32Domain
from kernelprop.golden.rmsnorm_inputs import SUBNORMAL_SQUARES, NormRecipe
from kernelprop.golden.output_rounding import nan_free, output_numerics
from kernelprop.golden.rmsnorm import NormTrace
from kernelprop.golden.rounding import fp32_outward, round_to_bf16

ULP = FP32_ULP_REL                  # the relative size of one fp32 ulp, at most
HALF_SUBNORMAL = FP32_HALF_SUBNORMAL  # absolute error of one fp32 rounding in the subnormal range
FLUSHED = FP32_MIN_NORMAL           # absolute error of one result flushed to zero (an .ftz backend)
SLACK = 1 + 1e-3          # second-order terms (products of relative errors, all << 1e-3)


# INV error bounds per backend and variant, in units of 2^-23 relative (docs/bounds.md#gpu-model).
# cpu: the Triton interpreter's rsqrt / 1 / sqrt / div_rn(1, sqrt_rn) are numpy's correctly rounded
#      1 / sqrt (two roundings, <= 2u = 1); torch CPU rsqrt and 1 / sqrt measured <= 0.77 on 8M values.
# cuda (sm_90a PTX, SPEC 5; figures golden.error_model.PTX_FIGURES), first order (second-order
#      products ~2^-45 are inside SLACK):
#   rsqrt          rsqrt.approx.ftz.f32: 2^-22.9 = 2^0.1 = 1.072
#   recip_sqrt     sqrt.approx.ftz.f32 (2^-23: 1) then div.full.f32 (2.5 ulp from exact: 2.5) = 3.5
#   recip_sqrt_rn  sqrt.rn.f32 then div.rn.f32: u + u = 1
# The .ftz flushes only v (sqrt/rsqrt input), which the domain keeps normal (V_MIN_BY_BACKEND).
_REL_ULPS = {name: f.rel / FP32_ULP_REL for name, f in PTX_FIGURES.items()}
INV_ULPS_BY_VARIANT = {
    "cpu": {"rsqrt": 1.0, "recip_sqrt": 1.0, "recip_sqrt_rn": 1.0},
    "cuda": {"rsqrt": _REL_ULPS["rsqrt.approx.ftz"],
             "recip_sqrt": _REL_ULPS["sqrt.approx.ftz"] + _REL_ULPS["div.full"],
             "recip_sqrt_rn": _REL_ULPS["sqrt.rn"] + _REL_ULPS["div.rn"]},
}
# per backend, the largest of its variants: where the variant is unknown or two are compared
INV_ULPS = {backend: max(v.values()) for backend, v in INV_ULPS_BY_VARIANT.items()}
# results that flush to zero on the backend (squares, sums, products, outputs): none on CUDA, whose
# squares, sums and products are mul.rn / add.rn / div.rn (gradual underflow)
NORM_FTZ = {"cpu": False, "cuda": False}


def inv_ulps_for(backend: str, *invs: Optional[str]) -> float:
    """The backend's INV bound (units of 2^-23) for the named variants (the largest of them; a
    variant with no hardware figure, e.g. the modelled rsqrt_approx, gets the backend's largest)."""
    table = INV_ULPS_BY_VARIANT[backend]
    return max(table.get(inv, INV_ULPS[backend]) for inv in invs if inv) if any(invs) else INV_ULPS[backend]
GOLDEN_INV_ULPS = 1.0     # golden INV: one (rsqrt) or two (recip_sqrt) correctly rounded ops


@dataclass(frozen=True)
class NormBackend:
    """Relative error bounds of one implementation's fp32 steps (see docs/bounds.md).

    inv_ulps: max error of its INV in fp32 ulps (an ulp is at most 2^-23 relative):
      CUDA per variant from the PTX figures (INV_ULPS_BY_VARIANT); the interpreter and torch are
      correctly rounded per op (1/sqrt: two roundings, 1 ulp).
    sum_depth: additions on the longest path of its sum of squares (None: D - 1, any order).
      `norm_relative_gap` charges the golden's sum one rounding (chunk None); for chunked recipes
      the caller folds the golden's ceil(D / chunk) partial roundings and the implementation's
      fp32 x * x rounding into sum_depth (properties/replays_norm.py: p1_relative_gap).
    """

    inv_ulps: float = 3.0
    sum_depth: Optional[int] = None
    sum_lambda: Optional[float] = None
    div_units: float = 1.0   # its ss / D in units of u (V_DIV_UNITS_BY_BACKEND)

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
    rel_v = (backend.sum_rel(D) + U_FP32) * share + (3 + backend.div_units) * U_FP32
    rel_inv = 0.5 * rel_v + (backend.inv_ulps + 1) * FP32_ULP_REL
    return (rel_inv + 4 * U_FP32) * (1 + 1e-3)   # 1e-3: second-order terms, all << 1


# %% the model's domain

# smallest nonzero v = mean(x^2) + eps the first-order model is sound for: D roundings of <= 2^-150
# stay <= 2^-14 of D v (cpu); on cuda also v itself must stay normal, as the input of
# sqrt.approx.ftz / rsqrt.approx.ftz (a computed v >= 2^-125 (1 - 2^-14) is >= 2^-126)
V_MIN_BY_BACKEND = {"cpu": 2.0 ** -136, "cuda": 2.0 ** -125}
# the implementation's ss / D in units of u: an IEEE division (u) on the CPU; on CUDA a Triton `/`
# is div.full.f32 (2.5 ulp = 5u; Liger's RMSNorm, ./kp compile --impl), div_rn is div.rn (u)
V_DIV_UNITS_BY_BACKEND = {"cpu": 1.0, "cuda": PTX_FIGURES["div.full"].rel / U_FP32}


def _model(backend: str) -> str:
    """The backend whose figures apply: cuda, or cpu for every other name."""
    return "cuda" if backend == "cuda" else "cpu"


def _div_units(backend: str, v_div_units: Optional[float]) -> float:
    """v = ss / D's rounding in units of u: the kernel's own figure (`v_div_units`, from its
    declared PTX: cuda_figures_for_ptx) when known, else the backend's (V_DIV_UNITS_BY_BACKEND)."""
    return V_DIV_UNITS_BY_BACKEND[_model(backend)] if v_div_units is None else v_div_units


def domain_v_min(backend: str) -> float:
    """V_MIN: the smallest nonzero exact v the first-order model is sound for on `backend`."""
    return V_MIN_BY_BACKEND[_model(backend)]


def eps0_tiny_data(backend: str) -> str:
    """The data kind the eps0_tiny class draws (RMSNorm and the fused op) under `backend`'s model:
    "tiny" (randn x 1e-20: v ~ 2^-133) where V_MIN lets such rows in, else SUBNORMAL_SQUARES
    (randn x 1e-18: v ~ 2^-120, 6-9% of the squares subnormal): under the CUDA model
    (V_MIN = 2^-125) every tiny row lies outside the domain."""
    return "tiny" if domain_v_min(backend) < 2.0 ** -130 else SUBNORMAL_SQUARES


def in_domain(x: torch.Tensor, eps: float, backend: str) -> bool:
    """True when every row's exact v = mean(x^2) + fp32(eps) is 0 (then y is 0 / 0 = NaN on every
    side) or >= V_MIN = domain_v_min(backend). Below V_MIN the squares' subnormal roundings
    (<= 2^-150 each, <= D 2^-150 in
    all against D v) exceed 2^-14 relative, and as v -> 0 an fp32 sum of squares may flush to 0
    while the exact one does not (y = inf vs finite): fp32 RMSNorm itself is then ill-posed, and
    the properties draw no such rows (docs/bounds-rmsnorm.md#domain)."""
    if x.numel() == 0:
        return True
    xd = x.double()
    v = (xd * xd).mean(-1) + _eps32(eps)
    return bool(((v == 0) | (v >= domain_v_min(backend))).all())


# %% error model

def impl_sum_depth(D: int, chunk: Optional[int], x_dtype: torch.dtype) -> int:
    """Roundings on the longest path of an implementation's fp32 sum of squares: any order inside
    a chunk (min(chunk, D) - 1 additions), chunk partials left to right (n_chunks - 1), and one
    more for fp32 inputs (x * x rounds; a bf16 x has 8 significand bits, so x * x is exact)."""
    c = D if chunk is None else min(chunk, D)
    depth = (c - 1) + (-(-D // c) - 1)
    return depth + (1 if x_dtype == torch.float32 else 0)


def golden_sum_roundings(D: int, chunk: Optional[int]) -> int:
    """The golden's fp32 roundings in its sum of squares: each chunk partial is exact in float64 and
    rounded once, then the partials are added left to right: gamma(n_chunks) in all."""
    return 1 if chunk is None or chunk >= D else -(-D // chunk)


def _rows(x: torch.Tensor):
    """float64 [...] sum of squares (exact for bf16 and fp32 x) and the fp32 eps-free mean."""
    xd = x.double()
    return (xd * xd).sum(-1)


def _eps32(eps: float) -> float:
    return float(torch.tensor(eps, dtype=torch.float32))


def _underflow_rel(ss: torch.Tensor, D: int, v: torch.Tensor, n_round: int,
                   sub: float = HALF_SUBNORMAL) -> torch.Tensor:
    """[...] relative error of v from roundings in the subnormal range: each of `n_round` squares or
    partials, and the division by D, may lose up to 2^-150 absolutely (additions of subnormals are
    exact). 0 where v == 0 (the row is 0 / 0 on every side: NaN)."""
    abs_v = n_round * sub / D + sub
    return torch.where(v > 0, abs_v / v.clamp_min(1e-300), torch.zeros_like(v))


def error_vs_exact(x: torch.Tensor, weight, eps: float, *, depth: int, n_round: int,
                   inv_ulps: float, sub: float = HALF_SUBNORMAL,
                   weight_offset: float = 0.0, backend: str = "cpu",
                   v_div_units: Optional[float] = None) -> torch.Tensor:
    """[...] bound on |y - y_exact| / |y_exact| before the output rounding, for one fp32
    implementation whose sum of squares has `depth` chained roundings and `n_round` roundings that
    may underflow; y_exact = x w' / sqrt(sum x^2 / D + fp32(eps)) in exact arithmetic, w' = offset
    + w (its fp32 addition: one more u, relative to w'; exact when the offset is 0)."""
    D = x.shape[-1]
    ss = _rows(x)
    v = ss / D + _eps32(eps)
    share = torch.where(v > 0, (ss / D) / v.clamp_min(1e-300), torch.ones_like(v))
    rel_v = gamma(depth) * share + (1 + _div_units(backend, v_div_units)) * U_FP32 + _underflow_rel(ss, D, v, n_round, sub)
    products = 1 + (weight is not None) + (weight is not None and weight_offset != 0)
    return (0.5 * rel_v + inv_ulps * ULP + products * U_FP32) * SLACK


def exact_y(x: torch.Tensor, weight, eps: float, weight_offset: float = 0.0) -> torch.Tensor:
    """float64 y = x (offset + w) / sqrt(mean x^2 + fp32(eps)): the exact value the fp32 model
    perturbs (implementations add eps as an fp32 number; fp64 rounding ~1e-16 is inside SLACK)."""
    xd = x.double()
    y = xd / torch.sqrt((xd * xd).mean(-1, keepdim=True) + _eps32(eps))
    return y if weight is None else y * (weight_offset + weight.double())


def _interval(center: torch.Tensor, rel: torch.Tensor, abs_: float = 0.0):
    c = center.double()
    width = c.abs() * rel + abs_
    return c - width, c + width


def pair_bound(iv1, iv2, recipe: NormRecipe) -> torch.Tensor:
    """Bound on |y1 - y2| when y1 = OUT(t1), y2 = OUT(t2) for some t1 in iv1, t2 in iv2 (float64
    intervals) and OUT is the recipe's output rounding (monotone): max(OUT(hi1) - OUT(lo2),
    OUT(hi2) - OUT(lo1)). NaN intervals (0/0 rows) give 0: both sides must then be NaN. The
    recipe's out_dtype is resolved ("fp32" or "bf16": NormRecipe.for_input)."""
    out = output_numerics(recipe.out_dtype, recipe.rounding)
    (lo1, hi1), (lo2, hi2) = out.ends(*iv1), out.ends(*iv2)
    bound = torch.maximum(hi1 - lo2, hi2 - lo1)
    return torch.where(torch.isnan(bound), torch.zeros_like(bound), bound)


def _abs_products(weight, sub: float = HALF_SUBNORMAL) -> float:
    """Absolute error of the y products if they land in the subnormals, both sides."""
    return 2 * (1 + (weight is not None)) * sub


def _with_flush(iv, x: torch.Tensor, ftz: bool):
    """Under FTZ an element whose x is subnormal (flushed on input) or whose y may be subnormal
    (flushed on output) may be 0: widen its interval to contain 0 (no-op without FTZ)."""
    if not ftz:
        return iv
    lo, hi = iv
    may = (x.double().abs() < FLUSHED) | ((lo.abs() < FLUSHED) | (hi.abs() < FLUSHED) | (lo * hi <= 0))
    return torch.where(may, torch.minimum(lo, torch.zeros_like(lo)), lo), \
        torch.where(may, torch.maximum(hi, torch.zeros_like(hi)), hi)


# %% P1

SUM_LAMBDA = 6.0  # P1's probabilistic sum-of-squares model: 2 e^-18 = 3e-8 per row escapes it


def p1_relative_gap(trace, x: torch.Tensor, eps: float, recipe: NormRecipe,
                    inv_ulps: float, sum_lambda: Optional[float] = SUM_LAMBDA,
                    sub: float = HALF_SUBNORMAL, backend: str = "cpu",
                    v_div_units: Optional[float] = None) -> torch.Tensor:
    """[...] norm_relative_gap with the sum-of-squares term made sound for every recipe, plus
    the subnormal terms. golden.rmsnorm.norm_relative_gap charges the golden's sum one rounding (u)
    and the implementation gamma(sum_depth); the golden with chunk c rounds ceil(D/c) partials
    (gamma(n_chunks)), and an fp32 x's squares round in the implementation. Passing sum_depth =
    depth_impl + n_golden - 1 makes gamma(sum_depth) + u >= gamma(depth_impl) + gamma(n_golden)
    (gamma is convex: (a + b - 1, 1) majorizes (a, b)). With sum_lambda the sum's term is
    min(gamma, lambda u sqrt(depth)) (NormBackend.sum_rel): the golden's n_golden roundings are
    then counted as further martingale increments of the same size bound (u ss each)."""
    D = x.shape[-1]
    n_golden = golden_sum_roundings(D, recipe.chunk)
    depth = impl_sum_depth(D, recipe.chunk, x.dtype) + n_golden - 1
    rel = norm_relative_gap(trace, x, NormBackend(inv_ulps=inv_ulps, sum_depth=depth,
                                                  sum_lambda=sum_lambda,
                                                  div_units=_div_units(backend, v_div_units)))
    ss = _rows(x)
    v = ss / D + _eps32(eps)
    under = 0.5 * (_underflow_rel(ss, D, v, D, sub) + _underflow_rel(ss, D, v, n_golden))
    return rel + under * SLACK


def p1_interval(trace, inputs, recipe: NormRecipe, inv_ulps: float,
                sum_lambda: Optional[float] = SUM_LAMBDA, ftz: bool = False, backend: str = "cpu",
                v_div_units: Optional[float] = None):
    """(lo, hi) float64: both fp32 y lie in y_golden (1 +- rel) +- subnormal product errors (and,
    under FTZ, may be 0 where x or y is subnormal). backend: the error model ("cpu": a bf16 tl.sum
    of compute "promote" adds in the modelled tree; else in any order, tree_any_order)."""
    sub = FLUSHED if ftz else HALF_SUBNORMAL
    if has_inner_roundings(recipe, inputs.x.dtype, inputs.weight):
        return p1_chain_interval(trace, inputs, recipe, inv_ulps, sum_lambda, ftz, backend, v_div_units)
    rel = p1_relative_gap(trace, inputs.x, inputs.eps, recipe, inv_ulps, sum_lambda, sub,
                          backend, v_div_units)[..., None]
    return _with_flush(_interval(trace.y_fp32, rel, _abs_products(inputs.weight, sub)), inputs.x, ftz)


def p1_domain(trace, iv, recipe: NormRecipe) -> Fp32Domain:
    """A bf16 output's fp32 statement for its margin (golden.output_margin): the golden's fp32 y
    and the distances to the ends of p1_interval, rounded outward to fp32 as pair_bound does (the
    interval need not be symmetric: FTZ widens one side to 0); no discrete share."""
    lo, hi = fp32_outward(*iv)
    y = trace.y_fp32.double()
    below, above = nan_free(y - lo.double()), nan_free(hi.double() - y)
    return Fp32Domain(y, below, above, torch.zeros_like(y), recipe.rounding)


def p1_bound(trace, inputs, recipe: NormRecipe, inv_ulps: float,
             sum_lambda: Optional[float] = SUM_LAMBDA, ftz: bool = False, iv=None,
             backend: str = "cpu", v_div_units: Optional[float] = None) -> torch.Tensor:
    """Elementwise P1 bound on |impl - golden| from p1_interval (given as `iv`, or computed)."""
    if iv is None:
        iv = p1_interval(trace, inputs, recipe, inv_ulps, sum_lambda, ftz, backend, v_div_units)
    # both the implementation's and the golden's y lie in iv (bf16: OUT(hi) - OUT(lo))
    return output_numerics(recipe.output_dtype(inputs.x.dtype), recipe.rounding).interval(
        trace.y, trace.y_fp32, *iv, "").bound


# %% the recipes of real models (docs/bounds-rmsnorm.md#recipes)

def has_inner_roundings(recipe: NormRecipe, x_dtype, weight) -> bool:
    """Whether the recipe rounds inside the chain to a narrower dtype than fp32: round_before_weight
    with a weight and a bf16 output, or compute_dtype "input" with a bf16 x. Then the intervals are
    carried through each rounding (chain_interval); otherwise one relative interval of y suffices
    (weight_offset only changes the weight both sides multiply by: w' = fp32(offset + w))."""
    rbw = recipe.round_before_weight and weight is not None and recipe.output_dtype(x_dtype) == "bf16"
    return rbw or recipe.compute_in(x_dtype) == "bf16" or recipe.promotes(x_dtype)


def to_grid(lo: torch.Tensor, hi: torch.Tensor, dtype: str, rounding: str):
    """float64 ends of an interval of exact values -> float64 ends of the interval of their
    roundings to `dtype` (fp32 RNE outward, then bf16 under `rounding`: monotone, so the rounded
    value of anything inside lies between the rounded ends)."""
    lo32, hi32 = fp32_outward(lo, hi)
    if dtype == "bf16":
        lo32, hi32 = round_to_bf16(lo32, rounding), round_to_bf16(hi32, rounding)
    return lo32.double(), hi32.double()


def _fl_grid(lo: torch.Tensor, hi: torch.Tensor, dtype: str, rounding: str):
    """Ends that are exact results of one operation (float64 holds them exactly) -> their fp32
    round-to-nearest result (what the fp32 operation returns), then rounded to `dtype`."""
    lo32, hi32 = lo.float(), hi.float()
    if dtype == "bf16":
        lo32, hi32 = round_to_bf16(lo32, rounding), round_to_bf16(hi32, rounding)
    return lo32.double(), hi32.double()


def _fp32_op(lo32: torch.Tensor, hi32: torch.Tensor, dtype: str, rounding: str):
    """Ends that are results of an fp32 operation (correctly rounded) -> rounded to `dtype`."""
    if dtype == "bf16":
        lo32, hi32 = round_to_bf16(lo32, rounding), round_to_bf16(hi32, rounding)
    return lo32.double(), hi32.double()


def _times(iv, factor: torch.Tensor):
    """Ends of {a * factor : a in iv} (elementwise, factor of either sign), float64."""
    a, b = iv[0] * factor, iv[1] * factor
    return torch.minimum(a, b), torch.maximum(a, b)


def chain_interval(x: torch.Tensor, weight, eps: float, recipe: NormRecipe, *, sum_rel: float,
                   inv_ulps: float, t_iv=None, ftz: bool = False, sub: float = HALF_SUBNORMAL,
                   ss_iv=None):
    """(lo, hi) float64 [..., D] containing the pre-output-rounding y of every implementation of
    `recipe` (and the golden) whose sum of squares is within `sum_rel` of exact and whose INV is
    within max(inv_ulps, 1) 2^-23 of 1 / sqrt of its v; each rounding step maps the interval by
    its rounding, which is monotone (docs/bounds-rmsnorm.md#recipes).

    compute "input" with a bf16 x (C = bf16): sq = C(x^2) is exact and shared; ss in the fp32
    interval, then C; ms = C(fl(ss / D)); v = C(fl(ms + C(eps))); inv = C(exact 1/sqrt(v) widened
    by the INV ulps); t = C(x * inv) (bf16 * bf16: exact in fp32, one rounding to C).
    compute fp32: t_iv (x * inv, both sides' fp32 errors) is given by the caller.
    compute "promote" with a bf16 x: ss_iv (the ends of the bf16 tree sum) is given by the caller;
    fl(/ D), fl(+ bf16(eps)), inv as above rounded outward to fp32, t = fl(x * inv) (fp32 x bf16:
    exact in float64, one fp32 rounding).
    Then with a weight: T = OUT(t) when round_before_weight (else t), y = C(fl(T * w')); w' the
    shared fp32(offset + w) (rounded to C; to bf16 under "promote")."""
    from kernelprop.golden.rmsnorm import offset_weight, round_to

    comp, out = recipe.compute_in(x.dtype), recipe.output_dtype(x.dtype)
    mode = recipe.rounding
    promote = recipe.promotes(x.dtype)
    if promote:
        D = x.shape[-1]
        lo, hi = to_grid(ss_iv[0], ss_iv[1], "bf16", mode)
        lo, hi = _fp32_op(lo.float() / D, hi.float() / D, "fp32", mode)
        eps_c = round_to(torch.tensor(eps, dtype=torch.float32), "bf16", mode)
        lo, hi = _fp32_op(lo.float() + eps_c, hi.float() + eps_c, "fp32", mode)
        q = max(inv_ulps, GOLDEN_INV_ULPS) * ULP
        inv_lo, inv_hi = to_grid((1 / torch.sqrt(hi)) * (1 - q), (1 / torch.sqrt(lo)) * (1 + q),
                                  "fp32", mode)
        t_iv = _fl_grid(*_times((inv_lo[..., None], inv_hi[..., None]), x.double()), "fp32", mode)
    elif comp == "bf16":
        D = x.shape[-1]
        xf = x.float()
        sq = round_to(xf * xf, comp, mode).double()
        ss = sq.sum(-1)
        width = ss * sum_rel + 2 * D * sub   # subnormal roundings, both sides
        lo, hi = to_grid(ss - width, ss + width, comp, mode)
        lo, hi = _fp32_op(lo.float() / D, hi.float() / D, comp, mode)
        eps_c = round_to(torch.tensor(eps, dtype=torch.float32), comp, mode)
        lo, hi = _fp32_op(lo.float() + eps_c, hi.float() + eps_c, comp, mode)
        q = max(inv_ulps, GOLDEN_INV_ULPS) * ULP
        inv_lo, inv_hi = to_grid((1 / torch.sqrt(hi)) * (1 - q), (1 / torch.sqrt(lo)) * (1 + q),
                                  comp, mode)
        t_lo, t_hi = _times((inv_lo[..., None], inv_hi[..., None]), x.double())
        t_iv = _fl_grid(t_lo, t_hi, comp, mode)
    t_iv = _with_flush(t_iv, x, ftz)
    w = offset_weight(weight, recipe, "bf16" if promote else comp)
    if w is None:
        return t_iv
    if recipe.round_before_weight:
        t_iv = to_grid(*t_iv, out, mode)
    elif comp == "fp32" and not promote:
        t_iv = fp32_outward(*t_iv)
        t_iv = (t_iv[0].double(), t_iv[1].double())
    y_iv = _fl_grid(*_times(t_iv, w.double()), comp, mode)
    return _with_flush(y_iv, x, ftz)


def p1_chain_interval(trace, inputs, recipe: NormRecipe, inv_ulps: float,
                      sum_lambda: Optional[float] = SUM_LAMBDA, ftz: bool = False,
                      backend: str = "cpu", v_div_units: Optional[float] = None):
    """p1_interval for recipes with inner roundings (has_inner_roundings): compute fp32: t = x * inv
    of both sides lies in t_golden (1 +- rel) (p1_relative_gap, which charges 2 products a side:
    t has one), then chain_interval; compute bf16: chain_interval from the squares, the sum charged
    as in p1_relative_gap (depth_impl + n_golden - 1, squares already rounded: no fp32 x*x);
    compute "promote": the bf16 tree sum is decided by the modelled order (the golden's ss, a
    point), or where the backend's order is unknown (tree_any_order) lies in tree_sum_interval with
    D roundings on a path."""
    x = inputs.x
    sub = FLUSHED if ftz else HALF_SUBNORMAL
    D = x.shape[-1]
    if recipe.promotes(x.dtype):
        ss = trace.ss.double()
        ss_iv = tree_sum_interval(x, recipe.rounding, D) if tree_any_order(backend) else (ss, ss)
        return chain_interval(x, inputs.weight, inputs.eps, recipe, sum_rel=0.0, inv_ulps=inv_ulps,
                              ftz=ftz, sub=sub, ss_iv=ss_iv)
    if recipe.compute_in(x.dtype) == "bf16":
        depth = impl_sum_depth(D, recipe.chunk, torch.bfloat16) + golden_sum_roundings(D, recipe.chunk) - 1
        sum_rel = NormBackend(inv_ulps=inv_ulps, sum_depth=depth, sum_lambda=sum_lambda).sum_rel(D)
        return chain_interval(x, inputs.weight, inputs.eps, recipe, sum_rel=sum_rel,
                              inv_ulps=inv_ulps, ftz=ftz, sub=sub)
    rel = p1_relative_gap(trace, x, inputs.eps, recipe, inv_ulps, sum_lambda, sub, backend,
                          v_div_units)[..., None]
    t_iv = _interval(trace.t, rel, _abs_products(None, sub))
    return chain_interval(x, inputs.weight, inputs.eps, recipe, sum_rel=0.0, inv_ulps=inv_ulps,
                          t_iv=t_iv, ftz=ftz, sub=sub)


def exact_interval(x: torch.Tensor, weight, eps: float, recipe: NormRecipe, *, depth: int,
                   n_round: int, inv_ulps: float, ftz: bool = False, sub: float = HALF_SUBNORMAL,
                   backend: str = "cpu", v_div_units: Optional[float] = None):
    """(lo, hi) float64 around the exact y holding one implementation's pre-output-rounding y
    (P12): y_exact (1 +- error_vs_exact) with w' = offset + w; for recipes with inner roundings the
    same error of t = x * inv (compute fp32) or of the sum of squares (compute bf16: gamma(depth))
    carried through chain_interval; compute "promote": the bf16 tree sum in tree_sum_interval
    (1 + ceil(log2 D) roundings on a path, or D under tree_any_order)."""
    if not has_inner_roundings(recipe, x.dtype, weight):
        r = error_vs_exact(x, weight, eps, depth=depth, n_round=n_round, inv_ulps=inv_ulps, sub=sub,
                           weight_offset=recipe.weight_offset, backend=backend,
                           v_div_units=v_div_units)[..., None]
        iv = _interval(exact_y(x, weight, eps, recipe.weight_offset), r, _abs_products(weight, sub) / 2)
        return _with_flush(iv, x, ftz)
    if recipe.promotes(x.dtype):
        D = x.shape[-1]
        k = D if tree_any_order(backend) else 1 + (D - 1).bit_length()
        return chain_interval(x, weight, eps, recipe, sum_rel=0.0, inv_ulps=inv_ulps, ftz=ftz,
                              sub=sub, ss_iv=tree_sum_interval(x, recipe.rounding, k))
    if recipe.compute_in(x.dtype) == "bf16":
        return chain_interval(x, weight, eps, recipe, sum_rel=gamma(depth), inv_ulps=inv_ulps,
                              ftz=ftz, sub=sub)
    r = error_vs_exact(x, None, eps, depth=depth, n_round=n_round, inv_ulps=inv_ulps, sub=sub,
                       backend=backend, v_div_units=v_div_units)
    t_iv = _interval(exact_y(x, None, eps), r[..., None], _abs_products(None, sub) / 2)
    return chain_interval(x, weight, eps, recipe, sum_rel=0.0, inv_ulps=inv_ulps, t_iv=t_iv,
                          ftz=ftz, sub=sub)


def tree_any_order(backend: str) -> bool:
    """Whether a bf16 tl.sum may add in any order: on a GPU (per-thread serial, warp shuffles,
    then across warps: the launch decides); the cpu backend's faithful interpreter adds in the
    modelled pairwise tree (golden.rmsnorm.bf16_tree_sum), which decides the sum."""
    return backend != "cpu"


def tree_sum_interval(x: torch.Tensor, rounding: str, k: int):
    """float64 ends holding a bf16 sum of the bf16 squares (compute "promote") in which every
    square passes through at most k roundings (its own and the additions on its path: 1 +
    ceil(log2 D) in the modelled tree, at most D in any order). All terms are >= 0, so each
    rounding to bf16 of a partial s gives s (1 + d), |d| <= u (2^-8 nearest, 2^-7 directed), and
    the sum lies in [ss (1 - u)^k, ss (1 + u)^k] (ss exact; one-sided products, so the low end
    stays > 0 for any k); plus D + P - 1 < 3 D subnormal losses of <= 2^-134 each (P < 2 D: the
    block), scaled by the later roundings' (1 + u)^k."""
    D = x.shape[-1]
    u = 2.0 ** -8 if rounding in ("rne", "rna") else 2.0 ** -7
    ss = _rows(x)
    grow = (1 + u) ** k
    tiny = grow * 3 * D * 2.0 ** -134
    return torch.clamp(ss * (1 - u) ** k - tiny, min=0.0), ss * grow + tiny


# compute bf16: a square that lands in bf16's subnormals loses up to 2^-134 (half the smallest bf16
# subnormal, 2^-133) where fp32 loses 2^-150; as for V_MIN, D such losses stay <= 2^-14 of D v
# above 2^-120. Below it the bf16 squares may all round to 0 (y = inf against a finite y of 2^j x).
V_MIN_NARROW = 2.0 ** -120


def v_min(recipe: NormRecipe, x_dtype, backend: str) -> float:
    """The smallest nonzero exact v the properties draw for this recipe, x dtype and backend."""
    low = domain_v_min(backend)
    narrow = recipe.compute_in(x_dtype) == "bf16" or recipe.promotes(x_dtype)
    return max(low, V_MIN_NARROW) if narrow else low


def in_recipe_domain(x: torch.Tensor, eps: float, recipe: NormRecipe, backend: str) -> bool:
    """in_domain with the recipe's v_min (compute bf16: V_MIN_NARROW)."""
    if x.numel() == 0 or not (recipe.compute_in(x.dtype) == "bf16" or recipe.promotes(x.dtype)):
        return in_domain(x, eps, backend)
    xd = x.double()
    v = (xd * xd).mean(-1) + _eps32(eps)
    return bool(((v == 0) | (v >= v_min(recipe, x.dtype, backend))).all())


# %% the CUDA figures an RMSNorm kernel's PTX calls for (kernelprop.core.ptx_audit counts them)

def cuda_figures_for_ptx(counts) -> tuple[float, float]:
    """(inv_ulps, v_div_units) for an RMSNorm kernel whose PTX has `counts`: the largest INV figure
    among the lowerings present (rsqrt.approx; sqrt.approx then div.full; sqrt.rn then div.rn) and
    5u for its v = ss / D when it has any div.full (which of its divisions is which is not known
    from the counts: both are charged)."""
    ulps = lambda stem: PTX_FIGURES[stem].rel / FP32_ULP_REL  # noqa: E731
    inv = []
    if any(s.startswith("rsqrt.approx") for s in counts):
        inv.append(ulps("rsqrt.approx"))
    if any(s.startswith("sqrt.approx") for s in counts):
        inv.append(ulps("sqrt.approx") + (ulps("div.full") if any(s.startswith("div.full") for s in counts)
                                          else ulps("div.rn")))
    if "sqrt.rn" in counts:
        inv.append(ulps("sqrt.rn") + ulps("div.rn"))
    divides = any(s.startswith("div.full") for s in counts)
    return (max(inv) if inv else ulps("div.full") + ulps("sqrt.approx"),
            PTX_FIGURES["div.full"].rel / PTX_FIGURES["div.rn"].rel if divides else 1.0)


def norm_ptx_model_line(counts) -> str:
    """One line: the CUDA figures P1 on a GPU must allow an RMSNorm kernel whose PTX has `counts`."""
    inv, div = cuda_figures_for_ptx(counts)
    return f"INV within {inv:.3f} x 2^-23, ss / D within {div:g}u"
