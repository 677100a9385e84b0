"""Planted bug: impls/flat_slot_reference.py with an overflow "guard" on the sink: the sink enters
the logsumexp as min(sink, lse_keys + 88), so exp(sink - M) never overflows. A +inf sink then gives
a tiny non-zero o (about e^-88 of the true o without a sink) instead of exact zeros; finite sinks
are unaffected wherever the golden's own fp32 denominator does not overflow. Declares the
reference's (truthful) recipe."""
import math

import torch

from kernelprop.impls import flat_slot_reference as _ref
from kernelprop import flat_slot_ids


def _attend_guarded(q, ori_rows, cmp_rows, ori_slots, cmp_slots, sink, scale):
    use_ori, use_cmp = ori_slots >= 0, cmp_slots >= 0
    keys = torch.where(use_ori[..., None], ori_rows[ori_slots.clamp_min(0)].float(),
                       torch.where(use_cmp[..., None], cmp_rows[cmp_slots.clamp_min(0)].float(), 0.0))
    valid = (use_ori | use_cmp)[:, None, :]
    s = torch.where(valid, torch.einsum("thd,tkd->thk", q.float(), keys) * scale, -math.inf)
    lse_keys = torch.logsumexp(s, dim=-1)
    has = torch.isfinite(lse_keys)
    guarded = torch.minimum(sink.float()[None, :], torch.where(has, lse_keys, 0.0) + 88.0)  # the bug
    lse = torch.logaddexp(lse_keys, guarded)
    w = torch.where(valid & has[..., None], torch.exp(s - torch.where(has, lse, 0.0)[..., None]), 0.0)
    o = torch.einsum("thk,tkd->thd", w, keys)
    return torch.where(has[..., None], o, 0.0).to(torch.bfloat16)


def sparse_decode_attention(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices,
                            seqused_kv, attn_sink, *, window, tokens_per_batch, softmax_scale=None):
    D, BS = q.shape[-1], ori_kv.shape[1]
    slots = flat_slot_ids(ori_block_table, cmp_block_table, sparse_indices, seqused_kv,
                          window=window, tokens_per_batch=tokens_per_batch, page_size=BS,
                          ori_pages=ori_kv.shape[0], cmp_pages=cmp_kv.shape[0])
    scale = D ** -0.5 if softmax_scale is None else softmax_scale
    return _attend_guarded(q, ori_kv.reshape(-1, D), cmp_kv.reshape(-1, D), slots.ori, slots.cmp,
                           attn_sink, scale)


sparse_decode_attention.recipe = _ref.sparse_decode_attention.recipe
sparse_decode_attention.validates_inputs = False
