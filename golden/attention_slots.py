"""Sparse attention's flat slot ids (adapters import them as `kernelprop.flat_slot_ids`: its
registry record's `exports`): block tables + SPEC visibility -> flat slot ids per pool, for
adapters of kernels that take flat slot ids (row numbers into a pool viewed as [N * BS, D])
instead of paged block tables.

For token t (batch b = t // S) and index r of sparse_indices[t] (SPEC section 2):
  window slot  r valid iff 0 <= r < win_valid:       ori id = ori_block_table[b, r // BS] * BS + r % BS
  compressed   r valid iff 0 <= r - W < cmp_valid:   cmp id = cmp_block_table[b, (r-W) // BS] * BS + (r-W) % BS
Everything else (pads, out-of-range, not yet visible) is -1 in both. A valid index whose block column
or page id lies outside its table or pool raises ValueError naming the table (bad input, P13),
never an out-of-bounds read. Vectorized: a few torch ops over [T, K].
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from kernelprop.golden.attention import index_masks


@dataclass(frozen=True)
class FlatSlots:
    """Flat row ids of every index position, [T, K] int64 each, -1 where that pool is not named."""

    ori: torch.Tensor    # row of ori_kv.reshape(-1, D), or -1
    cmp: torch.Tensor    # row of cmp_kv.reshape(-1, D), or -1
    valid: torch.Tensor  # [T, K] bool: the index is valid (exactly one of ori / cmp is >= 0)

    def rows(self, ori_kv: torch.Tensor, cmp_kv: torch.Tensor) -> torch.Tensor:
        """[T, K, D] the key rows (zeros where invalid: those read no pool row); each pool is read
        at its named rows only, never copied whole (a pool may be gigabytes of lazily allocated
        memory: the large_offsets class)."""
        D = ori_kv.shape[-1]
        rows = torch.zeros(*self.ori.shape, D, dtype=ori_kv.dtype, device=ori_kv.device)
        for pool, ids in ((ori_kv, self.ori), (cmp_kv, self.cmp)):
            named = ids >= 0
            BS = pool.shape[1]
            rows[named] = pool[ids[named] // BS, ids[named] % BS].to(rows.dtype)
        return rows


def flat_slot_ids(ori_block_table: torch.Tensor, cmp_block_table: torch.Tensor,
                  sparse_indices: torch.Tensor, seqused_kv: torch.Tensor, *, window: int,
                  tokens_per_batch: int, page_size: int, ori_pages: int, cmp_pages: int) -> FlatSlots:
    """FlatSlots of sparse_indices (see the module docstring). ori_pages / cmp_pages: pool sizes
    N_ori / N_cmp (page ids must lie in [0, N))."""
    if page_size < 1:
        raise ValueError(f"page_size must be >= 1, got {page_size}")
    T, K = sparse_indices.shape
    batch, in_window, in_cmp = index_masks(sparse_indices, seqused_kv, window=window,
                                           tokens_per_batch=tokens_per_batch)
    r = sparse_indices.long()
    out = {}
    for key, name, table, mask, slot, n_pages in (
            ("ori", "ori_block_table", ori_block_table, in_window, r, ori_pages),
            ("cmp", "cmp_block_table", cmp_block_table, in_cmp, r - window, cmp_pages)):
        column = torch.where(mask, slot // page_size, 0)
        missing = mask & (column >= table.shape[1])
        if bool(missing.any()):
            t, k = missing.nonzero()[0].tolist()
            raise ValueError(f"{name} has {table.shape[1]} block columns but token {t} index "
                             f"sparse_indices[{t}, {k}] = {int(r[t, k])} needs column {int(column[t, k])}")
        if table.shape[1] == 0:
            out[key] = torch.full((T, K), -1, dtype=torch.long, device=r.device)
            continue
        page = table.long()[batch[:, None].expand(T, K), column.clamp_max(table.shape[1] - 1)]
        bad = mask & ((page < 0) | (page >= n_pages))
        if bool(bad.any()):
            t, k = bad.nonzero()[0].tolist()
            raise ValueError(f"{name} names page {int(page[t, k])} for token {t} index "
                             f"{int(r[t, k])}, outside the pool of {n_pages} pages")
        out[key] = torch.where(mask, page * page_size + slot % page_size, -1)
    return FlatSlots(ori=out["ori"], cmp=out["cmp"], valid=in_window | in_cmp)
