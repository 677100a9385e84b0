"""Hypothesis strategies of the indexer (SPEC section 7): an IndexerCase with seed; tensors follow
from it (golden.indexer.make_indexer_inputs). Sizes come from the run's Limits (the attention
fields: batches, tokens_per_batch, heads, head_dim, page_size, window, topk, cmp_len), kept small
for the Triton interpreter; shrinking goes toward one batch, one token, one head, small pages."""
from __future__ import annotations

from hypothesis import strategies as st

from kernelprop.golden.indexer import INDEXER_DATA, IndexerCase
from kernelprop.properties.strategies import Limits, current_limits


def indexer_cases(*, limits: Limits | None = None, data=INDEXER_DATA, domain=None):
    lim = limits or current_limits()

    @st.composite
    def build(draw):
        case = IndexerCase(
            seed=draw(st.integers(0, 2 ** 31 - 1), label="seed"),
            batches=draw(st.integers(1, min(lim.batches, 3))),
            tokens_per_batch=draw(st.integers(1, min(lim.tokens_per_batch, 3))),
            heads=draw(st.integers(1, min(lim.heads, 4))),
            head_dim=draw(st.integers(1, min(lim.head_dim, 32))),
            page_size=draw(st.integers(1, min(lim.page_size, 8))),
            window=draw(st.integers(1, min(lim.window, 8))),
            topk=draw(st.integers(1, min(lim.topk, 12))),
            max_cmp_len=draw(st.integers(0, min(lim.cmp_len, 24))),
            spare_pages=draw(st.integers(0, 2)),
            data=draw(st.sampled_from(data)))
        return case if domain is None else domain.fit(case)

    return build()
