"""Replay functions of the attention properties (no hypothesis here: `kernelprop replay` imports
this after any hypothesis upgrade). Each is `fn(inputs, impl, params) -> Outcome`; `inputs` maps
names to AttnInputs, `params` holds recipe objects (a report writes them as dicts, which `_recipe`
reads back) and JSON-able values."""
from __future__ import annotations

import math
from collections import Counter
from typing import Optional

import torch

from kernelprop.golden.attention import (gather_kv, sparse_attention_fp64, sparse_attention_trace,
                              valid_index_mask)
from kernelprop.golden.error_model import TORCH_EXPF_REL, U_FP32, error_model_family
from kernelprop.golden.attention_bounds import (BACKEND_MODELS, MODELS, attention_p1_bound, attention_p1_terms,
                                               cuda_model_for_ptx,
                                               attention_p2_bound)
from kernelprop.golden.metrics import ratio_rule
from kernelprop.golden.output_margin import Fp32Domain
from kernelprop.golden.output_rounding import output_numerics
from kernelprop.golden.attention_inputs import AttnRecipe
from kernelprop.core.evidence import Outcome
from kernelprop.core.plain import from_plain
from kernelprop.core.ptx_audit import declared_ptx

P1_DOC = ("P1: |impl - golden| <= the worst direction of the P flips the fp32 error model makes "
          "possible (score error of the backend's model: random-order lambda = 6 on cpu, 2^-21 + u|x| "
          "exp error; on cuda the wgmma k16 block-FMA bound and ex2.approx, 5u + 1.224u|x|, no flush) "
          "+ fp32 noise (tiles x merge error); docs/bounds.md#p1, #gpu-model")


def rounded_output(recipe: AttnRecipe, center, bound, doc: str, *, from_output=None, factor=1.0):
    """(expected, bound, doc) for an implementation output of `recipe.out_dtype` (nearest-even)
    whose fp32 value lies within `bound` of `center`; from_output: the centre is built from this
    output of the implementation (scaled by `factor`); golden.output_rounding decides."""
    e = output_numerics(recipe.out_dtype).around(center, bound, doc, from_output=from_output,
                                                 factor=factor)
    return e.expected, e.bound, e.doc


def recipe_params(recipe: AttnRecipe, error_model: Optional[str] = None, impl=None) -> dict:
    """Params: the recipe (the object; a report writes it as a dict) and the name of the P1 error
    model (golden.attention_bounds MODELS; default: the active model family's,
    golden.error_model.error_model_family: `--error-model`, else the suite backend's), kept so a
    replay checks the same bound. Under the
    CUDA model, an `impl` that declares its PTX (kernelprop.core.ptx_audit.declared_ptx) gets the
    figures that PTX calls for (golden.attention_bounds.cuda_model_for_ptx): its stems are kept as "ptx"."""
    if error_model is None:
        error_model = BACKEND_MODELS[error_model_family()]
    params = {"recipe": recipe, "error_model": error_model}
    if error_model == "cuda" and impl is not None:
        stems = declared_ptx(impl.fn, recipe)
        if stems is not None:
            params["ptx"] = sorted(stems)
    return params


def _model(params: dict, impl=None, recipe: Optional[AttnRecipe] = None):
    """The P1 error model of params (reports written before it was stored: the worst case; under
    the CUDA model, with PTX stems in params or declared by `impl` for `recipe`
    (kernelprop.core.ptx_audit.declared_ptx): the figures they call for)."""
    if params.get("error_model") == "cuda":
        stems = params.get("ptx") or (declared_ptx(getattr(impl, "fn", impl), recipe) if impl is not None else None)
        if stems:
            return cuda_model_for_ptx(Counter(stems))
    return MODELS[params.get("error_model", "worst")]


def _recipe(params: dict, key: str = "recipe") -> AttnRecipe:
    """The recipe params hold under `key` (a report's dict read back as the object), else the
    default."""
    return from_plain(AttnRecipe, params.get(key), AttnRecipe())


def _impl_and_trace(inputs: dict, impl, params: dict):
    """(inputs, recipe, the implementation's output, the golden's trace) of a property on one
    input set under one recipe."""
    x = inputs["inputs"]
    recipe = _recipe(params)
    return x, recipe, x.call(impl, recipe=recipe), x.call(sparse_attention_trace, recipe=recipe)


def p1(inputs: dict, impl, params: dict) -> Outcome:
    """Kernel vs golden under one recipe, within the sound-and-tight P1 bound."""
    x, recipe, actual, trace = _impl_and_trace(inputs, impl, params)
    terms = attention_p1_terms(trace, x.q, x.attn_sink, recipe, softmax_scale=x.softmax_scale,
                               backend=_model(params, impl, recipe))
    out = output_numerics(recipe.out_dtype)
    # the fp32 statement: o within the bound of trace.o, its discrete share the P flips
    # (docs/bounds.md#p1-margin)
    domain = Fp32Domain(trace.o.double(), terms.total, terms.total, terms.flips, "rne")
    e = out.golden_check(actual, domain, out.around(trace.o, terms.total, P1_DOC))
    return Outcome(actual=actual, expected=e.expected, bound=e.bound, bound_doc=e.doc,
                   discrete=e.discrete, margin_rule=e.margin, metrics=e.metrics,
                   golden_expected=True)


# %% shared helpers (P2-P11)

def _props_doc(derivation: str, anchor: str) -> str:
    """A bound's one-line derivation and its section of docs/bounds-attention-props.md."""
    return f"{derivation}; docs/bounds-attention-props.md#{anchor}"


def _recipe_b(params: dict) -> AttnRecipe:
    """The second recipe of a two-recipe property (defaults to the first)."""
    return _recipe(params, "recipe_b") if params.get("recipe_b") else _recipe(params)


def _pair(inputs: dict):
    """(inputs, inputs_b): the two input sets a metamorphic property compares (b defaults to a)."""
    x = inputs["inputs"]
    return x, inputs.get("inputs_b", x)


def _trace(x, recipe: AttnRecipe):
    return x.call(sparse_attention_trace, recipe=recipe)


def _p1(x, trace, recipe: AttnRecipe, params: Optional[dict] = None) -> torch.Tensor:
    return attention_p1_bound(trace, x.q, x.attn_sink, recipe, softmax_scale=x.softmax_scale,
                              backend=_model(params or {}))


def _p2(x, trace, recipe: AttnRecipe) -> torch.Tensor:
    return attention_p2_bound(trace, x.attn_sink, recipe)


def _truth(x) -> torch.Tensor:
    return x.call(sparse_attention_fp64)


def weighted_truth(x, weights: Optional[torch.Tensor] = None, *, sink: bool = True) -> torch.Tensor:
    """fp64 softmax with a multiplicity per index position, independent of the tiled golden:
        o = sum_j c_j exp(s_j - M) k_j / (sum_j c_j exp(s_j - M) + [sink] exp(sink - M)).
    weights: [T, K] multiplicities c_j (None: all 1); sink False drops the sink term entirely
    ("no sink"). Tokens with no valid key give zeros. Returns [T, H, D] float64."""
    kv = gather_kv(x.ori_kv, x.ori_block_table, x.cmp_kv, x.cmp_block_table, x.sparse_indices,
                   x.seqused_kv, window=x.window, tokens_per_batch=x.tokens_per_batch)
    D = x.q.shape[-1]
    scale = D ** -0.5 if x.softmax_scale is None else float(x.softmax_scale)
    rows = kv.rows.double()                                               # [T, K, D]
    c = torch.ones(kv.valid.shape, dtype=torch.float64, device=rows.device) if weights is None \
        else weights.double()                                             # [T, K]
    s = torch.einsum("thd,tkd->thk", x.q.double(), rows) * scale         # [T, H, K]
    valid = kv.valid[:, None, :]                                          # [T, 1, K]
    has = valid.any(-1, keepdim=True)                                     # [T, 1, 1]
    M = torch.where(has, torch.where(valid, s, -torch.inf).amax(-1, keepdim=True), 0.0)
    e = torch.where(valid, c[:, None, :] * torch.exp(s - M), 0.0)        # [T, H, K]
    denom = e.sum(-1, keepdim=True)
    if sink:
        denom = denom + torch.exp(x.attn_sink.double()[None, :, None] - M)
    return torch.where(has, torch.einsum("thk,tkd->thd", e, rows) / denom, 0.0)


def _finite_image(o: torch.Tensor) -> torch.Tensor:
    """o with every NaN / +-inf replaced by 0: o is finite iff it equals this bitwise."""
    return torch.where(torch.isfinite(o), o, torch.zeros_like(o))


# %% P2: golden vs fp64 truth; the ratio rule for the implementation

P2_DOC = ("P2: |golden - fp64| <= first-order propagation of u_p e_j (P rounding) + fp32 score/exp "
          "errors + tiles x merge error; golden/attention_bounds.py")
P2_RATIO_DOC = _props_doc(
    "P2 ratio rule: max|impl - fp64| <= k max|golden - fp64| + floor with k = 1, floor = max "
    "P1 bound (triangle inequality: |impl - t| <= |golden - t| + P1)", "p2-ratio")


def p2_golden(inputs: dict, impl, params: dict) -> Outcome:
    """The golden of a recipe against the fp64 truth, within the analytic P2 bound."""
    x = inputs["inputs"]
    recipe = _recipe(params)
    trace = _trace(x, recipe)
    truth = _truth(x)
    return Outcome(actual=trace.o, expected=truth, bound=_p2(x, trace, recipe), bound_doc=P2_DOC,
                   truth=truth)


def p2_ratio(inputs: dict, impl, params: dict) -> Outcome:
    """err(impl) <= 1 * err(golden) + max P1, all against the fp64 truth. Encoded elementwise:
    |impl - truth| <= limit everywhere iff max|impl - truth| <= limit."""
    x, recipe, actual, trace = _impl_and_trace(inputs, impl, params)
    truth = _truth(x)
    p1 = _p1(x, trace, recipe, params)
    floor = float(p1.max()) if p1.numel() else 0.0
    rule = ratio_rule(actual, trace.o, truth, k=1.0, floor=floor)
    limit = rule.limit if math.isfinite(rule.limit) else 0.0  # a broken golden says nothing: fail
    limit = torch.full(actual.shape, limit, dtype=torch.float64, device=actual.device)
    expected, bound, doc = rounded_output(recipe, truth, limit, P2_RATIO_DOC)
    return Outcome(actual=actual, expected=expected, bound=bound, bound_doc=doc, truth=truth,
                   metrics={"ratio_rule": rule.to_dict()})


# %% P3 and P5: two computations of the same exact math

P3_GOLDEN_DOC = _props_doc(
    "P3/P5 golden: |g_a - g_b| <= P2(trace_a) + P2(trace_b) (both traces bound their distance "
    "to one exact value)", "p3")
P3_IMPL_DOC = _props_doc(
    "P3/P5 impl: |impl_a - impl_b| <= P1(a) + P1(b) + P2(a) + P2(b) (triangle inequality "
    "through golden_a, truth, golden_b)", "p3-impl")
P3_SIZE_DOC = _props_doc(
    "P3 fp32 P: each P2 bound <= 73 u32 kappa (tiles + 1)(1 + S + |sink - M|), kappa = max|k| "
    "of the token, S = max|s|: a few fp32 ulps x tiles, not vacuous", "p3-size")


def golden_agree(inputs: dict, impl, params: dict) -> Outcome:
    """Golden on (inputs, recipe) vs golden on (inputs_b, recipe_b), whose exact values coincide
    (other tile size or tiling: P3; pads inserted or indices permuted: P5)."""
    xa, xb = _pair(inputs)
    ra, rb = _recipe(params), _recipe_b(params)
    ta, tb = _trace(xa, ra), _trace(xb, rb)
    return Outcome(actual=ta.o, expected=tb.o, bound=_p2(xa, ta, ra) + _p2(xb, tb, rb),
                   bound_doc=P3_GOLDEN_DOC, truth=_truth(xa))


def impl_agree(inputs: dict, impl, params: dict) -> Outcome:
    """The implementation on (inputs, recipe) vs on (inputs_b, recipe_b), same exact math."""
    xa, xb = _pair(inputs)
    ra, rb = _recipe(params), _recipe_b(params)
    oa, ob = xa.call(impl, recipe=ra), xb.call(impl, recipe=rb)
    ta, tb = _trace(xa, ra), _trace(xb, rb)
    bound = _p1(xa, ta, ra, params) + _p1(xb, tb, rb, params) + _p2(xa, ta, ra) + _p2(xb, tb, rb)
    expected, bound, doc = rounded_output(ra, ob, bound, P3_IMPL_DOC, from_output=ob)
    return Outcome(actual=oa, expected=expected, bound=bound, bound_doc=doc, truth=_truth(xa))


def _p2_size(x, trace) -> torch.Tensor:
    """[T, H, 1] C u32 kappa (n + 1)(1 + S + |sink - M|) >= the fp32-P P2 bound of `trace`
    (docs/bounds-attention-props.md#p3-size): n tiles used, S = max|s_j|, kappa = max|k| of the
    token. +inf where the derivation's premise (n + 1)(16 u S + 10 u) <= 1e-3 fails."""
    valid = trace.valid[:, None, :]                                                  # [T, 1, K]
    S = torch.where(valid, trace.scores.double().abs(), 0.0).amax(-1)                # [T, H]
    kappa = torch.where(trace.valid[..., None], trace.rows.double().abs(), 0.0).flatten(1).amax(-1)
    M = trace.M.double()
    sink = x.attn_sink.double()[None, :].expand_as(M)
    sink_arg = torch.where(torch.isfinite(M) & torch.isfinite(sink), (sink - M).abs(), 0.0)
    n1 = trace.tiles_used.double() + 1
    size = P3_SIZE_C * U_FP32 * kappa[:, None] * n1 * (1 + S + sink_arg)
    premise = n1 * (16 * U_FP32 * S + 10 * U_FP32) <= 1e-3
    return torch.where(premise, size, torch.inf)[..., None]


P3_SIZE_C = 73  # 2 (shrink) x 1.003 (Lw / Lt) x 35 + 2 (the 2u|o| term), rounded up


def p3_fp32_bound_size(inputs: dict, impl, params: dict) -> Outcome:
    """With fp32 P the P3 bound is small: P2(a) + P2(b) <= size(a) + size(b)."""
    x = inputs["inputs"]
    ra, rb = _recipe(params), _recipe_b(params)
    ta, tb = _trace(x, ra), _trace(x, rb)
    bound = _p2(x, ta, ra) + _p2(x, tb, rb)
    limit = (_p2_size(x, ta) + _p2_size(x, tb)).expand_as(bound)
    return Outcome(actual=bound, expected=torch.zeros_like(bound), bound=limit,
                   bound_doc=P3_SIZE_DOC)


# %% P5: duplicated indices count twice

P5_DUP_GOLDEN_DOC = _props_doc(
    "P5 duplicates: |golden(dup) - weighted fp64 truth (duplicated row weight 1 + copies)| <= "
    "P2(dup)", "p5-dup")
P5_DUP_IMPL_DOC = _props_doc(
    "P5 duplicates: |impl(dup) - weighted fp64 truth| <= P1(dup) + P2(dup) (through "
    "golden(dup))", "p5-dup")


def _dup_weights(x, params: dict) -> torch.Tensor:
    """[T, K] multiplicities of the original index positions: 1, plus the copies inserted."""
    T, K = x.sparse_indices.shape
    w = torch.ones(T, K, dtype=torch.float64, device=x.q.device)
    pos = torch.tensor(params["dup_pos"], dtype=torch.long, device=w.device)
    copies = torch.tensor(params["dup_copies"], dtype=torch.float64, device=w.device)
    return w.scatter_add(1, pos[:, None], copies[:, None])


def p5_dup_golden(inputs: dict, impl, params: dict) -> Outcome:
    """inputs: original list; inputs_b: the list with copies inserted (params dup_pos, dup_copies)."""
    x, x_dup = inputs["inputs"], inputs["inputs_b"]
    recipe = _recipe(params)
    trace = _trace(x_dup, recipe)
    truth = weighted_truth(x, _dup_weights(x, params))
    return Outcome(actual=trace.o, expected=truth, bound=_p2(x_dup, trace, recipe),
                   bound_doc=P5_DUP_GOLDEN_DOC, truth=truth)


def p5_dup_impl(inputs: dict, impl, params: dict) -> Outcome:
    x, x_dup = inputs["inputs"], inputs["inputs_b"]
    recipe = _recipe(params)
    actual = x_dup.call(impl, recipe=recipe)
    trace = _trace(x_dup, recipe)
    truth = weighted_truth(x, _dup_weights(x, params))
    expected, bound, doc = rounded_output(
        recipe, truth, _p1(x_dup, trace, recipe, params) + _p2(x_dup, trace, recipe), P5_DUP_IMPL_DOC)
    return Outcome(actual=actual, expected=expected, bound=bound, bound_doc=doc, truth=truth)


# %% bitwise relations (P5 compacted pads, P8, P10, P11)

BITWISE_GOLDEN_DOC = ("P5: compacted tiling sees the same valid list, so the same tiles: "
                      "golden(padded) == golden(original) bitwise")
BITWISE_IMPL_DOC = "bitwise: impl(inputs) == impl(inputs_b) (P8 pages, P10 unread rows, P11 rerun)"


def golden_bitwise(inputs: dict, impl, params: dict) -> Outcome:
    xa, xb = _pair(inputs)
    recipe = _recipe(params)
    return Outcome(actual=_trace(xa, recipe).o, expected=_trace(xb, recipe).o, bound=None,
                   bound_doc=BITWISE_GOLDEN_DOC)


def impl_bitwise(inputs: dict, impl, params: dict) -> Outcome:
    """impl on inputs and on inputs_b (the same object when absent: a rerun) are bitwise equal;
    params "tokens" restricts the comparison to those tokens (P9)."""
    xa, xb = _pair(inputs)
    recipe = _recipe(params)
    oa = xa.call(impl, recipe=recipe)
    ob = xb.call(impl, recipe=recipe)
    if params.get("tokens") is not None:
        keep = torch.tensor(params["tokens"], dtype=torch.long, device=oa.device)
        oa, ob = oa[keep], ob[keep]
    return Outcome(actual=oa, expected=ob, bound=None, bound_doc=params.get("doc", BITWISE_IMPL_DOC))


P10_DOC = ("P10: impl(NaN in unread rows) == finite image of impl(finite garbage there), bitwise: "
           "equal where the latter is finite, and finite everywhere")


def p10_unread_rows(inputs: dict, impl, params: dict) -> Outcome:
    """inputs: unread pool rows NaN; inputs_b: the same rows finite garbage. The NaN run must be
    finite and bitwise equal to the garbage run (non-finite garbage-run elements count as 0)."""
    x_nan, x_garbage = inputs["inputs"], inputs["inputs_b"]
    recipe = _recipe(params)
    o_nan = x_nan.call(impl, recipe=recipe)
    o_garbage = x_garbage.call(impl, recipe=recipe)
    bad_nan = ~torch.isfinite(o_nan)
    bad_garbage = ~torch.isfinite(o_garbage)
    metrics = {"nonfinite_with_nan_rows": int(bad_nan.sum()),
               "nonfinite_without_nan_rows": int(bad_garbage.sum()),
               "nonfinite_in_both": int((bad_nan & bad_garbage).sum())}
    return Outcome(actual=o_nan, expected=_finite_image(o_garbage), bound=None,
                   bound_doc=p10_diagnosis(metrics) + P10_DOC, metrics=metrics)


def p10_diagnosis(metrics: dict) -> str:
    """What the two runs tell about non-finite outputs (the second run has no NaN in any row)."""
    both, without = metrics["nonfinite_in_both"], metrics["nonfinite_without_nan_rows"]
    only_nan = metrics["nonfinite_with_nan_rows"] - both
    if without == 0:
        return ("" if only_nan == 0 else
                f"{only_nan} output element(s) are non-finite only when unread rows hold NaN: the "
                f"implementation reads pool rows no valid index reaches. ")
    told = (f"{without} output element(s) are non-finite also with finite garbage (no NaN anywhere) "
            f"in the unread rows ({both} of them in both runs): those are not caused by reading "
            f"unread rows (a numerics bug: see P1/P6/P7 on this input)")
    if only_nan:
        told += f"; {only_nan} more are non-finite only with NaN rows: it also reads unread rows"
    return told + ". "


# %% P6: sink semantics

P6_NOSINK_DOC = _props_doc(
    "P6: impl(sink=-inf) vs fp64 softmax with no sink term <= P1 + P2 (exp(-inf) = 0 makes the "
    "-inf-sink truth the no-sink truth)", "p6")
P6_SCALE_GOLDEN_DOC = _props_doc(
    "P6: golden o(sink) vs o(-inf) L / (L + exp(sink - M)) <= |pred| ((1+u)/((1-u)^2(1-r)) - "
    "1) + 2^-148, r = sigma err / (L + sigma); exactly 0 where the fp32 denominator overflows", "p6-scaling")
P6_SCALE_IMPL_DOC = _props_doc(
    "P6: impl o(sink) vs impl o(-inf) f, f = L / (L + exp(sink - M)) of the golden: <= "
    "P1(sink) + golden scaling bound + f P1(-inf); both finite", "p6")


def _without_sink(x):
    return x.replace(attn_sink=torch.full_like(x.attn_sink, -math.inf))


def p6_no_sink(inputs: dict, impl, params: dict) -> Outcome:
    """inputs has every sink -inf."""
    x, recipe, actual, trace = _impl_and_trace(inputs, impl, params)
    truth = weighted_truth(x, sink=False)
    expected, bound, doc = rounded_output(recipe, truth, _p1(x, trace, recipe, params) + _p2(x, trace, recipe),
                                          P6_NOSINK_DOC)
    return Outcome(actual=actual, expected=expected, bound=bound, bound_doc=doc, truth=truth)


def _sink_scaling(x, trace):
    """(f [T, H, 1], bound factor pieces) for the golden's sink scaling, all float64.

    f = L / (L + sigma), sigma = exp(sink - M) in fp64 from the golden's fp32 L and M (0 where the
    token is empty or sigma = inf); r bounds |sigma32 - sigma| / (L + sigma32)."""
    M, L = trace.M.double(), trace.L.double()
    has = torch.isfinite(M)
    M0 = torch.where(has, M, 0.0)
    x_arg = x.attn_sink.double()[None, :] - M0                               # [T, H]
    sigma = torch.exp(x_arg)
    f = torch.where(has & torch.isfinite(sigma), L / (L + sigma), 0.0)
    pos = has & (sigma > 0) & torch.isfinite(sigma)
    ux = torch.where(pos, U_FP32 * x_arg.abs(), 0.0)
    d_sigma = torch.where(pos, sigma * (torch.expm1(ux) + TORCH_EXPF_REL * torch.exp(ux)), 0.0) \
        + 2.0 ** -148                                                        # fl(x), expf, subnormal
    r = torch.where(pos, d_sigma / (L + sigma - d_sigma).clamp_min(1e-300), 2.0 ** -148 / L.clamp_min(1e-300))
    r = torch.where(has, r, 0.0).clamp(max=0.5)
    return f[..., None], r[..., None]


def _golden_scaling_bound(trace, pred: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """|o_golden(sink) - pred| <= this, where the golden's fp32 denominator is finite; where it
    overflowed o = O / inf = 0 exactly and the distance is |pred| itself."""
    u = U_FP32
    rel = (1 + u) / ((1 - u) ** 2 * (1 - r)) - 1
    bound = pred.abs() * (rel + 2.0 ** -50) + 2.0 ** -148
    bound = torch.where(_overflowed(trace), pred.abs(), bound)
    return torch.where(torch.isfinite(trace.M)[..., None], bound, 0.0)    # empty: both exactly 0


def _overflowed(trace) -> torch.Tensor:
    """[T, H, 1] the fp32 L + exp(sink - M) is +inf (a +inf or huge sink, or exp overflow)."""
    return ~torch.isfinite(trace.denom.double())[..., None]


def p6_sink_scaling_golden(inputs: dict, impl, params: dict) -> Outcome:
    """o(sink) = o(-inf) L / (L + exp(sink - M)) on the golden (O, L, M do not depend on the sink);
    where the fp32 denominator overflows, exactly 0 (as for a +inf sink)."""
    x = inputs["inputs"]
    recipe = _recipe(params)
    ts, tn = _trace(x, recipe), _trace(_without_sink(x), recipe)
    f, r = _sink_scaling(x, ts)
    pred = tn.o.double() * f
    bound = torch.where(_overflowed(ts), 0.0, _golden_scaling_bound(ts, pred, r))
    expected = torch.where(_overflowed(ts), 0.0, pred)
    return Outcome(actual=ts.o, expected=expected, bound=bound, bound_doc=P6_SCALE_GOLDEN_DOC)


def p6_sink_scaling_impl(inputs: dict, impl, params: dict) -> Outcome:
    x = inputs["inputs"]
    xn = _without_sink(x)
    recipe = _recipe(params)
    o_s, o_n = x.call(impl, recipe=recipe), xn.call(impl, recipe=recipe)
    ts, tn = _trace(x, recipe), _trace(xn, recipe)
    f, r = _sink_scaling(x, ts)
    expected = o_n.double() * f
    g = _golden_scaling_bound(ts, tn.o.double() * f, r)
    bound = _p1(x, ts, recipe, params) + g + f * _p1(xn, tn, recipe, params) + 2.0 ** -50 * expected.abs()
    expected, bound, doc = rounded_output(recipe, expected, bound, P6_SCALE_IMPL_DOC,
                                          from_output=o_n, factor=f)
    # never NaN/Inf: a non-finite o(sink) meets a finite 0, a non-finite o(-inf) a finite o(sink)
    expected = torch.where(torch.isfinite(o_s), expected, 0.0)
    # a NaN o(-inf) makes the prediction and its relative terms NaN: that element is a violation
    # (NaN expected vs a finite o(sink)), so its bound is 0, never NaN (which no check can read)
    bound = torch.where(torch.isnan(bound), 0.0, bound)
    bad_n = int((~torch.isfinite(o_n)).sum())
    if bad_n:
        doc = (f"P6: the implementation's own o(sink=-inf) has {bad_n} non-finite element(s), so "
               f"o(sink) cannot match its prediction there (never NaN/Inf, for any sink); " + doc)
    return Outcome(actual=o_s, expected=expected, bound=bound, bound_doc=doc,
                   metrics={"nonfinite_o_sink": int((~torch.isfinite(o_s)).sum()),
                            "nonfinite_o_no_sink": bad_n})


# %% P7: empty rows

P7_DOC = ("P7: tokens with no valid key output exact zeros (value 0: +0.0 or -0.0, never NaN); other "
          "tokens within P1 of the golden")
P7_GOLDEN_DOC = "P7: the golden's tokens with no valid key are exact zeros (value 0, never NaN)"


def _empty_tokens(x) -> torch.Tensor:
    """[T, 1, 1] bool: tokens with no valid index."""
    valid = valid_index_mask(x.sparse_indices, x.seqused_kv, window=x.window,
                             tokens_per_batch=x.tokens_per_batch)
    return ~valid.any(-1)[:, None, None]


def p7_empty_rows(inputs: dict, impl, params: dict) -> Outcome:
    x, recipe, actual, trace = _impl_and_trace(inputs, impl, params)
    empty = _empty_tokens(x)
    expected = torch.where(empty, 0.0, trace.o)
    bound = torch.where(empty, 0.0, _p1(x, trace, recipe, params))
    expected, bound, doc = rounded_output(recipe, expected, bound, P7_DOC)
    return Outcome(actual=actual, expected=expected, bound=bound, bound_doc=doc)


def p7_golden_empty_rows(inputs: dict, impl, params: dict) -> Outcome:
    x = inputs["inputs"]
    o = _trace(x, _recipe(params)).o
    empty = _empty_tokens(x)
    expected = torch.where(empty, 0.0, _finite_image(o))
    return Outcome(actual=o, expected=expected, bound=torch.zeros_like(o, dtype=torch.float64),
                   bound_doc=P7_GOLDEN_DOC)
