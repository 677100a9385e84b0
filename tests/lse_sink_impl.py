"""Test helper: a correct sparse attention that folds the sink in through logsumexp (issue 10).

Same tiled recipe as SPEC section 2 (positional tiling), but the sink enters at the end as
    o = (O / L) * exp(lse - logaddexp(lse, sink)),   lse = M + log(L)
instead of O / (L + exp(sink - M)). Where sink - M > ~88.7 the golden's fp32 denominator
overflows and it returns 0, while this form returns the exact (subnormal) value, rounded: the
case the P1 bound's overflow term must cover with its absolute subnormal floor.
"""
from __future__ import annotations

import math

import torch

from kernelprop.golden.attention import gather_kv
from kernelprop.golden.attention_inputs import UNSPLIT_FIELDS, AttnRecipe
from kernelprop.golden.rounding import round_to_bf16


def lse_sink_attention(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices,
                       seqused_kv, attn_sink, *, window, tokens_per_batch, softmax_scale=None,
                       recipe=None):
    recipe = recipe or AttnRecipe()
    if recipe.tiling != "positional":
        raise NotImplementedError("lse_sink_attention implements positional tiling only")
    kv = gather_kv(ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices, seqused_kv,
                   window=window, tokens_per_batch=tokens_per_batch)
    T, H, D = q.shape
    K = sparse_indices.shape[1]
    scale = torch.tensor(D ** -0.5 if softmax_scale is None else softmax_scale)
    rows = kv.rows.float()                                               # [T, K, D]
    s = torch.bmm(q.float(), rows.transpose(1, 2)) * scale              # [T, H, K] fp32 matmul
    M = torch.full((T, H), -math.inf)
    L = torch.zeros(T, H)
    O = torch.zeros(T, H, D)
    tile = K if getattr(recipe, "tile", 64) is None else recipe.tile
    for start in range(0, K, max(tile, 1)):
        ok = kv.valid[:, None, start:start + tile]                      # [T, 1, n]
        st = torch.where(ok, s[:, :, start:start + tile], -math.inf)
        m = st.amax(-1)
        live = ok.any(-1).expand(T, H)
        m0 = torch.where(live, m, 0.0)
        e = torch.where(ok, torch.exp(st - m0[..., None]), 0.0)
        p = round_to_bf16(e, recipe.rounding) if recipe.p_dtype == "bf16" else e
        l_t = (p if recipe.l_from == "rounded" else e).sum(-1)
        o_t = torch.bmm(p, rows[:, start:start + tile])
        M_new = torch.where(live, torch.maximum(M, m0), M)
        a = torch.where(torch.isfinite(M), torch.exp(M - M_new), 0.0)
        b = torch.exp(m0 - M_new)
        L = torch.where(live, a * L + b * l_t, L)
        O = torch.where(live[..., None], a[..., None] * O + b[..., None] * o_t, O)
        M = M_new
    seen = torch.isfinite(M)
    lse = torch.where(seen, M, 0.0) + torch.log(L)
    factor = torch.exp(lse - torch.logaddexp(lse, attn_sink.float()[None, :]))
    return torch.where(seen[..., None], O / L[..., None] * factor[..., None], 0.0)


lse_sink_attention.recipe = AttnRecipe()
lse_sink_attention.accepts_recipe = UNSPLIT_FIELDS  # one pass: no split-KV
