"""Indexer top-k properties I1-I5 (SPEC section 7) on the implementation under test (`indexer_impl`:
the bundled kernel or --impl indexer_topk=...). I6 (bad input) runs in test_bad_input.py through
the op's P13 argument table. Bounds: docs/bounds-indexer.md."""
import pytest
import torch
from hypothesis import given, strategies as st

from kernelprop.golden.indexer import make_indexer_inputs
from kernelprop.properties.checks import run_property
from kernelprop.properties.indexer_strategies import indexer_cases
from kernelprop.properties.replays_indexer import attention_for

R = "kernelprop.properties.replays_indexer"


def _case(draws, impl, device, **kw):
    case = draws.draw(indexer_cases(domain=impl.domain, **kw), label="case")
    return case.replace(device=device)


@pytest.mark.spec("I1")
@given(data=st.data())
def test_i1_valid_selection(indexer_impl, device, data):
    case = _case(data, indexer_impl, device)
    run_property("I1", "a valid selection", f"{R}:i1_valid", inputs={"inputs": make_indexer_inputs(case)},
                 impl=indexer_impl, params={}, case=case)


@pytest.mark.spec("I2")
@given(data=st.data())
def test_i2_optimal_within_score_bound(indexer_impl, device, data):
    case = _case(data, indexer_impl, device)
    run_property("I2", "selection optimal within the score-error bound", f"{R}:i2_optimal",
                 inputs={"inputs": make_indexer_inputs(case)}, impl=indexer_impl, params={}, case=case)


@pytest.mark.spec("I3")
@given(data=st.data())
def test_i3_exact_ties_take_the_smaller_slot(indexer_impl, device, data):
    case = _case(data, indexer_impl, device, data=("ties",))
    run_property("I3", "exact ties take the smaller slot", f"{R}:i3_ties",
                 inputs={"inputs": make_indexer_inputs(case)}, impl=indexer_impl, params={}, case=case)


def permute_pages(x, seed: int):
    """The same logical cache on permuted physical pages (tables remapped)."""
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(x.index_k.shape[0], generator=gen).to(x.index_k.device)
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(perm.numel(), device=perm.device)
    return x.replace(index_k=x.index_k[inverse], cmp_block_table=perm[x.cmp_block_table.long()].int())


def change_other_tokens(x, keep: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(x.index_q.shape, generator=gen).to(x.index_q.dtype).to(x.index_q.device)
    w = torch.randn(x.weights.shape, generator=gen).to(x.weights.device)
    q[keep], w[keep] = x.index_q[keep], x.weights[keep]
    return x.replace(index_q=q, weights=w)


@pytest.mark.spec("I4")
@given(data=st.data())
def test_i4_pages_and_other_tokens_leave_the_row_unchanged(indexer_impl, device, data):
    case = _case(data, indexer_impl, device)
    x = make_indexer_inputs(case)
    seed = data.draw(st.integers(0, 2 ** 16), label="perm_seed")
    run_property("I4", "page permutation leaves every row bitwise unchanged", f"{R}:i4_rows_unchanged",
                 inputs={"a": x, "b": permute_pages(x, seed)}, impl=indexer_impl, params={}, case=case)
    keep = data.draw(st.integers(0, case.tokens - 1), label="keep")
    run_property("I4", "other tokens' data leave token keep's row bitwise unchanged",
                 f"{R}:i4_rows_unchanged", inputs={"a": x, "b": change_other_tokens(x, keep, seed)},
                 impl=indexer_impl, params={"keep": [keep]}, case=case)


@pytest.mark.spec("I5")
@given(data=st.data())
def test_i5_attention_over_the_kernels_indices(indexer_impl, device, data):
    case = _case(data, indexer_impl, device)
    x = make_indexer_inputs(case)
    attn = attention_for(x, case.seed)
    run_property("I5", "attention over the kernel's indices within the near-tie bound of the golden's",
                 f"{R}:i5_attention", inputs={"inputs": x, "attn": attn}, impl=indexer_impl,
                 params={}, case=case)
