"""Indexer score-error bound (docs/bounds-indexer.md), beside its golden (golden/indexer.py).

An fp32 implementation of score_tj = sum_h w_h relu(q_h . k_j) (head order, any order inside each
dot) differs from the exact score by at most
    E_tj = (1 + gamma(Hi + 1)) sum_h |w_h| gamma(Di - 1) A_hj  +  gamma(Hi + 1) sum_h |w_h| relu(d_hj)
           + Hi * 2 * FP32_SUBNORMAL_ULP
with A_hj = sum_k |q_hk k_jk| (the dot's worst case: Di - 1 additions, products of bf16 exact in
fp32), d_hj the exact dot (relu is 1-Lipschitz, so the dot's error passes through it), and the
weighted sum's Hi products and Hi additions as Hi + 1 chained roundings on sum |w_h relu(d_hj)|;
the last term covers products and sums landing in the subnormals. The golden (one rounding per
dot) is within the same E.
"""
from __future__ import annotations

import torch

from kernelprop.golden.error_model import FP32_SUBNORMAL_ULP, gamma
from kernelprop.golden.indexer import slot_count, gather_index_k


def score_error_bound(index_q, index_k, cmp_block_table, weights, seqused_kv, *, window,
                      tokens_per_batch, topk=None, recipe=None) -> torch.Tensor:
    """[T, slots] float64 E_tj (module docstring); 0 where the slot is invisible."""
    slots = slot_count(index_k.shape[1], cmp_block_table)
    rows, visible = gather_index_k(index_k, cmp_block_table, seqused_kv, window=window,
                                   tokens_per_batch=tokens_per_batch, slots=slots)
    q, k = index_q.double(), rows.double()
    H, D = q.shape[1], q.shape[2]
    absdot = torch.einsum("thd,tjd->thj", q.abs(), k.abs())
    dots = torch.einsum("thd,tjd->thj", q, k)
    w = weights.double().abs()[:, :, None]
    g_dot, g_sum = gamma(max(D - 1, 0)), gamma(H + 1)
    bound = (1 + g_sum) * (w * g_dot * absdot).sum(1) + g_sum * (w * torch.relu(dots)).sum(1)
    bound = bound + H * 2 * FP32_SUBNORMAL_ULP
    return torch.where(visible, bound, torch.zeros_like(bound))
