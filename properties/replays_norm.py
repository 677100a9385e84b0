"""Replay functions of the RMSNorm properties P1, P4, P12 (no hypothesis here: `kernelprop replay`
imports this after any hypothesis upgrade). Each is `fn(inputs, impl, params) -> Outcome`; `inputs`
maps names to NormInputs, `params` holds recipe objects (a report writes them as dicts and
`recipe_of` reads those back) and JSON-able figures (the backend's INV ulp bound as a float). Every bound is derived in docs/bounds-rmsnorm.md; the one-line derivations sit in the
`*_DOC` strings next to the functions that use them.

The error model and the bounds live beside the golden: golden/rmsnorm_bounds.py (fp32/bf16
constants: golden/error_model.py).
"""
from __future__ import annotations

import math

import torch

from kernelprop.golden.metrics import mismatch_ratio, ulp_distance_fp32
from kernelprop.golden.rmsnorm_inputs import NormRecipe
from kernelprop.golden.output_rounding import nan_free, output_numerics
from kernelprop.golden.error_model import U_FP32, rounding_interval_gap, error_model_family
from kernelprop.golden.rmsnorm import rms_norm_fp64, rms_norm_golden, rms_norm_trace
from kernelprop.golden.rmsnorm_bounds import (
    FLUSHED, GOLDEN_INV_ULPS, HALF_SUBNORMAL, NORM_FTZ, SLACK, SUM_LAMBDA, ULP,
    V_DIV_UNITS_BY_BACKEND, cuda_figures_for_ptx, exact_interval, golden_sum_roundings,
    impl_sum_depth, inv_ulps_for, p1_domain, p1_interval, pair_bound)
from kernelprop.core.evidence import Outcome
from kernelprop.core.plain import from_plain
from kernelprop.core.ptx_audit import declared_ptx

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


# %% params

def recipe_params(recipe: NormRecipe, backend: str, impl=None, **extra) -> dict:
    """Params: the recipe (the object; a report writes it as a dict) and the error model's figures (the backend's, or
    `--error-model`'s: golden.error_model.error_model_family): the INV ulp bound, flush, v's
    division, kept in the report so a replay on another machine checks the same bound. Under the
    CUDA model, an `impl` (P1: one recipe) that declares its PTX gets the figures that PTX calls
    for (with_declared_ptx)."""
    model = error_model_family(backend)
    inv = inv_ulps_for(model, recipe.inv, extra.get("inv_a"), extra.get("inv_b"))
    params = {"recipe": recipe, "inv_ulps": inv, "sum_lambda": SUM_LAMBDA,
              "ftz": NORM_FTZ[model], "v_div_units": V_DIV_UNITS_BY_BACKEND[model],
              "error_model": model, **extra}
    return with_declared_ptx(params, recipe, impl)


def with_declared_ptx(params: dict, recipe: NormRecipe, impl) -> dict:
    """params (of one recipe, recipe_params) with, under the CUDA model, the INV and v figures that
    `impl`'s declared PTX for `recipe` calls for (kernelprop.core.ptx_audit.declared_ptx,
    golden.rmsnorm_bounds.cuda_figures_for_ptx), its stems kept as "ptx"; else params as given."""
    stems = declared_ptx(impl.fn, recipe) if params.get("error_model") == "cuda" and impl is not None else None
    if stems is None:
        return params
    inv_ulps, v_div_units = cuda_figures_for_ptx(stems)
    return {**params, "inv_ulps": inv_ulps, "v_div_units": v_div_units, "ptx": sorted(stems)}


def _backend(params: dict) -> str:
    """The error model family the bounds charge (cpu or cuda): the one the params were made under
    (recipe_params), else this run's (golden.error_model.error_model_family)."""
    return params.get("error_model") or error_model_family()


def _sub(params: dict) -> float:
    """Absolute loss of one implementation result in the subnormal range: 2^-150 (nearest
    rounding) or 2^-126 (flushed to zero: CUDA's libdevice and .ftz instructions, SPEC 5)."""
    return FLUSHED if params.get("ftz") else HALF_SUBNORMAL


def recipe_of(params: dict, key: str = "recipe") -> NormRecipe:
    """The recipe params hold under `key` (a report's dict read back as the object), else the
    default."""
    return from_plain(NormRecipe, params.get(key), NormRecipe())


# %% error model

def p1(inputs: dict, impl, params: dict) -> Outcome:
    """Implementation vs golden under one recipe, within the sound-and-tight P1 bound."""
    x = inputs["inputs"]
    declared = recipe_of(params)
    actual = x.call(impl, recipe=declared)
    trace = x.call(rms_norm_trace, recipe=declared)
    recipe = declared.for_input(x.x.dtype)   # out_dtype / compute_dtype "input" resolved
    iv = p1_interval(trace, x, recipe, params["inv_ulps"], params.get("sum_lambda"),
                     bool(params.get("ftz")), _backend(params), params.get("v_div_units"))
    out = output_numerics(recipe.out_dtype, recipe.rounding)
    e = out.golden_check(actual, p1_domain(trace, iv, recipe),
                         out.interval(trace.y, trace.y_fp32, *iv, P1_DOC))
    return Outcome(actual=actual, expected=e.expected, bound=e.bound, bound_doc=e.doc,
                   discrete=e.discrete, margin_rule=e.margin, metrics=e.metrics,
                   golden_expected=True, truth=_offset_truth(x, recipe))


def _offset_truth(x, recipe: NormRecipe):
    """The fp64 truth with w' = offset + w where the recipe has an offset (None: the inputs' own
    truth, which has no offset, applies)."""
    if not recipe.weight_offset or x.weight is None:
        return None
    return x.call(rms_norm_fp64, weight_offset=recipe.weight_offset)


# %% P4

def p4_ulp_bound(inv_ulps: float, products: int = 1) -> int:
    """fp32 ulps between x * inv_A and x * inv_B (rounded once each) when both inv are within
    inv_ulps 2^-23 of the same INV(v): |y_A - y_B| <= |y|(2 inv_ulps 2^-23 + 2 products u)(1 + 4u),
    and every fp32 ulp in between is >= 2^-24 min(|y_A|, |y_B|)."""
    rel = 2 * inv_ulps * ULP + 2 * products * U_FP32
    return math.floor(rel * 2**24 * (1 + 2.0**-20))


def _variants(params: dict):
    base = recipe_of(params)
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
    return int((nan_free(gap) > 0).sum())


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
    recipe = recipe_of(params).replace(out_dtype="bf16")
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
    declared = recipe_of(params)
    ax = _scaled(x, params["log2_scale"])
    y1, y2 = x.call(impl, recipe=declared), ax.call(impl, recipe=declared)
    recipe = declared.for_input(x.x.dtype)
    D = x.x.shape[-1]
    depth = impl_sum_depth(D, recipe.chunk, x.x.dtype)
    ends = [exact_interval(inp.x, inp.weight, inp.eps, recipe, depth=depth, n_round=D,
                           inv_ulps=params["inv_ulps"], ftz=bool(params.get("ftz")), sub=_sub(params),
                           backend=_backend(params), v_div_units=params.get("v_div_units"))
            for inp in (x, ax)]
    bound = pair_bound(ends[0], ends[1], recipe)
    return Outcome(actual=y2, expected=y1, bound=bound, bound_doc=P12S_DOC,
                   truth=_offset_truth(x, recipe))


def p12_golden_exact(inputs: dict, impl, params: dict) -> Outcome:
    """P12: with eps = 0 (and no over/underflow) the golden is exactly invariant to 2^j x."""
    x = inputs["inputs"].replace(eps=0.0)
    recipe = recipe_of(params)
    ax = _scaled(x, params["log2_scale"])
    return Outcome(actual=ax.call(rms_norm_golden, recipe=recipe),
                   expected=x.call(rms_norm_golden, recipe=recipe), bound=None, bound_doc=P12E_DOC)


def p12_chunks(inputs: dict, impl, params: dict) -> Outcome:
    """P12: y(chunk c1) vs y(chunk c2) of the golden (impl None or params who == 'golden') or of the
    implementation, each within its order's fp32 bound of the exact value."""
    x = inputs["inputs"]
    base = recipe_of(params)
    golden = params.get("who") == "golden"
    D = x.x.shape[-1]
    outs, ivs = [], []
    for chunk in (params["chunk_a"], params["chunk_b"]):
        recipe = base.replace(chunk=chunk)
        resolved = recipe.for_input(x.x.dtype)
        if golden:
            y = x.call(rms_norm_golden, recipe=recipe)
            n = golden_sum_roundings(D, chunk)
            iv = exact_interval(x.x, x.weight, x.eps, resolved, depth=n, n_round=n,
                                inv_ulps=GOLDEN_INV_ULPS, backend=_backend(params))
        else:
            y = x.call(impl, recipe=recipe)
            iv = exact_interval(x.x, x.weight, x.eps, resolved,
                                depth=impl_sum_depth(D, chunk, x.x.dtype), n_round=D,
                                inv_ulps=params["inv_ulps"], ftz=bool(params.get("ftz")),
                                sub=_sub(params), backend=_backend(params),
                                v_div_units=params.get("v_div_units"))
        outs.append(y)
        ivs.append(iv)
    bound = pair_bound(ivs[0], ivs[1], base.for_input(x.x.dtype))
    return Outcome(actual=outs[1], expected=outs[0], bound=bound, bound_doc=P12C_DOC,
                   truth=_offset_truth(x, base))


# %% P9 (rows): non-finite input stays in its row

P9N_DOC = ("P9 non-finite rows: a row holding NaN is NaN throughout; a row holding +-inf (no NaN) is "
           "NaN at its infinities and a zero with the sign of x_i * w_i elsewhere (ss = inf, "
           "inv = 0); every other row bitwise equal to the implementation's output without the "
           "non-finite rows (NaN payloads not compared); docs/bounds-rmsnorm.md#nonfinite")


def _one_nan(t: torch.Tensor) -> torch.Tensor:
    """t with every NaN replaced by the same NaN (payload and sign are not part of the contract)."""
    return torch.where(torch.isnan(t), torch.full_like(t, math.nan), t)


def p9_nonfinite_rows(inputs: dict, impl, params: dict) -> Outcome:
    """The implementation on x with non-finite rows vs its own output on the same x without them
    (inputs["clean"]): the documented result in the non-finite rows, bitwise equal elsewhere."""
    from kernelprop.golden.rmsnorm import nonfinite_row_result, nonfinite_rows

    x, clean = inputs["inputs"], inputs["clean"]
    recipe = recipe_of(params)
    actual = x.call(impl, recipe=recipe)
    unchanged = clean.call(impl, recipe=recipe)
    bad = nonfinite_rows(x.x).to(actual.device)[..., None]
    documented = nonfinite_row_result(x.x, x.weight, recipe.weight_offset).to(actual.device)
    expected = torch.where(bad, documented.to(actual.dtype), unchanged)
    return Outcome(actual=_one_nan(actual), expected=_one_nan(expected), bound=None,
                   bound_doc=P9N_DOC, metrics={"nonfinite_rows": int(bad.sum())})
