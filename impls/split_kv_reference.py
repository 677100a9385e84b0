"""A correct split-KV (FlashDecoding) sparse decode attention in torch, written the way SGLang's and
vLLM's Triton decode kernels are (SPEC section 2, "Split-KV decode"): a token's valid keys as one
flat list, cut into splits; stage 1 runs the tiled online softmax of each split and stores the
partial o_i = O_i / L_i and lse_i = M_i + log(L_i); stage 2 merges the partials with a running
maximum, adding the sink once at the end:

    for each split i with keys:  X' = max(X, lse_i), acc = acc exp(X - X') + exp(lse_i - X') o_i,
                                 s = s exp(X - X') + exp(lse_i - X'), X = X'
    o = acc / (s + exp(sink - X))

It is independent of the golden (golden/attention.py merges in two passes, max first; this one
merges online, per token, with exp as exp2(x log2 e), fp32 matmul scores). Declarations:
  recipe          kv_splits 8, split_align 32 (SGLang's split rule), compacted tiling, tile 64
  accepts_recipe  the split fields, the tile and the P numerics (p_max included): every field but
                  the tiling (it always walks the compacted list); kv_splits None runs one pass
"""
from __future__ import annotations

import math

import torch

from kernelprop.golden.attention_inputs import AttnRecipe
from kernelprop.golden.rounding import round_to_bf16
from kernelprop.kernels.sparse_attention import check_attention_args
from kernelprop.golden.attention_slots import flat_slot_ids

LOG2E = 1.4426950408889634


def _exp(x: torch.Tensor) -> torch.Tensor:
    return torch.exp2(x * LOG2E)


def _tiled_softmax(q, keys, scale, recipe: AttnRecipe):
    """One split (or the whole list): q [H, D] fp32, keys [n, D] fp32 (n >= 1), tiles of the
    recipe from the first key. Returns (M [H], L [H], O [H, D]) fp32."""
    n = keys.shape[0]
    tile = n if recipe.tile is None else recipe.tile
    H, D = q.shape
    M = torch.full((H,), -math.inf)
    L = torch.zeros(H)
    O = torch.zeros(H, D)
    for start in range(0, n, tile):
        k = keys[start:start + tile]                                      # [b, D]
        s = (q @ k.T) * scale                                             # [H, b]
        m = s.amax(-1)
        if recipe.p_max == "running":    # P against the running max: b = exp(0) = 1
            m = torch.maximum(M, m)
        e = _exp(s - m[:, None])
        p = round_to_bf16(e, recipe.rounding) if recipe.p_dtype == "bf16" else e
        l = (p if recipe.l_from == "rounded" else e).sum(-1)
        M_new = torch.maximum(M, m)
        a = torch.where(torch.isfinite(M), _exp(M - M_new), 0.0)
        b = _exp(m - M_new)
        L = a * L + b * l
        O = a[:, None] * O + b[:, None] * (p @ k)
        M = M_new
    return M, L, O


def split_bounds(n_valid: int, recipe: AttnRecipe) -> list[tuple[int, int]]:
    """[start, stop) of every split of a token with n_valid keys (empty ones included)."""
    per = -(-max(n_valid, 1) // recipe.kv_splits)
    length = -(-per // recipe.split_align) * recipe.split_align
    return [(min(i * length, n_valid), min((i + 1) * length, n_valid))
            for i in range(recipe.kv_splits)]


def _one_token(q, keys, sink, scale, recipe: AttnRecipe) -> torch.Tensor:
    """o [H, D] of one token from its valid keys [n, D] (n may be 0)."""
    H, D = q.shape
    n = keys.shape[0]
    if n == 0:
        return torch.zeros(H, D)
    if recipe.kv_splits is None:
        M, L, O = _tiled_softmax(q, keys, scale, recipe)
        return O / (L + _exp(sink - M))[:, None]
    X = torch.full((H,), -math.inf)
    acc = torch.zeros(H, D)
    total = torch.zeros(H)
    for start, stop in split_bounds(n, recipe):
        if stop <= start:            # an empty split stores nothing and is skipped
            continue
        M, L, O = _tiled_softmax(q, keys[start:stop], scale, recipe)
        o_i, lse_i = O / L[:, None], M + torch.log(L)                    # stage 1's stores
        X_new = torch.maximum(X, lse_i)
        old = torch.where(torch.isfinite(X), _exp(X - X_new), 0.0)
        w = _exp(lse_i - X_new)
        acc = acc * old[:, None] + w[:, None] * o_i
        total = total * old + w
        X = X_new
    return acc / (total + _exp(sink - X))[:, None]


def sparse_decode_attention(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices,
                            seqused_kv, attn_sink, *, window, tokens_per_batch, softmax_scale=None,
                            recipe=None):
    """SPEC section 2 with split-KV; o [T, H, D] fp32 (bf16 for out_dtype "bf16")."""
    recipe = sparse_decode_attention.recipe if recipe is None else recipe
    if not isinstance(recipe, AttnRecipe):
        raise TypeError(f"recipe must be an AttnRecipe or None, got {type(recipe).__name__}")
    scale = check_attention_args(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table,
                                 sparse_indices, seqused_kv, attn_sink, window=window,
                                 tokens_per_batch=tokens_per_batch, softmax_scale=softmax_scale)
    slots = flat_slot_ids(ori_block_table, cmp_block_table, sparse_indices, seqused_kv,
                          window=window, tokens_per_batch=tokens_per_batch,
                          page_size=ori_kv.shape[1], ori_pages=ori_kv.shape[0],
                          cmp_pages=cmp_kv.shape[0])
    rows = slots.rows(ori_kv, cmp_kv).float().cpu()                      # [T, K, D]
    valid = slots.valid.cpu()
    qf, sink = q.float().cpu(), attn_sink.float().cpu()
    scale32 = torch.tensor(scale, dtype=torch.float32)
    o = torch.stack([_one_token(qf[t], rows[t][valid[t]], sink, scale32, recipe)
                     for t in range(q.shape[0])]) if q.shape[0] else torch.zeros(q.shape)
    o = o.to(q.device)
    return o.to(torch.bfloat16) if recipe.out_dtype == "bf16" else o


sparse_decode_attention.recipe = AttnRecipe(tiling="compacted", kv_splits=8, split_align=32)
sparse_decode_attention.accepts_recipe = ("tile", "p_dtype", "l_from", "rounding", "out_dtype",
                                          "kv_splits", "split_align", "p_max")
