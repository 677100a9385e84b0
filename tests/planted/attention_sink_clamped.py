"""Planted bug: impls/flat_slot_reference.py with an overflow "guard" on the sink: the sink enters
the logsumexp as min(sink, lse_keys + 88), so exp(sink - M) never overflows. A +inf sink then gives
a tiny non-zero o (about e^-88 of the true o without a sink) instead of exact zeros; finite sinks
are unaffected wherever the golden's own fp32 denominator does not overflow. Declares the
reference's (truthful) recipe."""
import torch

from kernelprop import flat_slot_ids
from kernelprop.impls import flat_slot_reference as _ref


def _guarded_fold(lse_keys: torch.Tensor, sink: torch.Tensor) -> torch.Tensor:
    """The bug: the sink is capped at lse_keys + 88 before it is folded in."""
    return torch.logaddexp(lse_keys, torch.minimum(sink, torch.where(torch.isfinite(lse_keys),
                                                                     lse_keys, 0.0) + 88.0))


def sparse_decode_attention(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices,
                            seqused_kv, attn_sink, *, window, tokens_per_batch, softmax_scale=None):
    D, BS = q.shape[-1], ori_kv.shape[1]
    slots = flat_slot_ids(ori_block_table, cmp_block_table, sparse_indices, seqused_kv,
                          window=window, tokens_per_batch=tokens_per_batch, page_size=BS,
                          ori_pages=ori_kv.shape[0], cmp_pages=cmp_kv.shape[0])
    scale = D ** -0.5 if softmax_scale is None else softmax_scale
    return _ref.attend_flat(q, ori_kv.reshape(-1, D), cmp_kv.reshape(-1, D), slots.ori, slots.cmp,
                            attn_sink, scale, fold=_guarded_fold)


sparse_decode_attention.recipe = _ref.sparse_decode_attention.recipe
