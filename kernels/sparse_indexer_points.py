"""The indexer's compile configurations for `./kp compile` (its registry record's `compile_points`):
launch shapes whose KernelLaunch is the wrapper's own (kernels.sparse_indexer.indexer_launch).

Reference (gated: no spill, no stack frame): the DSV4 decode step of SPEC sections 2 and 7, the
indexer that fills the compressed part of the attention's K = 640 indices: T = 128 tokens (B = 64
batches of S = 2), window W = 128, topk = 512, pages of BS = 128 slots, a compressed cache of 2048
slots, and the DeepSeek lightning indexer's Hi = 64 heads of Di = 128 (SPEC 7 leaves Hi and Di open;
these are DeepSeek-V3.2's index_n_heads / index_head_dim)."""
from __future__ import annotations

from dataclasses import dataclass

from kernelprop.golden.indexer import IndexerCase


@dataclass(frozen=True)
class IndexerPoint:
    """One score-kernel launch: a name and the shape fields of an IndexerCase (seed and data kind
    only matter for a launch on a device)."""

    name: str
    case: IndexerCase
    reference: bool = False       # gated: no spill, no stack frame

    kind = "indexer_topk"

    def launch(self, device: str = "meta"):
        """The KernelLaunch the wrapper would run for this shape (tensor shapes only on "meta")."""
        import torch

        from kernelprop.golden.indexer import cmp_valid, make_indexer_inputs
        from kernelprop.kernels.sparse_indexer import BLOCK_J, indexer_launch

        c = self.case
        B, S, H, D, BS = c.batches, c.tokens_per_batch, c.heads, c.head_dim, c.page_size
        T, blocks = c.tokens, max(1, -(-c.max_cmp_len // BS))
        if device == "meta":
            e = lambda *shape, dtype: torch.empty(*shape, dtype=dtype, device="meta")  # noqa: E731
            q, k = e(T, H, D, dtype=torch.bfloat16), e(B * blocks + 1, BS, D, dtype=torch.bfloat16)
            table, w = e(B, blocks, dtype=torch.int32), e(T, H, dtype=torch.float32)
            valid = e(T, dtype=torch.int32)
        else:
            x = make_indexer_inputs(c.replace(device=device))
            q, k, table, w = x.index_q, x.index_k, x.cmp_block_table, x.weights
            valid = cmp_valid(x.seqused_kv, window=c.window, tokens_per_batch=S, tokens=T).int()
        scores = torch.empty(T, -(-blocks * BS // BLOCK_J) * BLOCK_J, dtype=torch.float32, device=device)
        return indexer_launch(q, k, table, w, valid, scores, S)


DSV4_INDEXER = IndexerCase(batches=64, tokens_per_batch=2, heads=64, head_dim=128, page_size=128,
                           window=128, topk=512, max_cmp_len=2048)
DSV4 = IndexerPoint("idx dsv4 (Hi64 Di128 BS128 topk512)", DSV4_INDEXER, reference=True)


def indexer_compile_points(scope: str) -> list:
    """The points of `scope`: "reference" and "fast" (the DSV4 indexer), "sweep" (also other
    index head counts and dims, and one-slot pages, which specialize differently)."""
    if scope in ("reference", "fast"):
        return [DSV4]
    small = DSV4_INDEXER.replace(batches=4, max_cmp_len=1024)
    return [DSV4, *(IndexerPoint(f"idx Hi{h} Di{d}", small.replace(heads=h, head_dim=d))
                    for h in (1, 16, 64) for d in (16, 64, 100, 128)),
            IndexerPoint("idx dsv4 BS1", DSV4_INDEXER.replace(page_size=1, max_cmp_len=256))]
