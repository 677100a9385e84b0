"""Sparse indexer sizes: the plain limits per backend and --sizes. Interpreter-sized everywhere
(the score kernel runs one program per token and 16 slots); the values are those the indexer drew
when it capped the attention limits (min(attention limit, cap)), kept unchanged."""
from __future__ import annotations

from kernelprop.core.sizes import SizePresets, limits_type

IndexerLimits = limits_type(
    "IndexerLimits", __name__, "Upper bounds on a drawn IndexerCase.",
    batches=2, tokens_per_batch=2, heads=4, head_dim=32, page_size=8, window=8, topk=12, cmp_len=24)

INDEXER_SIZES = SizePresets(cpu=IndexerLimits(), cpu_nightly=IndexerLimits(batches=3),
                            cuda=IndexerLimits(batches=3), cuda_large=IndexerLimits(batches=3, tokens_per_batch=3))
