"""The margin of a bf16 output measured in fp32 (golden.output_margin,
docs/bounds-output-rounding.md#margin): the rounding cells are the exact preimages of each rounding
mode, and cell_margin > 1 exactly where the output lies outside [OUT(c - below), OUT(c + above)]
(the identity), element for element on random fp32 domains (zeros, subnormals, the largest
finite, exact cell ends) under rne / rna / rtz and on P1 outcomes of correct and mutant RMSNorms
and attentions, where P1's check (the bound on the output's side, output_margin.sided_bound) is
exact membership of that interval; counted: the failures the former symmetric checks passed.
"""
import math

import pytest
import torch

from kernelprop.golden.error_model import BF16_MIN_ULP
from kernelprop.golden.attention_inputs import AttnCase, make_attn_inputs
from kernelprop.golden.rmsnorm_inputs import NormCase, NormRecipe, make_norm_inputs
from kernelprop.golden.metrics import bound_ratio
from kernelprop.golden.output_margin import (BF16_MAX_FINITE, Fp32Domain, admissible, cell_margin,
                                             reachable_ends, rounding_cell)
from kernelprop.golden.attention_inputs import AttnRecipe
from kernelprop.golden.rounding import round_to_bf16
from kernelprop.impls.mutants import attention as attn_mutants
from kernelprop.impls.mutants import rmsnorm as norm_mutants
from kernelprop.properties import replays_attention, replays_norm
from kernelprop.core.verdict import check_outcome

MODES = ("rne", "rna", "rtz")


def _fp32_values(n: int, gen: torch.Generator) -> torch.Tensor:
    """Random fp32 values over the whole range: random bit patterns (subnormals, huge values),
    normal-scale values, exact bf16 midpoints (ties), zeros, the largest finite and its cell."""
    bits = torch.randint(-2**31, 2**31, (n,), generator=gen, dtype=torch.int64).to(torch.int32)
    x = bits.view(torch.float32).clone()
    x[: n // 4] = torch.randn(n // 4, generator=gen) * 10.0 ** torch.randint(-3, 4, (n // 4,),
                                                                                generator=gen)
    ties = x[n // 4: n // 2].contiguous().view(torch.int32) & ~0xFFFF | 0x8000
    x[n // 4: n // 2] = ties.view(torch.float32)
    x[n // 2: n // 2 + 50] = 0.0
    x[n // 2 + 50: n // 2 + 100] = -0.0
    x[n // 2 + 100: n // 2 + 150] = torch.tensor(BF16_MAX_FINITE) * torch.where(
        torch.rand(50, generator=gen) < 0.5, -1.0, 1.0)
    x[n // 2 + 150: n // 2 + 200] = torch.finfo(torch.float32).max
    x[n // 2 + 200: n // 2 + 250] = BF16_MIN_ULP * torch.randint(-4, 5, (50,), generator=gen)
    return x[torch.isfinite(x)]


@pytest.mark.parametrize("mode", MODES)
def test_rounding_cell_is_the_preimage(mode):
    """Every fp32 x lies in the cell of its rounding; the fp32 values just outside the closure
    (where they exist) round elsewhere."""
    gen = torch.Generator().manual_seed(1)
    x = _fp32_values(200_000, gen)
    v = round_to_bf16(x, mode)
    lo, hi = rounding_cell(v, mode)
    assert bool(((lo <= x.double()) & (x.double() <= hi)).all())
    finite_v = torch.isfinite(v)
    for end, away in ((lo, -math.inf), (hi, math.inf)):
        out = torch.nextafter(end.float(), torch.full_like(x, away))
        out = torch.where(end.float().double() == end, out, end.float())  # an end beyond fp32
        check = finite_v & torch.isfinite(out) & ((out.double() - end).abs() > 0)
        assert bool((round_to_bf16(out[check], mode) != v[check]).all())
    # the cells of NaN and of non-bf16 values are empty
    lo, hi = rounding_cell(torch.tensor([math.nan, 1.0 + 2.0 ** -10], dtype=torch.float64), mode)
    assert bool((lo > hi).all())


def _random_domains(n: int, mode: str, gen: torch.Generator):
    """(actual, domain) with asymmetric bounds, a discrete share, centres over the whole range and
    outputs near the allowed interval: OUT(c + t) for t up to 3 bounds, and bounds that end
    exactly on a cell end (the ties of the identity)."""
    c = _fp32_values(n, gen).double()
    n = c.numel()
    scale = c.abs().clamp_min(2.0 ** -130) * 2.0 ** torch.randint(-12, 0, (n,), generator=gen)
    below = scale * torch.rand(n, generator=gen, dtype=torch.float64)
    above = scale * torch.rand(n, generator=gen, dtype=torch.float64)
    below[: n // 20] = 0.0
    above[n // 20: n // 10] = 0.0
    share = torch.rand(n, generator=gen, dtype=torch.float64)
    share[: n // 3] = 0.0
    discrete = torch.minimum(below, above) * share
    t = (torch.rand(n, generator=gen, dtype=torch.float64) * 6 - 3) * torch.maximum(below, above)
    actual = round_to_bf16((c + t).float(), mode)
    # bounds that reach a neighbouring cell's closure exactly
    lo, hi = rounding_cell(actual, mode)
    exact = torch.rand(n, generator=gen) < 0.1
    above = torch.where(exact & (lo > c), lo - c, above)
    below = torch.where(exact & (hi < c), c - hi, below)
    discrete = torch.minimum(discrete, torch.minimum(below, above))
    return actual, Fp32Domain(c, below, above, discrete, mode)


@pytest.mark.parametrize("mode", MODES)
def test_margin_above_one_exactly_outside_the_reachable_interval(mode):
    gen = torch.Generator().manual_seed(2)
    actual, domain = _random_domains(200_000, mode, gen)
    margin = cell_margin(actual, domain)
    inside = admissible(actual, domain)
    differ = _disagreements(actual, domain, margin, inside)
    counts = {"elements": actual.numel(), "outside": int((~inside).sum()),
              "tie disagreements": int(differ.sum()), "margin 0": int((margin == 0).sum())}
    print(f"\n{mode}: {counts}")
    assert counts["outside"] > 1000 and counts["elements"] - counts["outside"] > 1000


def _disagreements(actual, domain, margin, inside) -> torch.Tensor:
    """Where margin > 1 and membership disagree, asserting that each is a tie: the bound ends
    exactly on the cell's end (d = B_dir), an open end whose value rounds elsewhere."""
    differ = (margin > 1) == inside
    lo, hi = rounding_cell(actual, domain.mode)
    c = domain.center.double()
    on_end = ((lo - c) == domain.above) | ((c - hi) == domain.below)
    assert bool(on_end[differ].all()), actual[differ & ~on_end][:5]
    assert bool((margin[differ] <= 1).all())  # 1, or 0 where B_dir = F
    return differ


def _identity_counts(outcome, counts: dict) -> None:
    """Add one bf16-output P1 outcome's element counts: P1's check (the sided bound) is exact
    membership of [lo, hi] = reachable_ends, the unclamped margin > 1 exactly outside it (up to
    ties), and how many failures the former symmetric checks passed: max(hi - e, e - lo)
    (attention's reachable_bf16) and hi - lo (RMSNorm's pair_bound)."""
    domain = outcome.margin_rule.domain
    actual, expected = outcome.actual, outcome.expected
    margin = cell_margin(actual, domain)
    inside = admissible(actual, domain)
    failing = bound_ratio(actual, expected, outcome.bound) > 1
    assert torch.equal(failing, ~inside), "P1's bf16 check is not exact membership"
    counts["ties"] += int(_disagreements(actual, domain, margin, inside).sum())
    lo, hi, finite = reachable_ends(domain)
    e = expected.double()
    err = (actual.double() - e).abs()
    counts["elements"] += margin.numel()
    counts["fail"] += int(failing.sum())
    counts["symmetric passed"] += int((failing & finite & (err <= torch.maximum(hi - e, e - lo))).sum())
    counts["pair passed"] += int((failing & finite & (err <= hi - lo)).sum())
    verdict = check_outcome(outcome)
    assert verdict.margin_fp32 and (verdict.margin > 1) == verdict.failing


NORM_IMPLS = (norm_mutants.reference, norm_mutants.out_rtz, norm_mutants.out_via_fp16,
              norm_mutants.bf16_before_weight, norm_mutants.rsqrt_12bit)


@pytest.mark.parametrize("mode", MODES)
def test_rmsnorm_p1_identity_on_mutants(mode):
    recipe = NormRecipe(out_dtype="bf16", rounding=mode)
    counts = {name.__class__.__name__: {"elements": 0, "fail": 0, "ties": 0, "symmetric passed": 0, "pair passed": 0} for name in NORM_IMPLS}
    for seed in range(8):
        n = make_norm_inputs(NormCase(seed=seed, rows=4, dim=(64, 1000, 8192)[seed % 3],
                                      data=("normal", "heavy", "uniform", "tiny")[seed % 4],
                                      eps=(1e-6, 0.0)[seed % 2]))
        for ftz, backend in ((False, "cpu"), (True, "cuda")):
            params = replays_norm.recipe_params(recipe, backend)
            for impl in NORM_IMPLS:
                _identity_counts(replays_norm.p1({"inputs": n}, impl, params),
                                 counts[impl.__class__.__name__])
    print(f"\nrms_norm {mode}: {counts}")
    assert counts["RMSNorm"]["fail"] == 0
    assert all(counts[k]["fail"] > 0 for k in ("Rsqrt12Bits", "BF16BeforeWeight"))
    assert counts["OutputTruncated"]["fail"] > 0 or mode == "rtz"


def _attention_inputs(seed: int):
    """Small attention inputs: head dims 24 / 64 / 136, every data kind, a sink, padded indices."""
    kinds = ("normal", "heavy", "large_logits", "uniform")
    return make_attn_inputs(AttnCase(seed=100 + seed, head_dim=(24, 64, 136)[seed % 3], topk=48,
                                     data=kinds[seed % len(kinds)], pad_prob=0.2))


def test_attention_p1_identity_on_mutants():
    impls = {"reference": attn_mutants.reference, "p_rtz": attn_mutants.p_rtz,
             "scores_bf16": attn_mutants.scores_bf16, "l_unrounded": attn_mutants.l_unrounded,
             "sink_ignored": attn_mutants.sink_ignored}
    params = replays_attention.recipe_params(AttnRecipe(out_dtype="bf16"), "random")
    counts = {name: {"elements": 0, "fail": 0, "ties": 0, "symmetric passed": 0, "pair passed": 0}
              for name in impls}
    for x in map(_attention_inputs, range(8)):
        for name, impl in impls.items():
            _identity_counts(replays_attention.p1({"inputs": x}, impl, params), counts[name])
    print(f"\nattention bf16 out: {counts}")
    assert counts["reference"]["fail"] == 0
    assert sum(c["fail"] for c in counts.values()) > 0
