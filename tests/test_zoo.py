"""The bug zoo's registry, the kill matrix's killed-by column, and the conditions the zoo added:
poisoned allocations, padded page strides, scores below the -5e4 sentinel, > 64 query rows."""
from __future__ import annotations

import math

import pytest
import torch

from kernelprop.golden import attention_classes
from kernelprop.golden.attention_inputs import AttnCase, make_attn_inputs
from kernelprop.core.impl import load_callable, make_impl
from kernelprop.impls import zoo
from kernelprop.commands import mutants
from kernelprop.commands.mutants import RunResult, killed_by, killed_by_text, shape_class_of
from kernelprop.core.registry import BY_KIND
from kernelprop.core.scratch import poisoned_allocations


def test_registry_entries_are_complete():
    entries = zoo.zoo()
    assert len({e.name for e in entries}) == len(entries)
    assert {e.bug for e in entries} >= set(range(1, 18))   # this helper's half: bugs 1-17
    for e in entries:
        assert e.kind in BY_KIND
        assert all(u.startswith("https://github.com/") for u in e.threads), e.name
        if e.in_scope:
            assert callable(load_callable(e.target)), e.name
            assert e.expected_killers, e.name
        else:
            assert e.out_of_scope and not e.target, e.name
    for c in zoo.controls():
        make_impl(c.kind, c.target)


def test_entry_without_reason_is_refused():
    with pytest.raises(ValueError, match="reason"):
        zoo.ZooEntry("x", 1, ("https://github.com/a/b/issues/1",), "sparse_attention", "m",
                     in_scope=False)
    with pytest.raises(ValueError, match="target"):
        zoo.ZooEntry("x", 1, ("https://github.com/a/b/issues/1",), "sparse_attention", "m")


def test_killed_by_reads_property_and_shape_class():
    run = RunResult(name="m", role="mutant", kind="sparse_attention", target="t", description="d")
    run.tests = [
        mutants.TestResult("properties/test_attention_p1.py::test_p1_kernel_matches_golden[multi_tile]",
                   ["P1"], "failed", 1.0, 1.0),
        mutants.TestResult("properties/test_attention_p1.py::test_p1_kernel_matches_golden[plain]",
                   ["P1"], "failed", 1.0, 1.0),
        mutants.TestResult("properties/test_attention_semantics.py::test_p7_empty_rows_are_exact_zeros"
                   "[plain]", ["P7"], "failed", 1.0, 1.0),
        mutants.TestResult("properties/test_attention_semantics.py::test_p7_empty_rows_are_exact_zeros"
                   "[many_rows]", ["P7"], "passed", 1.0, 1.0),
        mutants.TestResult("properties/test_indexer.py::test_i1", ["I1"], "failed", 1.0, 1.0),
    ]
    assert killed_by(run) == [("P1", "multi_tile"), ("P1", "plain"), ("P7", "plain"), ("I1", "")]
    assert killed_by_text(run) == "P1 (multi_tile, plain); P7 (plain); I1 (-)"
    assert shape_class_of("a.py::t[cuda-huge_scores]") == "huge_scores"


def test_poisoned_allocations_fill_and_restore():
    before = torch.are_deterministic_algorithms_enabled()
    with poisoned_allocations():
        assert torch.isnan(torch.empty(4)).all()
        assert torch.isnan(torch.empty_like(torch.zeros(3))).all()
        assert (torch.empty(2, dtype=torch.int32) == 2**31 - 1).all()
    assert torch.are_deterministic_algorithms_enabled() == before


def test_impl_calls_run_with_poisoned_scratch():
    """An implementation that returns a workspace it never wrote returns NaN through Impl."""
    impl = make_impl("sparse_attention", "impls/zoo/attention.py:zoo_vllm_47188_unwritten_split")
    seen = []
    original = impl.fn.merge_splits

    def spy(parts, sink):
        seen.append(bool(torch.isnan(torch.empty(1)).all()))
        return original(parts, sink)

    impl.fn.merge_splits = spy
    try:
        from kernelprop.golden.attention_inputs import AttnRecipe
        x = make_attn_inputs(AttnCase(seed=1, batches=1, tokens_per_batch=1, heads=1,
                                      head_dim=4, page_size=2, window=2, topk=0, min_used=2))
        out = x.call(impl, recipe=AttnRecipe(tiling="compacted", kv_splits=8, split_align=1))
    finally:
        del impl.fn.merge_splits
    assert seen == [True] and torch.isnan(out.float()).any()


def test_strided_pools_have_padded_pages():
    x = make_attn_inputs(AttnCase(seed=0, strided=True, page_size=5, head_dim=7))
    for pool in (x.ori_kv, x.cmp_kv):
        assert pool.stride(0) != pool.shape[1] * pool.stride(1)


def test_huge_negative_scores_lie_below_the_sentinel():
    for seed in range(5):
        for D in (1, 3, 16):
            case = AttnCase(seed=seed, data="huge_negative", head_dim=D, softmax_scale=None,
                            oob_prob=0.0, pad_prob=0.0, min_used=4)
            x = make_attn_inputs(case)
            from kernelprop.golden.attention import gather_kv
            g = gather_kv(x.ori_kv, x.ori_block_table, x.cmp_kv, x.cmp_block_table,
                          x.sparse_indices, x.seqused_kv, window=x.window,
                          tokens_per_batch=x.tokens_per_batch)
            s = torch.einsum("thd,tkd->thk", x.q.float(), g.rows.float()) * D ** -0.5
            s = s.masked_fill(~g.valid[:, None, :], -math.inf)
            finite = torch.isfinite(s)
            assert finite.any() and (s[finite] < attention_classes.SENTINEL).all()
            assert "huge_scores" in attention_classes.attn_classes(x, None)


def test_many_rows_class_is_recognized():
    x = make_attn_inputs(AttnCase(seed=0, batches=33, tokens_per_batch=2, heads=1, head_dim=3))
    assert "many_rows" in attention_classes.attn_classes(x, None)
    x = make_attn_inputs(AttnCase(seed=0, batches=32, tokens_per_batch=2, heads=1, head_dim=3))
    assert "many_rows" not in attention_classes.attn_classes(x, None)
