"""The margin ratio (golden.metrics.margin_ratio, docs/bounds.md#p1-margin) gives P1's verdict
element for element: distance outside expected +- discrete > continuous part  <=>  error > bound.

Checked on random tensors (exact boundary values, zeros, infinities, NaN outputs), on P1 outcomes
of attention (every P / L / output recipe, the reference and planted bugs) and of RMSNorm (bf16 and
fp32 outputs, the reference and the 12-bit rsqrt), and the split of the attention bound itself:
its terms are >= 0, the flips never exceed the total, and the total is the bound P1 checks.
"""
import math

import pytest
import torch

from kernelprop.golden.attention import sparse_attention_trace
from kernelprop.golden.attention_bounds import MODELS, attention_p1_bound, attention_p1_terms
from kernelprop.golden.attention_inputs import AttnCase, make_attn_inputs, AttnRecipe
from kernelprop.golden.rmsnorm_inputs import NormCase, NormRecipe, make_norm_inputs
from kernelprop.golden.metrics import bound_ratio, margin_ratio
from kernelprop.impls.mutants import attention as attn_mutants, rmsnorm as norm_mutants
from kernelprop.properties import replays_attention, replays_norm
from kernelprop.core.verdict import check_outcome


def _same_verdicts(actual, expected, bound, discrete) -> torch.Tensor:
    old = bound_ratio(actual, expected, bound) > 1
    new = margin_ratio(actual, expected, bound, discrete) > 1
    assert torch.equal(old, new), f"{int((old != new).sum())} elements decide differently"
    return old


def test_margin_ratio_decides_like_bound_ratio_on_random_tensors():
    gen = torch.Generator().manual_seed(0)
    n = 200_000
    bound = torch.rand(n, generator=gen, dtype=torch.float64) * 10.0 ** torch.randint(-30, 3, (n,),
                                                                                     generator=gen)
    share = torch.rand(n, generator=gen, dtype=torch.float64)
    share[: n // 10] = 0.0          # no flips
    share[n // 10: n // 5] = 1.0    # all flips (a bf16 output)
    discrete = bound * share
    scale = torch.rand(n, generator=gen, dtype=torch.float64) * 2.5
    err = bound * scale
    # exact boundary values and their float64 neighbours, on both sides of bound and of discrete
    err[:1000] = bound[:1000]
    err[1000:2000] = torch.nextafter(bound[1000:2000], torch.full((1000,), math.inf, dtype=torch.float64))
    err[2000:3000] = torch.nextafter(bound[2000:3000], torch.zeros(1000, dtype=torch.float64))
    err[3000:4000] = discrete[3000:4000]
    err[4000:5000] = 0.0
    bound[5000:5100] = 0.0
    discrete[5000:5100] = 0.0
    expected = torch.randn(n, generator=gen, dtype=torch.float64)
    sign = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0).double()
    actual = expected + sign * err
    actual[6000:6010] = math.nan
    actual[6010:6020] = math.inf
    expected[6020:6030] = math.inf
    actual[6020:6030] = math.inf
    old = _same_verdicts(actual, expected, bound, discrete)
    assert 0 < int(old.sum()) < n   # both verdicts occur
    margin = margin_ratio(actual, expected, bound, discrete)
    inside = (actual - expected).abs() <= discrete
    assert bool((margin[inside & (bound > 0)] == 0).all())  # within the flips: 0


@pytest.mark.parametrize("recipe", [
    AttnRecipe(), AttnRecipe(out_dtype="bf16"), AttnRecipe(l_from="unrounded"),
    AttnRecipe(p_dtype="fp32"), AttnRecipe(rounding="rtz", tile=16), AttnRecipe(tile=8, rounding="rna"),
], ids=str)
def test_attention_p1_margin_decides_like_the_bound(recipe):
    impls = [attn_mutants.reference, attn_mutants.p_rtz, attn_mutants.p_rna, attn_mutants.p_fp32,
             attn_mutants.l_unrounded, attn_mutants.scores_bf16, attn_mutants.pv_bf16_acc,
             attn_mutants.sink_ignored, attn_mutants.merge_swapped, attn_mutants.o_not_rescaled]
    params = replays_attention.recipe_params(recipe, "random")
    failing = passing_with_flips = 0
    for seed in range(6):
        data = ("normal", "heavy", "large_logits", "uniform")[seed % 4]
        x = make_attn_inputs(AttnCase(seed=seed, head_dim=(16, 64, 130)[seed % 3], data=data,
                                      topk=40, pad_prob=0.1))
        for impl in impls:
            outcome = replays_attention.p1({"inputs": x}, impl, params)
            assert outcome.discrete is not None
            assert bool((outcome.discrete <= outcome.bound).all())
            old = _same_verdicts(outcome.actual, outcome.expected, outcome.bound, outcome.discrete)
            verdict = check_outcome(outcome)
            assert (verdict.margin > 1) == verdict.failing
            failing += int(old.any())
            passing_with_flips += int(not old.any() and bool((outcome.discrete > 0).any()))
    assert failing > 0   # the planted bugs are caught: the comparison is not vacuous
    assert passing_with_flips > 0 or recipe.p_dtype == "fp32"  # and flips occur


@pytest.mark.parametrize("out_dtype", ["bf16", "fp32"])
def test_rmsnorm_p1_margin_decides_like_the_bound(out_dtype):
    recipe = NormRecipe(out_dtype=out_dtype)
    params = replays_norm.recipe_params(recipe, "cpu")
    failing = 0
    for seed in range(8):
        n = make_norm_inputs(NormCase(seed=seed, rows=4, dim=(64, 1000, 8192)[seed % 3],
                                      data=("normal", "heavy", "uniform", "int8")[seed % 4]))
        for impl in (norm_mutants.reference, norm_mutants.rsqrt_12bit, norm_mutants.out_rtz,
                     norm_mutants.eps_dropped):
            outcome = replays_norm.p1({"inputs": n}, impl, params)
            old = _same_verdicts(outcome.actual, outcome.expected, outcome.bound, outcome.discrete)
            verdict = check_outcome(outcome)
            assert (verdict.margin > 1) == verdict.failing
            failing += int(old.any())
    assert failing > 0


def test_attention_bound_terms_split_the_total():
    recipe = AttnRecipe()
    for seed, data in enumerate(("normal", "heavy", "large_logits")):
        x = make_attn_inputs(AttnCase(seed=seed, head_dim=64, data=data, topk=40))
        trace = x.call(sparse_attention_trace, recipe=recipe)
        terms = attention_p1_terms(trace, x.q, x.attn_sink, recipe, backend=MODELS["random"])
        total = attention_p1_bound(trace, x.q, x.attn_sink, recipe, backend=MODELS["random"])
        assert torch.equal(terms.total, total)
        parts = (terms.flips, terms.merges, terms.maxima, terms.denominator, terms.output)
        assert all(bool((t >= 0).all()) for t in parts)
        assert torch.allclose(sum(parts), total, rtol=1e-12, atol=0)
        assert bool((terms.flips <= total).all())
        assert bool((terms.continuous > 0)[total > 0].all())
