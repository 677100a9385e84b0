"""A third-party-style reference and its adapter (docs/plugins.md): a plain torch sparse attention
that takes FLAT SLOT IDS (rows of each pool viewed as [N * BS, D]) instead of block tables, computes
one untiled softmax in fp32, folds the sink in through logsumexp, and writes bf16. It does no
argument checks.

The kernel (`attend_flat`) knows nothing about the suite. The adapter (`sparse_decode_attention`)
has the suite's signature (SPEC section 6): it turns block tables + visibility into flat slot ids
with `kernelprop.flat_slot_ids` and declares what the kernel computes:
  recipe = AttnRecipe(tile=None, p_dtype="fp32", l_from="unrounded", out_dtype="bf16")
  validates_inputs = False            (no argument checks: P13 is skipped with that reason)
  accepts_recipe absent               (it computes one recipe only)
Use: pytest --impl sparse_attention=impls/flat_slot_reference.py:sparse_decode_attention
"""
from __future__ import annotations

import math

import torch

from kernelprop.golden.attention_inputs import AttnRecipe
from kernelprop.golden.attention_slots import flat_slot_ids


def fold_sink(lse_keys: torch.Tensor, sink: torch.Tensor) -> torch.Tensor:
    """lse = log(sum_j exp(s_j) + exp(sink)) from lse_keys [T, H] and the sink [1, H]."""
    return torch.logaddexp(lse_keys, sink)


def attend_flat(q, ori_rows, cmp_rows, ori_slots, cmp_slots, sink, scale, *, fold=fold_sink):
    """o[t, h] = sum_j softmax_j(s) k_j over the rows named by ori_slots / cmp_slots (-1: none),
    with the sink in the softmax's normalizer: w_j = exp(s_j - lse), lse = fold(lse_keys, sink).
    q [T, H, D] bf16, *_rows [R, D] bf16, *_slots [T, K] int64, sink [H] fp32 -> [T, H, D] bf16."""
    use_ori, use_cmp = ori_slots >= 0, cmp_slots >= 0
    keys = torch.where(use_ori[..., None], ori_rows[ori_slots.clamp_min(0)].float(),
                       torch.where(use_cmp[..., None], cmp_rows[cmp_slots.clamp_min(0)].float(), 0.0))
    valid = (use_ori | use_cmp)[:, None, :]                                   # [T, 1, K]
    keys = torch.where((use_ori | use_cmp)[..., None], keys, 0.0)
    s = torch.einsum("thd,tkd->thk", q.float(), keys) * scale
    s = torch.where(valid, s, -math.inf)
    lse_keys = torch.logsumexp(s, dim=-1)                                     # -inf: no key
    lse = fold(lse_keys, sink.float()[None, :])                              # [T, H]
    has = torch.isfinite(lse_keys) & (lse > -math.inf)
    w = torch.where(valid & has[..., None], torch.exp(s - torch.where(has, lse, 0.0)[..., None]), 0.0)
    o = torch.einsum("thk,tkd->thd", w, keys)
    return torch.where(has[..., None], o, 0.0).to(torch.bfloat16)


def flat_slot_adapter(fold=fold_sink):
    """The suite-signature adapter (SPEC section 6) around `attend_flat` with this sink fold."""

    def sparse_decode_attention(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices,
                                seqused_kv, attn_sink, *, window, tokens_per_batch,
                                softmax_scale=None):
        D, BS = q.shape[-1], ori_kv.shape[1]
        slots = flat_slot_ids(ori_block_table, cmp_block_table, sparse_indices, seqused_kv,
                              window=window, tokens_per_batch=tokens_per_batch, page_size=BS,
                              ori_pages=ori_kv.shape[0], cmp_pages=cmp_kv.shape[0])
        scale = D ** -0.5 if softmax_scale is None else softmax_scale
        return attend_flat(q, ori_kv.reshape(-1, D), cmp_kv.reshape(-1, D), slots.ori, slots.cmp,
                           attn_sink, scale, fold=fold)

    sparse_decode_attention.recipe = AttnRecipe(tile=None, p_dtype="fp32", l_from="unrounded",
                                                out_dtype="bf16")
    sparse_decode_attention.validates_inputs = False
    return sparse_decode_attention


sparse_decode_attention = flat_slot_adapter()
