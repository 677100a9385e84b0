"""A third-party-style chunked reference (a serving engine's style, docs/plugins.md): online softmax
over fixed chunks of index positions (default 128, any chunk size works), fp32 P, the l-sum of the
fp32 exp, the sink added to the final denominator, bf16 output. It gathers from the paged pools
itself, does no argument checks, and takes a `recipe` keyword only for its chunk size.

Declarations:
  recipe = AttnRecipe(tile=128, p_dtype="fp32", l_from="unrounded", out_dtype="bf16")
  accepts_recipe = ("tile",)          (the suite varies only the chunk size: P3 runs on it)
  validates_inputs = False
Use: pytest --impl sparse_attention=impls/chunked_reference.py:sparse_decode_attention
"""
from __future__ import annotations

import math

import torch

from kernelprop.golden.attention_inputs import AttnRecipe

CHUNK = 128


def _gather(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices, seqused_kv,
            window, tokens_per_batch):
    """[T, K, D] fp32 keys (0 where invalid) and [T, K] validity, straight from the pages."""
    T, K = sparse_indices.shape
    BS, D = ori_kv.shape[1], ori_kv.shape[2]
    t = torch.arange(T, device=q.device)
    b = t // tokens_per_batch
    used = seqused_kv.long()[b] - tokens_per_batch + 1 + t % tokens_per_batch
    n_win = used.clamp(max=window)
    n_cmp = (used - n_win).clamp(min=0)
    idx = sparse_indices.long()
    in_win = (idx >= 0) & (idx < n_win[:, None])
    in_cmp = (idx >= window) & (idx - window < n_cmp[:, None])
    keys = torch.zeros(T, K, D, device=q.device)
    for mask, pool, table, slot in ((in_win, ori_kv, ori_block_table, idx),
                                    (in_cmp, cmp_kv, cmp_block_table, idx - window)):
        if not bool(mask.any()):
            continue
        tt, kk = mask.nonzero(as_tuple=True)
        page = table.long()[b[tt], slot[tt, kk] // BS]
        keys[tt, kk] = pool[page, slot[tt, kk] % BS].float()
    return keys, in_win | in_cmp


def sparse_decode_attention(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices,
                            seqused_kv, attn_sink, *, window, tokens_per_batch, softmax_scale=None,
                            recipe=None):
    T, H, D = q.shape
    K = sparse_indices.shape[1]
    chunk = CHUNK if recipe is None else recipe.tile_for(K)
    keys, valid = _gather(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices,
                          seqused_kv, window, tokens_per_batch)
    scale = D ** -0.5 if softmax_scale is None else softmax_scale
    qf = q.float()
    m_run = torch.full((T, H), -math.inf, device=q.device)
    l_run = torch.zeros(T, H, device=q.device)
    acc = torch.zeros(T, H, D, device=q.device)
    for start in range(0, K, chunk):
        k_c = keys[:, start:start + chunk]
        ok = valid[:, None, start:start + chunk]
        s = torch.where(ok, torch.einsum("thd,tkd->thk", qf, k_c) * scale, -math.inf)
        m_c = s.amax(-1)
        live = torch.isfinite(m_c)
        m_new = torch.where(live, torch.maximum(m_run, m_c), m_run)
        m_safe = torch.where(live, m_new, 0.0)
        p = torch.where(ok, torch.exp(s - m_safe[..., None]), 0.0)
        alpha = torch.where(live & torch.isfinite(m_run), torch.exp(m_run - m_safe), 0.0)
        alpha = torch.where(live, alpha, 1.0)
        l_run = alpha * l_run + p.sum(-1)
        acc = alpha[..., None] * acc + torch.einsum("thk,tkd->thd", p, k_c)
        m_run = m_new
    seen = torch.isfinite(m_run)
    m0 = torch.where(seen, m_run, 0.0)
    o = acc / (l_run + torch.exp(attn_sink.float()[None, :] - m0))[..., None]
    return torch.where(seen[..., None], o, 0.0).to(torch.bfloat16)


sparse_decode_attention.recipe = AttnRecipe(tile=CHUNK, p_dtype="fp32", l_from="unrounded",
                                            out_dtype="bf16")
sparse_decode_attention.accepts_recipe = ("tile",)
sparse_decode_attention.validates_inputs = False
