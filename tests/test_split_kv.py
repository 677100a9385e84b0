"""Split-KV decode (AttnRecipe.kv_splits, split_align; SPEC section 2): the golden's split rule and
merge, the P1 bound's power on the merge's bugs, and who the strategies ask for a split."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from kernelprop.golden.attention import split_layout, sparse_attention_fp64, sparse_attention_trace
from kernelprop.golden.attention_bounds import MODELS, attention_p2_bound
from kernelprop.golden.attention_inputs import AttnCase, AttnRecipe, make_attn_inputs
from kernelprop.core.impl import make_impl
from kernelprop.properties import replays_attention as R
from kernelprop.properties.attention_strategies import draw_attn
from kernelprop.core.verdict import check_outcome

SPLIT_REFERENCE = "impls/split_kv_reference.py:sparse_decode_attention"
SGLANG = AttnRecipe(tiling="compacted", kv_splits=8, split_align=32)


def test_split_len_rounds_cdiv_up_to_the_alignment():
    assert [SGLANG.split_len(n) for n in (1, 31, 256, 257, 640)] == [32, 32, 32, 64, 96]
    vllm = AttnRecipe(tiling="compacted", kv_splits=5)
    assert [vllm.split_len(n) for n in (1, 4, 5, 11)] == [1, 1, 1, 3]
    with pytest.raises(ValueError, match="tiling='compacted'"):
        AttnRecipe(kv_splits=8)
    with pytest.raises(ValueError, match="kv_splits"):
        AttnRecipe(tiling="compacted", kv_splits=0)
    with pytest.raises(ValueError, match="split_align"):
        AttnRecipe(split_align=0)


def test_split_layout_cuts_each_tokens_compacted_list():
    valid = torch.zeros(3, 12, dtype=torch.bool)
    valid[0, [1, 4, 5, 9, 11]] = True          # 5 keys, 2 splits of 3 (align 3): 3 + 2
    valid[1, [0]] = True                        # 1 key: split 0 only, split 1 empty
    layout = split_layout(valid, AttnRecipe(tiling="compacted", tile=2, kv_splits=2, split_align=3))
    assert (layout.tile, layout.split_cols, layout.splits) == (2, 4, 2)   # 3 keys padded to 2 tiles
    assert layout.valid[0].tolist() == [True, True, True, False, True, True, False, False]
    assert layout.source[0][layout.valid[0]].tolist() == [1, 4, 5, 9, 11]
    assert layout.valid[1].tolist() == [True] + [False] * 7
    assert not bool(layout.valid[2].any())


def _split_case(**kw) -> AttnCase:
    return AttnCase(**{**dict(seed=5, heads=3, head_dim=24, window=8, topk=12, max_cmp_len=24,
                              pad_prob=0.2, min_used=0), **kw})


@pytest.mark.parametrize("recipe", [
    AttnRecipe(tiling="compacted", tile=4, kv_splits=16),            # fewer keys than splits
    AttnRecipe(tiling="compacted", tile=None, kv_splits=3, split_align=4),
    AttnRecipe(tiling="compacted", tile=3, kv_splits=2, p_dtype="fp32", l_from="unrounded"),
], ids=["empty_splits", "untiled", "fp32_p"])
@pytest.mark.parametrize("seed", range(6))
def test_split_golden_is_within_p2_of_the_fp64_truth_and_never_nan(recipe, seed):
    x = make_attn_inputs(_split_case(seed=seed))
    trace = x.call(sparse_attention_trace, recipe=recipe)
    truth = x.call(sparse_attention_fp64)
    assert bool(torch.isfinite(trace.o).all())
    assert bool(((trace.o.double() - truth).abs() <= attention_p2_bound(trace, x.attn_sink, recipe)).all())
    empty_split = ~torch.isfinite(trace.lse) & torch.isfinite(trace.M)[..., None]
    if recipe.kv_splits == 16:
        assert bool(empty_split.any())           # the case has tokens with fewer keys than splits


def test_a_token_without_keys_gives_zeros_under_split():
    case = _split_case(seed=1)
    x = make_attn_inputs(case)
    x = x.replace(sparse_indices=torch.full_like(x.sparse_indices, -1))
    o = x.call(sparse_attention_trace, recipe=SGLANG).o
    assert bool((o == 0).all())


def _p1_ratio(target: str, x, recipe, model="random") -> float:
    impl = make_impl("sparse_attention", target)
    return check_outcome(R.p1({"inputs": x}, impl, R.recipe_params(recipe, model))).worst


@pytest.mark.parametrize("model", ["random", "cuda"])
def test_correct_split_implementations_pass_p1_and_the_merge_bugs_fail(model):
    """Tight: each split mutant's bug is far outside P1 on a case that exercises it; sound: the
    independent online-merge reference and the mutants' base stay well inside."""
    fine = _split_case(seed=2, sink="finite", pad_prob=0.0)
    recipe = AttnRecipe(tiling="compacted", tile=4, kv_splits=5, split_align=2)
    x = make_attn_inputs(fine)
    for target in (SPLIT_REFERENCE, "impls/mutants/attention.py:split_kv"):
        assert _p1_ratio(target, x, recipe, model) < 0.5, target
    for bug in ("split_sink_dropped", "split_unaligned"):
        assert _p1_ratio(f"impls/mutants/attention.py:{bug}", x, recipe, model) > 2, bug
    emptying = AttnRecipe(tiling="compacted", tile=4, kv_splits=16)
    assert _p1_ratio("impls/mutants/attention.py:split_empty_unguarded", x, emptying, model) > 2
    # large logits: another split's lse exceeds the first's by more than ~88 (exp overflows)
    large = make_attn_inputs(_split_case(seed=3, data="large_logits", head_dim=40, pad_prob=0.0))
    assert _p1_ratio("impls/mutants/attention.py:split_first_max", large, recipe, model) > 2
    assert _p1_ratio(SPLIT_REFERENCE, large, recipe, model) < 0.5


def test_the_bundled_kernel_is_never_asked_for_a_split():
    from kernelprop.kernels import sparse_decode_attention

    bundled = make_impl("sparse_attention")
    assert not bundled.varies("kv_splits") and not bundled.varies("split_align")
    x = make_attn_inputs(_split_case())
    with pytest.raises(NotImplementedError, match="kv_splits"):
        x.call(sparse_decode_attention, recipe=SGLANG)

    @settings(max_examples=60, deadline=None)
    @given(data=st.data())
    def check(data):
        assert draw_attn(data, "plain", impl=bundled).recipe.kv_splits is None

    check()


def test_split_recipes_reach_both_sides_of_the_split_threshold():
    """For an implementation that varies kv_splits the draws include one-pass recipes, splits with
    fewer keys than splits (empty splits) and splits that all hold keys."""
    impl = make_impl("sparse_attention", SPLIT_REFERENCE)
    seen = set()

    @settings(max_examples=120, deadline=None)
    @given(data=st.data())
    def check(data):
        drawn = draw_attn(data, "plain", impl=impl)
        r = drawn.recipe
        if r.kv_splits is None:
            seen.add("one pass")
            return
        x = make_attn_inputs(drawn.case)
        trace = x.call(sparse_attention_trace, recipe=r)
        live = torch.isfinite(trace.M)
        fills = torch.isfinite(trace.lse).sum(-1)[live]
        if fills.numel():
            seen.add("empty splits" if bool((fills < r.kv_splits).any()) else "all splits hold keys")

    check()
    assert seen == {"one pass", "empty splits", "all splits hold keys"}, seen


def test_the_split_merge_terms_vanish_without_split_and_grow_with_lse():
    """split_rho: 0 for a one-pass trace; with split it holds the u |lse| term (large logits)."""
    from kernelprop.golden.attention_bounds import split_rho

    x = make_attn_inputs(_split_case(seed=4, data="large_logits", head_dim=40))
    one = x.call(sparse_attention_trace, recipe=AttnRecipe(tiling="compacted", tile=4))
    assert float(split_rho(one, MODELS["cuda"]).abs().max()) == 0.0
    split = x.call(sparse_attention_trace, recipe=AttnRecipe(tiling="compacted", tile=4, kv_splits=3))
    rho = split_rho(split, MODELS["cuda"])
    lse = torch.where(torch.isfinite(split.lse), split.lse.abs(), 0.0).amax(-1).double()
    live = torch.isfinite(split.M)
    assert bool((rho[live] >= 2 * 2.0 ** -24 * lse[live]).all()) and math.isfinite(float(rho.max()))
