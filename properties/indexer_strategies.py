"""Hypothesis strategies of the indexer (SPEC section 7): an IndexerCase with seed; tensors follow
from it (golden.indexer.make_indexer_inputs). Sizes come from the indexer's own limits
(properties/indexer_limits.py, the run's preset by default), kept small for the Triton
interpreter; shrinking goes toward one batch, one token, one head, small pages."""
from __future__ import annotations

from hypothesis import strategies as st

from kernelprop.golden.indexer import INDEXER_DATA, IndexerCase
from kernelprop.properties.indexer_limits import INDEXER_SIZES, IndexerLimits


def indexer_cases(*, limits: IndexerLimits | None = None, data=INDEXER_DATA, domain=None):
    lim = limits or INDEXER_SIZES.current()

    @st.composite
    def build(draw):
        case = IndexerCase(
            seed=draw(st.integers(0, 2 ** 31 - 1), label="seed"),
            batches=draw(st.integers(1, lim.batches)),
            tokens_per_batch=draw(st.integers(1, lim.tokens_per_batch)),
            heads=draw(st.integers(1, lim.heads)),
            head_dim=draw(st.integers(1, lim.head_dim)),
            page_size=draw(st.integers(1, lim.page_size)),
            window=draw(st.integers(1, lim.window)),
            topk=draw(st.integers(1, lim.topk)),
            max_cmp_len=draw(st.integers(0, lim.cmp_len)),
            spare_pages=draw(st.integers(0, 2)),
            data=draw(st.sampled_from(data)))
        return case if domain is None else domain.fit(case)

    return build()
