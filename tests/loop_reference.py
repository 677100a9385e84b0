"""A deliberately slow, per-token / per-head / per-key loop oracle for SPEC section 2.

Written from the SPEC text alone (it does not import golden.attention), so that the vectorized
golden can be checked against a second, obviously-correct reading of the contract.

.. math::
    s_j = fp32(fp32(q \\cdot k_j) \\cdot fp32(c)),\\quad
    e_j = fp32(\\exp(fp32(s_j - m))),\\quad p_j = round_{bf16}(e_j) \\text{ or } e_j,\\quad
    l = fp32(\\sum p_j \\text{ or } \\sum e_j),\\quad o_{tile} = fp32(\\sum p_j k_j)

    M' = \\max(M, m),\\ a = e^{M - M'},\\ b = e^{m - M'},\\ L = aL + bl,\\ O = aO + b\\,o_{tile},\\quad
    o = O / (L + e^{sink - M})

fp32 model (one IEEE fp32 rounding per named operation, via numpy float32 scalars / vectors):
- q . k, the tile sums l and o_tile are formed in float64 (numpy dot / sequential adds / math.fsum:
  bf16 and bf16 x fp32 products are exact in float64) and rounded once to fp32. The golden forms
  them in float64 too, in another order, so the two agree except where a float64 sum lies within
  ~1e-16 relative of an fp32 rounding midpoint.
- exp is float64 math.exp of the fp32 argument, rounded once to fp32 (correctly rounded up to a
  double rounding); the golden uses torch's fp32 exp (within ~1 ulp), so e_j may differ by an ulp
  and a P element next to a bf16 rounding boundary may round the other way. The two are therefore
  two fp32 implementations of one recipe, and agree within attention_p1_bound, not bitwise.
- merges: a * L, b * l, their sum, a * O, b * o_tile, their sum, L + sigma, O / denom: one fp32
  rounding each (no FMA), as the golden's torch fp32 ops do.
- bf16 rounding of P (rne / rtz / rna) from the definition: the two bf16 neighbours of x, then the
  nearer one, ties to the even significand (rne) or away from zero (rna); rtz takes the one toward
  zero. Not golden.rounding's bias trick, so that one is checked too.

Index semantics (SPEC 2): for token t (batch b = t // S, s = t % S) used = seqused[b] - S + 1 + s,
win_valid = min(W, used), cmp_valid = max(used - win_valid, 0). r is valid iff 0 <= r < win_valid
(window row) or W <= r and r - W < cmp_valid (compressed row); invalid indices are never looked up
(a garbage page id behind one is ignored); a valid index whose block or page is out of range raises
ValueError naming the table. Duplicates count twice. A token with no valid key gives zeros.
"""
from __future__ import annotations

import math
import struct
from typing import Iterable, Optional

import numpy as np
import torch

f32 = np.float32
INF = math.inf
_FP32_EXP_OVERFLOW = 88.8  # exp(x) > fp32 max (3.4028e38) for x > 88.7229


# %% scalar helpers

def _bits(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def _from_bits(b: int) -> float:
    return struct.unpack("<f", struct.pack("<I", b & 0xFFFFFFFF))[0]


def round_bf16(x, mode: str) -> np.float32:
    """Round an fp32 value to bf16 (returned as fp32) under rne / rtz / rna, from the definition."""
    x = float(f32(x))
    if math.isnan(x) or math.isinf(x) or x == 0.0:
        return f32(x)
    toward_zero = _from_bits(_bits(x) & 0xFFFF0000)          # bf16 neighbour toward zero
    if toward_zero == x or mode == "rtz":
        return f32(toward_zero)
    away = _from_bits((_bits(toward_zero) + 0x10000))         # next bf16 magnitude (may be inf)
    # IEEE: past the largest finite bf16, nearest rounding measures against 2^128 (then gives inf)
    away_value = math.copysign(2.0 ** 128, x) if math.isinf(away) else away
    d_lo, d_hi = abs(x - toward_zero), abs(away_value - x)
    if mode not in ("rne", "rna"):
        raise ValueError(f"rounding must be rne, rtz or rna, got {mode!r}")
    if d_lo < d_hi:
        return f32(toward_zero)
    if d_hi < d_lo:
        return f32(away)
    if mode == "rna":  # tie: away from zero
        return f32(away)
    return f32(toward_zero if (_bits(toward_zero) >> 16) & 1 == 0 else away)  # tie: even


def exp32(x) -> np.float32:
    """fp32(exp(x)) for an fp32 x: float64 exp, one rounding to fp32 (inf above the fp32 range)."""
    x = float(x)
    if x == -INF:
        return f32(0.0)
    if x > _FP32_EXP_OVERFLOW:
        return f32(INF)
    return f32(math.exp(x))


# %% index semantics

def _visible(seqused_kv, t: int, S: int, W: int):
    b = t // S
    used = int(seqused_kv[b]) - S + 1 + t % S
    win_valid = min(W, used)
    cmp_valid = max(used - win_valid, 0)
    return b, win_valid, cmp_valid


def token_keys(ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices, seqused_kv, t: int,
               *, window: int, tokens_per_batch: int):
    """[(position, row as float64 numpy [D])] of token t's valid indices, in index order."""
    b, win_valid, cmp_valid = _visible(seqused_kv, t, tokens_per_batch, window)
    BS = ori_kv.shape[1]
    keys = []
    for pos in range(sparse_indices.shape[1]):
        r = int(sparse_indices[t, pos])
        if 0 <= r < win_valid:
            name, pool, table, slot = "ori_block_table", ori_kv, ori_block_table, r
        elif r >= window and r - window < cmp_valid:
            name, pool, table, slot = "cmp_block_table", cmp_kv, cmp_block_table, r - window
        else:
            continue  # invalid: ignored, the page table is never consulted
        block = slot // BS
        if block >= table.shape[1]:
            raise ValueError(f"{name}: token {t} index {r} needs block {block}, "
                             f"the table has {table.shape[1]}")
        page = int(table[b, block])
        if not 0 <= page < pool.shape[0]:
            raise ValueError(f"{name}: page {page} for token {t} index {r} is outside the pool "
                             f"of {pool.shape[0]} pages")
        keys.append((pos, pool[page, slot % BS].double().numpy()))
    return keys


def _tiles(keys, K: int, tile: int, tiling: str):
    """Lists of keys per tile, empty tiles dropped (they contribute nothing)."""
    if tiling == "compacted":
        groups = [keys[i:i + tile] for i in range(0, len(keys), tile)]
    elif tiling == "positional":
        groups = [[k for k in keys if start <= k[0] < start + tile] for start in range(0, K, tile)]
    else:
        raise ValueError(f"tiling must be positional or compacted, got {tiling!r}")
    return [g for g in groups if g]


def _scale(softmax_scale: Optional[float], D: int) -> float:
    return D ** -0.5 if softmax_scale is None else float(softmax_scale)


# %% the tiled recipe

def loop_attention(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices, seqused_kv,
                   attn_sink, *, window, tokens_per_batch, softmax_scale=None, recipe=None,
                   tokens: Optional[Iterable[int]] = None, use_sink: bool = True) -> torch.Tensor:
    """The tiled BF16 recipe, one (token, head, key) at a time. [T, H, D] fp32 (or the rows of
    `tokens` only). `recipe` is any object with tile / tiling / p_dtype / l_from / rounding (an
    AttnRecipe, p_max too); None = SPEC defaults. use_sink=False drops the sink term (o = O / L)."""
    tile = getattr(recipe, "tile", 64)
    tile = max(sparse_indices.shape[1], 1) if tile is None else tile  # untiled: one tile
    tiling = getattr(recipe, "tiling", "positional")
    p_dtype = getattr(recipe, "p_dtype", "bf16")
    l_from = getattr(recipe, "l_from", "rounded")
    rounding = getattr(recipe, "rounding", "rne")
    running = getattr(recipe, "p_max", "tile") == "running"
    T, H, D = q.shape
    K = sparse_indices.shape[1]
    scale32 = f32(_scale(softmax_scale, D))
    token_list = list(range(T)) if tokens is None else list(tokens)
    out = np.zeros((len(token_list), H, D), dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        for i, t in enumerate(token_list):
            keys = token_keys(ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices,
                              seqused_kv, t, window=window, tokens_per_batch=tokens_per_batch)
            if not keys:
                continue  # no valid key: exact zeros
            tiles = _tiles(keys, K, tile, tiling)
            for h in range(H):
                qh = q[t, h].double().numpy()
                M, L, O = f32(-INF), f32(0.0), np.zeros(D, dtype=np.float32)
                for group in tiles:
                    s = [f32(f32(np.dot(qh, row)) * scale32) for _, row in group]
                    m = max(M, max(s)) if running else max(s)  # running: P against max(M, m)
                    e = [exp32(f32(sj - m)) for sj in s]
                    p = [round_bf16(ej, rounding) for ej in e] if p_dtype == "bf16" else list(e)
                    l = f32(math.fsum(p if l_from == "rounded" else e))
                    acc = np.zeros(D, dtype=np.float64)
                    for pj, (_, row) in zip(p, group):
                        acc += float(pj) * row
                    o_tile = acc.astype(np.float32)
                    M_new = max(M, m)
                    a = f32(0.0) if M == -INF else exp32(f32(M - M_new))
                    b = exp32(f32(m - M_new))
                    L = f32(f32(a * L) + f32(b * l))
                    O = (a * O + b * o_tile).astype(np.float32)  # numpy fp32: one rounding per op
                    M = M_new
                sigma = exp32(f32(f32(attn_sink[h]) - M)) if use_sink else f32(0.0)
                denom = f32(L + sigma)
                out[i, h] = O / denom
    return torch.from_numpy(out)


# %% exact counterpart

def loop_attention_fp64(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices,
                        seqused_kv, attn_sink, *, window, tokens_per_batch, softmax_scale=None,
                        tokens: Optional[Iterable[int]] = None, use_sink: bool = True,
                        weights: Optional[dict] = None) -> torch.Tensor:
    """Exact math in float64, one key at a time: o = sum_j w_j e_j k_j / (sum_j w_j e_j + e^{sink-M}),
    e_j = exp(s_j - M), M = max_j s_j. w_j = 1 for every valid index unless `weights` maps
    (token, position) -> weight (to state a duplicate's double weight explicitly)."""
    T, H, D = q.shape
    scale = _scale(softmax_scale, D)
    token_list = list(range(T)) if tokens is None else list(tokens)
    out = np.zeros((len(token_list), H, D), dtype=np.float64)
    for i, t in enumerate(token_list):
        keys = token_keys(ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices,
                          seqused_kv, t, window=window, tokens_per_batch=tokens_per_batch)
        if not keys:
            continue
        w = [1.0 if weights is None else float(weights.get((t, pos), 1.0)) for pos, _ in keys]
        for h in range(H):
            qh = q[t, h].double().numpy()
            s = [scale * math.fsum(qh * row) for _, row in keys]
            M = max(s)
            e = [wj * math.exp(sj - M) for wj, sj in zip(w, s)]
            sink = float(attn_sink[h])
            sigma = 0.0 if not use_sink or sink == -INF else (INF if sink - M > 709 else math.exp(sink - M))
            num = np.zeros(D, dtype=np.float64)
            for ej, (_, row) in zip(e, keys):
                num += ej * row
            out[i, h] = num / (math.fsum(e) + sigma)
    return torch.from_numpy(out)
