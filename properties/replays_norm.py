"""Replay functions of the RMSNorm properties P1, P4, P12 (no hypothesis here: `kernelprop replay`
imports this after any hypothesis upgrade). Each is `fn(inputs, impl, params) -> Outcome`; `inputs`
maps names to NormInputs, `params` is JSON-able (recipes as dicts, the backend's INV ulp bound as
a float). Every bound is derived in docs/bounds-rmsnorm.md; the one-line derivations sit in the
`*_DOC` strings next to the functions that use them.

Error model shared by all bounds (u = 2^-24, fp32 unit roundoff; "ulp" = 2^-23 relative):
    ss  = sum x_i^2      relative error gamma(depth) (positive terms, any order of `depth` additions)
                         + absolute 2^-150 per square or partial that may land in the subnormals
    v   = ss / D + eps   + u (division) + u (addition), relative to v; ss's error damped by ss/D / v
    inv = INV(v)         v's relative error halved (d v^-1/2 = -1/2 v^-3/2 dv) + inv_ulps * 2^-23
    y   = x * inv [* w]  + u per product, then one rounding to the output dtype
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict
from typing import Optional

import torch

from kernelprop.golden.metrics import mismatch_ratio, ulp_distance_fp32
from kernelprop.golden.recipes import NormRecipe
from kernelprop.golden.rmsnorm import (
    NormBackend,
    U_FP32,
    gamma,
    norm_relative_gap,
    rms_norm_golden,
    rms_norm_trace,
    rounding_interval_gap,
)
from kernelprop.golden.rounding import round_to_bf16
from kernelprop.evidence import Outcome

ULP = 2.0 ** -23          # the relative size of one fp32 ulp, at most
HALF_SUBNORMAL = 2.0 ** -150  # absolute error of one fp32 rounding in the subnormal range
FLUSHED = 2.0 ** -126         # absolute error of one result flushed to zero (FTZ, CUDA: SPEC 5)
SLACK = 1 + 1e-3          # second-order terms (products of relative errors, all << 1e-3)

# INV error bounds per backend, in units of 2^-23 relative (see docs/bounds-rmsnorm.md#backends).
# cpu: the Triton interpreter's rsqrt / 1 / sqrt / div_rn(1, sqrt_rn) are numpy's correctly rounded
#      1 / sqrt (two roundings: 0.75); torch CPU rsqrt and 1 / sqrt measured <= 0.77 on 8M values.
# cuda: H100, tl.math.rsqrt, 1 / tl.sqrt, div_rn(1, sqrt_rn) within 3 ulp of fp64 (SPEC section 5).
INV_ULPS = {"cpu": 1.0, "cuda": 3.0}
GOLDEN_INV_ULPS = 1.0     # golden INV: one (rsqrt) or two (recip_sqrt) correctly rounded ops

P1_DOC = ("P1: |impl - golden| <= the bf16 flips (or fp32 |y| * rel) that rel allows; rel = impl + "
          "golden error vs exact: 1/2 (gamma(depth_impl + roundings_golden - 1) + u) ss/D/v + 4u, "
          "+ (inv_ulps + 1) 2^-23 + 4u, + subnormal 2^-150 terms; docs/bounds-rmsnorm.md#p1")
P4A_DOC = ("P4a: per row max fp32 ulp distance of y (out fp32, no weight) between two INV variants <= "
           "floor(2^24 (2 inv_ulps 2^-23 + 2u)): both share v, each inv within inv_ulps 2^-23 of "
           "INV(v), one rounding of x * inv each; an ulp is >= 2^-24 |y|; docs/bounds-rmsnorm.md#p4")
P4B_DOC = ("P4b: bf16 mismatches between two INV variants <= #elements of the impl's fp32 y (variant "
           "A) whose rounding is undecided under relative 2 inv_ulps 2^-23 + 2 u per product "
           "(data-dependent count); docs/bounds-rmsnorm.md#p4")
P4C_DOC = ("P4c (expects a violation): the modelled k-bit rsqrt's bf16 mismatches vs recip_sqrt must "
           "EXCEED the P4b count (checked as allowed + 1 <= mismatches); expected mismatch fraction "
           "~0.26 * 2^(8-k) >> allowed ~2^-11 of n; docs/bounds-rmsnorm.md#p4c")
P12S_DOC = ("P12 scale: |y(2^j x) - y(x)| <= hull of x/sqrt(ms+eps)(1 +- r1) and "
            "x/sqrt(ms+eps 2^-2j)(1 +- r2), rounded; r = impl error vs exact (gamma(depth), inv_ulps, "
            "products); eps-aware: the exact ratio is sqrt((ms+eps)/(ms+eps 2^-2j)); "
            "docs/bounds-rmsnorm.md#p12")
P12E_DOC = ("P12 exact: with eps = 0 and no over/underflow (nonzero |x|, |2^j x| in [2^-56, 2^56]) "
            "every golden step commutes with 2^j scaling: golden(2^j x) == golden(x) bitwise; "
            "docs/bounds-rmsnorm.md#p12")
P12C_DOC = ("P12 chunks: y(chunk c1) vs y(chunk c2): both within r_c of exact, r_c = 1/2 (gamma(adds "
            "of order c) ss/D/v + 2u) + inv_ulps 2^-23 + products u; bound = rounding of the hull; "
            "docs/bounds-rmsnorm.md#p12")


# %% the model's domain

# smallest nonzero v = mean(x^2) + eps the first-order model is sound for: D roundings of <= 2^-150
# (cpu) or D flushed squares of < 2^-126 (cuda, FTZ) stay <= 2^-14 of D v
V_MIN_BY_BACKEND = {"cpu": 2.0 ** -136, "cuda": 2.0 ** -112}
V_MIN = V_MIN_BY_BACKEND["cuda" if os.environ.get("KERNELPROP_BACKEND") == "cuda" else "cpu"]


def in_domain(x: torch.Tensor, eps: float) -> bool:
    """True when every row's exact v = mean(x^2) + fp32(eps) is 0 (then y is 0 / 0 = NaN on every
    side) or >= V_MIN. Below V_MIN the squares' subnormal roundings (<= 2^-150 each, <= D 2^-150 in
    all against D v) exceed 2^-14 relative, and as v -> 0 an fp32 sum of squares may flush to 0
    while the exact one does not (y = inf vs finite): fp32 RMSNorm itself is then ill-posed, and
    the properties draw no such rows (docs/bounds-rmsnorm.md#domain)."""
    if x.numel() == 0:
        return True
    xd = x.double()
    v = (xd * xd).mean(-1) + _eps32(eps)
    return bool(((v == 0) | (v >= V_MIN)).all())


# %% params

def recipe_params(recipe: NormRecipe, backend: str, **extra) -> dict:
    """JSON-able params: the recipe as a dict and the backend's INV ulp bound (kept in the report,
    so a replay on another machine checks the same bound)."""
    return {"recipe": asdict(recipe), "inv_ulps": INV_ULPS[backend], "sum_lambda": SUM_LAMBDA,
            "ftz": backend == "cuda", **extra}


def _sub(params: dict) -> float:
    """Absolute loss of one implementation result in the subnormal range: 2^-150 (nearest
    rounding) or 2^-126 (flushed to zero: CUDA's libdevice and .ftz instructions, SPEC 5)."""
    return FLUSHED if params.get("ftz") else HALF_SUBNORMAL


def _recipe(params: dict, key: str = "recipe") -> NormRecipe:
    return NormRecipe(**params[key]) if params.get(key) else NormRecipe()


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
                   inv_ulps: float, sub: float = HALF_SUBNORMAL) -> torch.Tensor:
    """[...] bound on |y - y_exact| / |y_exact| before the output rounding, for one fp32
    implementation whose sum of squares has `depth` chained roundings and `n_round` roundings that
    may underflow; y_exact = x w / sqrt(sum x^2 / D + fp32(eps)) in exact arithmetic."""
    D = x.shape[-1]
    ss = _rows(x)
    v = ss / D + _eps32(eps)
    share = torch.where(v > 0, (ss / D) / v.clamp_min(1e-300), torch.ones_like(v))
    rel_v = gamma(depth) * share + 2 * U_FP32 + _underflow_rel(ss, D, v, n_round, sub)
    products = 1 + (weight is not None)
    return (0.5 * rel_v + inv_ulps * ULP + products * U_FP32) * SLACK


def exact_y(x: torch.Tensor, weight, eps: float) -> torch.Tensor:
    """float64 y = x w / sqrt(mean x^2 + fp32(eps)): the exact value the fp32 model perturbs
    (implementations add eps as an fp32 number; fp64 rounding ~1e-16 is inside SLACK)."""
    xd = x.double()
    y = xd / torch.sqrt((xd * xd).mean(-1, keepdim=True) + _eps32(eps))
    return y if weight is None else y * weight.double()


def _fp32_out(lo: torch.Tensor, hi: torch.Tensor):
    """float64 interval ends -> fp32 ends rounded outward (conversion moves them < 1 fp32 ulp)."""
    lo32, hi32 = lo.float(), hi.float()
    lo32 = torch.nextafter(lo32, torch.full_like(lo32, -math.inf))
    hi32 = torch.nextafter(hi32, torch.full_like(hi32, math.inf))
    return lo32, hi32


def _interval(center: torch.Tensor, rel: torch.Tensor, abs_: float = 0.0):
    c = center.double()
    width = c.abs() * rel + abs_
    return c - width, c + width


def pair_bound(iv1, iv2, recipe: NormRecipe) -> torch.Tensor:
    """Bound on |y1 - y2| when y1 = OUT(t1), y2 = OUT(t2) for some t1 in iv1, t2 in iv2 (float64
    intervals) and OUT is the recipe's output rounding (monotone): max(OUT(hi1) - OUT(lo2),
    OUT(hi2) - OUT(lo1)). NaN intervals (0/0 rows) give 0: both sides must then be NaN."""
    (lo1, hi1), (lo2, hi2) = iv1, iv2
    if recipe.out_dtype == "bf16":
        (lo1, hi1), (lo2, hi2) = _fp32_out(lo1, hi1), _fp32_out(lo2, hi2)
        r = lambda t: round_to_bf16(t, recipe.rounding).double()  # noqa: E731
        lo1, hi1, lo2, hi2 = r(lo1), r(hi1), r(lo2), r(hi2)
    bound = torch.maximum(hi1 - lo2, hi2 - lo1)
    return torch.where(torch.isnan(bound), torch.zeros_like(bound), bound)


def _nan_free(bound: torch.Tensor) -> torch.Tensor:
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
                    sub: float = HALF_SUBNORMAL) -> torch.Tensor:
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
                                                  sum_lambda=sum_lambda))
    ss = _rows(x)
    v = ss / D + _eps32(eps)
    under = 0.5 * (_underflow_rel(ss, D, v, D, sub) + _underflow_rel(ss, D, v, n_golden))
    return rel + under * SLACK


def p1_bound(trace, inputs, recipe: NormRecipe, inv_ulps: float,
             sum_lambda: Optional[float] = SUM_LAMBDA, ftz: bool = False) -> torch.Tensor:
    """Elementwise P1 bound: both fp32 y lie in y_golden (1 +- rel) +- subnormal product errors
    (and, under FTZ, may be 0 where x or y is subnormal)."""
    sub = FLUSHED if ftz else HALF_SUBNORMAL
    rel = p1_relative_gap(trace, inputs.x, inputs.eps, recipe, inv_ulps, sum_lambda, sub)[..., None]
    iv = _with_flush(_interval(trace.y_fp32, rel, _abs_products(inputs.weight, sub)), inputs.x, ftz)
    if recipe.out_dtype == "fp32":
        return _nan_free(torch.maximum(iv[1] - trace.y_fp32.double(), trace.y_fp32.double() - iv[0]))
    # both the implementation's and the golden's fp32 y lie in iv: bound OUT(hi) - OUT(lo)
    return pair_bound(iv, iv, recipe)


def p1(inputs: dict, impl, params: dict) -> Outcome:
    """Implementation vs golden under one recipe, within the sound-and-tight P1 bound."""
    x = inputs["inputs"]
    recipe = _recipe(params)
    actual = x.call(impl, recipe=recipe)
    trace = x.call(rms_norm_trace, recipe=recipe)
    bound = p1_bound(trace, x, recipe, params["inv_ulps"], params.get("sum_lambda"),
                     bool(params.get("ftz")))
    return Outcome(actual=actual, expected=trace.y, bound=bound, bound_doc=P1_DOC,
                   metrics={"undecided": int((bound > 0).sum())} if recipe.out_dtype == "bf16" else {})


# %% P4

def p4_ulp_bound(inv_ulps: float, products: int = 1) -> int:
    """fp32 ulps between x * inv_A and x * inv_B (rounded once each) when both inv are within
    inv_ulps 2^-23 of the same INV(v): |y_A - y_B| <= |y|(2 inv_ulps 2^-23 + 2 products u)(1 + 4u),
    and every fp32 ulp in between is >= 2^-24 min(|y_A|, |y_B|)."""
    rel = 2 * inv_ulps * ULP + 2 * products * U_FP32
    return math.floor(rel * 2**24 * (1 + 2.0**-20))


def _variants(params: dict):
    base = _recipe(params)
    return base.replace(inv=params["inv_a"]), base.replace(inv=params["inv_b"])


def p4_ulp(inputs: dict, impl, params: dict) -> Outcome:
    """P4a: per row, the max fp32 ulp distance of y (out fp32, weight None) between INV variants."""
    x = inputs["inputs"]
    ra, rb = (r.replace(out_dtype="fp32") for r in _variants(params))
    ya, yb = x.call(impl, recipe=ra), x.call(impl, recipe=rb)
    D = x.x.shape[-1]
    dist = ulp_distance_fp32(ya, yb).reshape(-1, D).amax(-1).double()  # [rows]
    limit = p4_ulp_bound(params["inv_ulps"], 1 + (x.weight is not None))
    bound = torch.full_like(dist, float(limit))
    return Outcome(actual=dist, expected=torch.zeros_like(dist), bound=bound, bound_doc=P4A_DOC,
                   metrics={"max_ulps": int(dist.max()) if dist.numel() else 0, "limit": limit})


def p4_relative(inv_ulps: float, products: int) -> float:
    """Relative distance between the fp32 y of two INV variants sharing v (see p4_ulp_bound)."""
    return (2 * inv_ulps * ULP + 2 * products * U_FP32) * SLACK


def undecided_count(y_fp32: torch.Tensor, rel: float, mode: str) -> int:
    """Elements whose bf16 rounding a relative perturbation up to `rel` can change."""
    gap = rounding_interval_gap(y_fp32, torch.tensor(rel, dtype=torch.float64), mode)
    return int((_nan_free(gap) > 0).sum())


def _count_outcome(count: int, allowed: int, total: int, doc: str) -> Outcome:
    return Outcome(actual=torch.tensor([float(count)], dtype=torch.float64),
                   expected=torch.zeros(1, dtype=torch.float64),
                   bound=torch.tensor([float(allowed)], dtype=torch.float64), bound_doc=doc,
                   metrics={"mismatches": count, "allowed": allowed, "total": total,
                            "mismatch_pct": 100 * count / max(total, 1),
                            "allowed_pct": 100 * allowed / max(total, 1)})


def p4_mismatch(inputs: dict, impl, params: dict) -> Outcome:
    """P4b: bf16 mismatch count between INV variants A, B <= the undecided count around A's fp32 y."""
    x = inputs["inputs"]
    ra, rb = (r.replace(out_dtype="bf16") for r in _variants(params))
    ya32 = x.call(impl, recipe=ra.replace(out_dtype="fp32"))
    ya, yb = x.call(impl, recipe=ra), x.call(impl, recipe=rb)
    rel = p4_relative(params["inv_ulps"], 1 + (x.weight is not None))
    allowed = undecided_count(ya32, rel, ra.rounding)
    m = mismatch_ratio(ya.float(), yb.float())
    return _count_outcome(m.count, allowed, m.total, P4B_DOC)


def modelled_mismatch(x, recipe: NormRecipe, approx_bits: int, inv_ulps: float):
    """(mismatches, allowed, total): golden rsqrt_approx(k) vs golden `recipe` (bf16 outputs), and
    the P4b count of undecided elements around the golden's fp32 y of `recipe`."""
    base = x.call(rms_norm_trace, recipe=recipe)
    approx = x.call(rms_norm_golden, recipe=recipe.replace(inv="rsqrt_approx",
                                                             approx_bits=approx_bits))
    rel = p4_relative(inv_ulps, 1 + (x.weight is not None))
    allowed = undecided_count(base.y_fp32, rel, recipe.rounding)
    m = mismatch_ratio(base.y.float(), approx.float())
    return m.count, allowed, m.total


def p4_modelled_rsqrt(inputs: dict, impl, params: dict) -> Outcome:
    """P4c: the modelled k-bit rsqrt must violate the P4b bound (allowed + 1 <= mismatches)."""
    x = inputs["inputs"]
    recipe = _recipe(params).replace(out_dtype="bf16")
    count, allowed, total = modelled_mismatch(x, recipe, params["approx_bits"], params["inv_ulps"])
    out = _count_outcome(count, allowed, total, P4C_DOC)
    # the check is reversed: allowed + 1 <= mismatches, i.e. the bound is violated
    out.actual, out.bound = out.bound + 1, out.actual
    out.metrics["approx_bits"] = params["approx_bits"]
    return out


def npu_measurement(x, recipe: NormRecipe, bits, inv_ulps: float):
    """The SPEC section 1 measurement in software, on the golden (bf16 outputs of `recipe`, whose
    inv is recip_sqrt): (mismatch ratio of rsqrt vs recip_sqrt, {k: mismatch count of the k-bit
    modelled rsqrt}, the P4b allowed count at inv_ulps)."""
    base = x.call(rms_norm_trace, recipe=recipe)
    ref = base.y.float()
    real = mismatch_ratio(ref, x.call(rms_norm_golden, recipe=recipe.replace(inv="rsqrt")).float())
    modelled = {k: int((x.call(rms_norm_golden, recipe=recipe.replace(
        inv="rsqrt_approx", approx_bits=k)).float() != ref).sum()) for k in bits}
    allowed = undecided_count(base.y_fp32, p4_relative(inv_ulps, 1 + (x.weight is not None)),
                              recipe.rounding)
    return real.ratio, modelled, allowed


# %% P12

def _scaled(x, log2_scale: int):
    return x.replace(x=x.x * (2.0 ** log2_scale))


def p12_scale(inputs: dict, impl, params: dict) -> Outcome:
    """P12: impl(2^j x) vs impl(x) within the eps-aware bound (see P12S_DOC)."""
    x = inputs["inputs"]
    recipe = _recipe(params)
    ax = _scaled(x, params["log2_scale"])
    y1, y2 = x.call(impl, recipe=recipe), ax.call(impl, recipe=recipe)
    D = x.x.shape[-1]
    depth = impl_sum_depth(D, recipe.chunk, x.x.dtype)
    ends = []
    for inp in (x, ax):
        r = error_vs_exact(inp.x, inp.weight, inp.eps, depth=depth, n_round=D,
                           inv_ulps=params["inv_ulps"], sub=_sub(params))[..., None]
        ends.append(_with_flush(_interval(exact_y(inp.x, inp.weight, inp.eps), r,
                                          _abs_products(inp.weight, _sub(params)) / 2),
                                inp.x, bool(params.get("ftz"))))
    bound = pair_bound(ends[0], ends[1], recipe)
    return Outcome(actual=y2, expected=y1, bound=bound, bound_doc=P12S_DOC)


def p12_golden_exact(inputs: dict, impl, params: dict) -> Outcome:
    """P12: with eps = 0 (and no over/underflow) the golden is exactly invariant to 2^j x."""
    x = inputs["inputs"].replace(eps=0.0)
    recipe = _recipe(params)
    ax = _scaled(x, params["log2_scale"])
    return Outcome(actual=ax.call(rms_norm_golden, recipe=recipe),
                   expected=x.call(rms_norm_golden, recipe=recipe), bound=None, bound_doc=P12E_DOC)


def p12_chunks(inputs: dict, impl, params: dict) -> Outcome:
    """P12: y(chunk c1) vs y(chunk c2) of the golden (impl None or params who == 'golden') or of the
    implementation, each within its order's fp32 bound of the exact value."""
    x = inputs["inputs"]
    base = _recipe(params)
    golden = params.get("who") == "golden"
    D = x.x.shape[-1]
    outs, ivs = [], []
    for chunk in (params["chunk_a"], params["chunk_b"]):
        recipe = base.replace(chunk=chunk)
        if golden:
            y = x.call(rms_norm_golden, recipe=recipe)
            n = golden_sum_roundings(D, chunk)
            r = error_vs_exact(x.x, x.weight, x.eps, depth=n, n_round=n, inv_ulps=GOLDEN_INV_ULPS)
        else:
            y = x.call(impl, recipe=recipe)
            r = error_vs_exact(x.x, x.weight, x.eps, depth=impl_sum_depth(D, chunk, x.x.dtype),
                               n_round=D, inv_ulps=params["inv_ulps"], sub=_sub(params))
        outs.append(y)
        sub = HALF_SUBNORMAL if golden else _sub(params)
        ivs.append(_with_flush(_interval(exact_y(x.x, x.weight, x.eps), r[..., None],
                                         _abs_products(x.weight, sub) / 2),
                               x.x, bool(params.get("ftz")) and not golden))
    bound = pair_bound(ivs[0], ivs[1], base)
    return Outcome(actual=outs[1], expected=outs[0], bound=bound, bound_doc=P12C_DOC)
