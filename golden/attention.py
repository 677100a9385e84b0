"""Golden references for sparse decode attention (SPEC section 2), vectorized over tokens and heads.

Three references, same arguments as the kernel (SPEC section 6):
- `sparse_attention_fp64`: the exact math in float64, no tiling, no rounding of P.
- `sparse_attention_golden`: the tiled online softmax of a kernel, every recipe field honoured.
  Each fp32 step is modelled as one correctly rounded fp32 operation: dot products and tile sums
  are formed in float64 (exact or nearly so for bf16 operands) and rounded once to fp32.
- `sparse_attention_fp32_full`: the textbook fp32 softmax (no tiles, no BF16 P), kept to show how
  far a golden that ignores the kernel's roundings sits from it.
Only the loop over tiles is in Python; everything inside is batched over [T, H, tile].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from kernelprop.golden.attention_inputs import AttnRecipe
from kernelprop.golden.rounding import round_to_bf16


@dataclass(frozen=True)
class GatheredKV:
    """The rows each token's indices name, with their validity."""

    rows: torch.Tensor   # [T, K, D] bf16 rows (zeros where invalid)
    valid: torch.Tensor  # [T, K] bool


def _check_shapes(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices,
                  seqused_kv, attn_sink, window, tokens_per_batch) -> None:
    if q.dim() != 3:
        raise ValueError(f"q must be [T, H, D], got shape {tuple(q.shape)}")
    T, H, D = q.shape
    if not isinstance(tokens_per_batch, int) or tokens_per_batch < 1 or T % tokens_per_batch:
        raise ValueError(f"tokens_per_batch must be a positive int dividing T={T}, got {tokens_per_batch!r}")
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive int, got {window!r}")
    B = T // tokens_per_batch
    for name, pool in (("ori_kv", ori_kv), ("cmp_kv", cmp_kv)):
        if pool.dim() != 3 or pool.shape[2] != D:
            raise ValueError(f"{name} must be [N, BS, D={D}], got shape {tuple(pool.shape)}")
    if ori_kv.shape[1] != cmp_kv.shape[1]:
        raise ValueError(f"cmp_kv page size {cmp_kv.shape[1]} differs from ori_kv's {ori_kv.shape[1]}")
    for name, table in (("ori_block_table", ori_block_table), ("cmp_block_table", cmp_block_table)):
        if table.dim() != 2 or table.shape[0] != B:
            raise ValueError(f"{name} must be [B={B}, blocks], got shape {tuple(table.shape)}")
    if sparse_indices.dim() != 2 or sparse_indices.shape[0] != T:
        raise ValueError(f"sparse_indices must be [T={T}, K], got shape {tuple(sparse_indices.shape)}")
    if tuple(seqused_kv.shape) != (B,):
        raise ValueError(f"seqused_kv must be [B={B}], got shape {tuple(seqused_kv.shape)}")
    if tuple(attn_sink.shape) != (H,):
        raise ValueError(f"attn_sink must be [H={H}], got shape {tuple(attn_sink.shape)}")


def visible_lengths(seqused_kv: torch.Tensor, T: int, tokens_per_batch: int, window: int):
    """Per token: (batch id [T], win_valid [T], cmp_valid [T]) as in SPEC section 2."""
    token = torch.arange(T, device=seqused_kv.device)
    batch = token // tokens_per_batch
    used = seqused_kv.long()[batch] - tokens_per_batch + 1 + token % tokens_per_batch
    win_valid = torch.clamp(used, max=window)
    cmp_valid = torch.clamp(used - win_valid, min=0)
    return batch, win_valid, cmp_valid


def index_masks(sparse_indices, seqused_kv, *, window, tokens_per_batch):
    """Per token: (batch id [T], in_window [T, K], in_cmp [T, K]): which indices name a visible
    window slot and which a visible compressed slot (SPEC section 2)."""
    T = sparse_indices.shape[0]
    batch, win_valid, cmp_valid = visible_lengths(seqused_kv, T, tokens_per_batch, window)
    r = sparse_indices.long()
    in_window = (r >= 0) & (r < win_valid[:, None])
    in_cmp = (r >= window) & (r - window < cmp_valid[:, None])
    return batch, in_window, in_cmp


def valid_index_mask(sparse_indices, seqused_kv, *, window, tokens_per_batch) -> torch.Tensor:
    """[T, K] bool: which indices are valid for their token (SPEC section 2)."""
    _, in_window, in_cmp = index_masks(sparse_indices, seqused_kv, window=window,
                                       tokens_per_batch=tokens_per_batch)
    return in_window | in_cmp


def gather_kv(ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices, seqused_kv, *,
              window, tokens_per_batch) -> GatheredKV:
    """Gather every token's key rows; a valid index naming a page outside its pool raises."""
    T, K = sparse_indices.shape
    BS, D = ori_kv.shape[1], ori_kv.shape[2]
    batch, in_window, in_cmp = index_masks(sparse_indices, seqused_kv, window=window,
                                           tokens_per_batch=tokens_per_batch)
    r = sparse_indices.long()
    # per pool, only the named rows are read (pool[page, row]): a pool is never copied whole
    rows = torch.zeros(T, K, D, dtype=ori_kv.dtype, device=ori_kv.device)
    for name, pool, table, mask, slot in (
        ("ori_block_table", ori_kv, ori_block_table, in_window, r),
        ("cmp_block_table", cmp_kv, cmp_block_table, in_cmp, r - window),
    ):
        block = torch.where(mask, slot // BS, 0)
        if bool((block >= table.shape[1]).any()):
            t, k = (block >= table.shape[1]).nonzero()[0].tolist()
            raise ValueError(f"{name} has {table.shape[1]} blocks per batch but token {t} index "
                             f"{int(r[t, k])} needs block {int(block[t, k])}")
        page = table.long()[batch[:, None].expand(T, K), block]
        bad = mask & ((page < 0) | (page >= pool.shape[0]))
        if bool(bad.any()):
            t, k = bad.nonzero()[0].tolist()
            raise ValueError(f"{name} names page {int(page[t, k])} for token {t} index {int(r[t, k])}, "
                             f"outside the pool of {pool.shape[0]} pages")
        rows[mask] = pool[page[mask], slot[mask] % BS].to(rows.dtype)
    return GatheredKV(rows=rows, valid=in_window | in_cmp)


def softmax_scale_for(softmax_scale: Optional[float], D: int) -> float:
    scale = D ** -0.5 if softmax_scale is None else float(softmax_scale)
    if not (scale > 0 and scale != float("inf")):
        raise ValueError(f"softmax_scale must be a finite positive float, got {softmax_scale!r}")
    return scale


def fp32_scores(q: torch.Tensor, rows: torch.Tensor, scale: float) -> torch.Tensor:
    """s = fp32(fp32(q . k) * fp32(scale)); the dot is formed in fp64 (exact for bf16 operands
    up to D ~ 2^20 when exponents are moderate) and rounded once. [T, H, K] fp32."""
    dots = torch.einsum("thd,tkd->thk", q.double(), rows.double()).float()  # no copy if fp64
    return dots * torch.tensor(scale, dtype=torch.float32, device=q.device)


def _untiled_softmax(dtype, q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices,
                     seqused_kv, attn_sink, *, window, tokens_per_batch, softmax_scale):
    """o = sum_j exp(s_j - M) k_j / (sum_j exp(s_j - M) + exp(sink - M)) over all valid rows at
    once, every step in `dtype`, P never rounded. [T, H, D]; tokens with no valid key give zeros."""
    _check_shapes(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices,
                  seqused_kv, attn_sink, window, tokens_per_batch)
    kv = gather_kv(ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices, seqused_kv,
                   window=window, tokens_per_batch=tokens_per_batch)
    scale = softmax_scale_for(softmax_scale, q.shape[2])
    rows = kv.rows.to(dtype)                                            # [T, K, D]
    if rows.shape[1] == 0:
        return torch.zeros(q.shape, dtype=dtype, device=q.device)
    s = torch.einsum("thd,tkd->thk", q.to(dtype), rows) * scale         # [T, H, K]
    valid = kv.valid[:, None, :]                                        # [T, 1, K]
    s = torch.where(valid, s, -torch.inf)
    has = valid.any(-1, keepdim=True)
    M = torch.where(has, s.amax(-1, keepdim=True), 0.0)                 # [T, H, 1]
    e = torch.where(valid, torch.exp(s - M), 0.0)                       # [T, H, K]
    sink = torch.exp(attn_sink.to(dtype)[None, :, None] - M)            # [T, H, 1]
    o = torch.einsum("thk,tkd->thd", e, rows) / (e.sum(-1, keepdim=True) + sink)
    return torch.where(has, o, 0.0)


def _untiled_golden(dtype: torch.dtype, name: str, summary: str):
    """The golden `name`: the kernel's signature, `_untiled_softmax` in `dtype`."""
    def golden(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices, seqused_kv,
               attn_sink, *, window, tokens_per_batch, softmax_scale=None) -> torch.Tensor:
        return _untiled_softmax(dtype, q, ori_kv, ori_block_table, cmp_kv, cmp_block_table,
                                sparse_indices, seqused_kv, attn_sink, window=window,
                                tokens_per_batch=tokens_per_batch, softmax_scale=softmax_scale)
    golden.__name__ = golden.__qualname__ = name  # reports and pickle find it under this name
    golden.__doc__ = summary
    return golden


sparse_attention_fp64 = _untiled_golden(
    torch.float64, "sparse_attention_fp64",
    "Exact-math truth in float64, no tiling, no rounding of P. [T, H, D] float64.")
sparse_attention_fp32_full = _untiled_golden(
    torch.float32, "sparse_attention_fp32_full",
    "Textbook fp32 softmax over all valid rows at once, P never rounded. [T, H, D] fp32.")


@dataclass(frozen=True)
class TiledTrace:
    """What the tiled golden computed, for error bounds: everything per (t, h) or (t, h, j).

    Positions j are in tiling order (index order for positional tiling, compacted order otherwise;
    with split-KV the split layout of `split_layout`: split i in columns [i P, (i + 1) P), its
    keys first, P a multiple of the tile, so column blocks of `tile` are the kernel's tiles).
    M, L and denom are on one common scale: without split M is the running max and L the running
    denominator; with split-KV M is X = max lse_i and L = sum_i exp(lse_i - X) (the merge's
    denominator without the sink), so that in both o = sum_j w_j p_j k_j / (L + exp(sink - M)) in
    exact arithmetic, w_j = exp(tile_max_j - M) (docs/bounds.md#split-kv).
    """

    o: torch.Tensor            # [T, H, D] fp32 output
    rows: torch.Tensor         # [T, K, D] bf16 key rows in tiling order (zeros where invalid)
    valid: torch.Tensor        # [T, K] bool, tiling order
    scores: torch.Tensor       # [T, H, K] fp32 scores (meaningless where invalid)
    e: torch.Tensor            # [T, H, K] fp32 exp(s_j - tile_max_j) (0 where invalid)
    p: torch.Tensor            # [T, H, K] fp32 P as used in P.V (rounded or not; 0 where invalid)
    tile_max: torch.Tensor     # [T, H, K] fp32 the max j's exp is taken against: its tile's max
                               # score (p_max "tile") or the running max after its tile ("running")
    M: torch.Tensor            # [T, H] fp32 final running max, or X with split (-inf: no valid key)
    L: torch.Tensor            # [T, H] fp32 final denominator without the sink, on M's scale
    denom: torch.Tensor        # [T, H] fp32 L + exp(sink - M)
    tiles_used: torch.Tensor   # [T, H] int64 number of non-empty tiles merged
    tile: int                  # rows per tile as run: min(recipe tile, K), K when untiled
    split_max: Optional[torch.Tensor] = None  # [T, H, n] fp32 M_i per split (-inf: empty split)
    split_L: Optional[torch.Tensor] = None    # [T, H, n] fp32 L_i per split (0: empty split)
    lse: Optional[torch.Tensor] = None        # [T, H, n] fp32 M_i + log(L_i) (-inf: empty split)


def tiling_order(valid: torch.Tensor, tiling: str):
    """Permutation [T, K] that puts positions in tiling order, and validity in that order."""
    T, K = valid.shape
    if tiling == "positional":
        order = torch.arange(K, device=valid.device).expand(T, K)
        return order, valid
    order = torch.sort((~valid).to(torch.int8), dim=1, stable=True).indices
    return order, torch.gather(valid, 1, order)


@dataclass(frozen=True)
class SplitLayout:
    """Where split-KV puts each valid key: column i P + r holds key r of split i."""

    source: torch.Tensor  # [T, C] index position of each column's key (0 where invalid)
    valid: torch.Tensor   # [T, C] bool
    split_cols: int       # P: columns per split (a multiple of `tile`)
    splits: int           # n: splits laid out (the most any token fills)
    tile: int             # rows per tile in effect (untiled: the longest split)


def split_layout(valid: torch.Tensor, recipe: AttnRecipe) -> SplitLayout:
    """The split-KV layout of `valid` [T, K] (AttnRecipe.kv_splits): each token's valid keys in
    index order, split i holding keys [i l, min((i + 1) l, n)) of its n, l = recipe.split_len(n)."""
    T, K = valid.shape
    dev = valid.device
    order, compact = tiling_order(valid, "compacted")
    n = compact.sum(1)                                                     # [T]
    n_max = int(n.max()) if T else 0
    per = -(-n.clamp(min=1) // recipe.kv_splits)
    length = -(-per // recipe.split_align) * recipe.split_align            # [T] l per token
    longest = recipe.split_len(n_max)
    tile = min(longest if recipe.tile is None else recipe.tile, longest)
    split_cols = -(-longest // tile) * tile
    splits = max(int((-(-n // length)).max()) if T else 1, 1)
    col = torch.arange(splits * split_cols, device=dev)
    i, r = col // split_cols, col % split_cols                             # [C] split, rank
    j = i[None, :] * length[:, None] + r[None, :]                          # [T, C] compacted rank
    ok = (r[None, :] < length[:, None]) & (j < n[:, None])
    source = order.gather(1, j.clamp(max=max(K - 1, 0))) if K else torch.zeros_like(j)
    return SplitLayout(source=torch.where(ok, source, 0), valid=ok, split_cols=split_cols,
                       splits=splits, tile=tile)


@dataclass
class _TileRecord:
    """The per-position intermediates the tile loop fills in ([T, H, K] each)."""

    e: torch.Tensor
    p: torch.Tensor
    tile_max: torch.Tensor
    tiles_used: torch.Tensor   # [T, H]


def _online_softmax(scores, rows64, valid, recipe: AttnRecipe, tile: int, start: int, stop: int,
                    record: _TileRecord):
    """The tiled online softmax of SPEC section 2 over columns [start, stop), tiles of `tile`
    from `start`: (M, L, O) [T, H], [T, H], [T, H, D] fp32; fills `record` for those columns."""
    T, H = scores.shape[:2]
    D = rows64.shape[-1]
    dev = scores.device
    M = torch.full((T, H), -torch.inf, device=dev)
    L = torch.zeros(T, H, device=dev)
    O = torch.zeros(T, H, D, device=dev)
    for first in range(start, stop, tile):
        cols = slice(first, min(first + tile, stop))
        lane_ok = valid[:, None, cols]                                   # [T, 1, n]
        s = torch.where(lane_ok, scores[:, :, cols], -torch.inf)         # [T, H, n]
        m = s.amax(-1)                                                   # [T, H]
        has = lane_ok.any(-1).expand(T, H)                               # [T, H]
        m_safe = torch.where(has, m, 0.0)
        M_new = torch.where(has, torch.maximum(M, m_safe), M)
        if recipe.p_max == "running":  # P against the running max: b = 1
            m = torch.where(has, M_new, m)
            m_safe = torch.where(has, M_new, 0.0)
        e = torch.where(lane_ok, torch.exp(s - m_safe[..., None]), 0.0)  # [T, H, n] fp32
        p = round_to_bf16(e, recipe.rounding) if recipe.p_dtype == "bf16" else e
        summed = p if recipe.l_from == "rounded" else e
        l = summed.double().sum(-1).float()                              # one rounding
        o_tile = torch.einsum("thn,tnd->thd", p.double(), rows64[:, cols]).float()
        a = torch.where(M == -torch.inf, 0.0, torch.exp(M - M_new))      # [T, H]
        b = torch.exp(m_safe - M_new)
        L = torch.where(has, a * L + b * l, L)
        O = torch.where(has[..., None], a[..., None] * O + b[..., None] * o_tile, O)
        M = M_new
        record.tiles_used += has.long()
        record.e[:, :, cols], record.p[:, :, cols] = e, p
        record.tile_max[:, :, cols] = torch.where(lane_ok, m[..., None], -torch.inf)
    return M, L, O


def _new_record(T: int, H: int, K: int, dev) -> _TileRecord:
    return _TileRecord(e=torch.zeros(T, H, K, device=dev), p=torch.zeros(T, H, K, device=dev),
                       tile_max=torch.full((T, H, K), -torch.inf, device=dev),
                       tiles_used=torch.zeros(T, H, dtype=torch.int64, device=dev))


def _split_merge(parts, attn_sink):
    """Stage 2 of split-KV: per split i the partial o_i = O_i / L_i and lse_i = M_i + log(L_i)
    (fp32, one rounding each); X = max lse_i over non-empty splits, w_i = exp(lse_i - X),
    o = (sum_i w_i o_i) / (sum_i w_i + exp(sink - X)), the sums formed in fp64 and rounded once.
    Empty splits (M_i = -inf) contribute nothing. Returns (o, X, sum_i w_i, denom, split M, split
    L, lse)."""
    M_s = torch.stack([m for m, _, _ in parts], -1)                      # [T, H, n]
    L_s = torch.stack([l for _, l, _ in parts], -1)                      # [T, H, n]
    O_s = torch.stack([o for _, _, o in parts], -2)                      # [T, H, n, D]
    live = M_s > -torch.inf
    L_safe = torch.where(live, L_s, 1.0)
    o_s = torch.where(live[..., None], O_s / L_safe[..., None], 0.0)     # fp32 division
    lse = torch.where(live, M_s + torch.log(L_safe), -torch.inf)         # fp32 log, fp32 add
    X = lse.amax(-1)                                                     # [T, H]
    any_live = X > -torch.inf
    X_safe = torch.where(any_live, X, 0.0)
    w = torch.where(live, torch.exp(lse - X_safe[..., None]), 0.0)      # fp32 exp
    acc = torch.einsum("thn,thnd->thd", w.double(), o_s.double()).float()
    w_sum = w.double().sum(-1).float()
    denom = w_sum + torch.exp(attn_sink.float()[None, :] - X_safe)
    o = torch.where(any_live[..., None], acc / denom[..., None], 0.0)
    return o, X, w_sum, denom, M_s, L_s, lse


def sparse_attention_trace(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices,
                           seqused_kv, attn_sink, *, window, tokens_per_batch, softmax_scale=None,
                           recipe: AttnRecipe = AttnRecipe()) -> TiledTrace:
    """The tiled BF16 golden of SPEC section 2 with its intermediates (see `TiledTrace`);
    split-KV (recipe.kv_splits) as AttnRecipe documents it."""
    if not isinstance(recipe, AttnRecipe):
        raise TypeError(f"recipe must be an AttnRecipe, got {type(recipe).__name__}")
    _check_shapes(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices,
                  seqused_kv, attn_sink, window, tokens_per_batch)
    kv = gather_kv(ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices, seqused_kv,
                   window=window, tokens_per_batch=tokens_per_batch)
    T, H, D = q.shape
    K = sparse_indices.shape[1]
    if recipe.kv_splits is not None:
        return _split_trace(q, kv, attn_sink, softmax_scale_for(softmax_scale, D), recipe)
    order, valid = tiling_order(kv.valid, recipe.tiling)
    rows = kv.rows if recipe.tiling == "positional" else \
        torch.gather(kv.rows, 1, order[..., None].expand(T, K, D))      # [T, K, D]
    rows64 = rows.double()
    scores = fp32_scores(q, rows64, softmax_scale_for(softmax_scale, D))            # [T, H, K]
    record = _new_record(T, H, K, q.device)
    tile = recipe.tile_for(K)  # untiled (None): one tile of all K positions; never longer than K
    M, L, O = _online_softmax(scores, rows64, valid, recipe, tile, 0, K, record)
    any_valid = M > -torch.inf
    M_safe = torch.where(any_valid, M, 0.0)
    denom = L + torch.exp(attn_sink.float()[None, :] - M_safe)
    o = torch.where(any_valid[..., None], O / denom[..., None], 0.0)
    return TiledTrace(o=o, rows=rows, valid=valid, scores=scores, e=record.e, p=record.p,
                      tile_max=record.tile_max, M=M, L=L, denom=denom,
                      tiles_used=record.tiles_used, tile=tile)


def _split_trace(q, kv: GatheredKV, attn_sink, scale: float, recipe: AttnRecipe) -> TiledTrace:
    """The split-KV golden: each split's tiled softmax (`_online_softmax` over its columns of
    `split_layout`), then `_split_merge`."""
    T, H, D = q.shape
    layout = split_layout(kv.valid, recipe)
    C = layout.splits * layout.split_cols
    rows = torch.where(layout.valid[..., None],
                       kv.rows.gather(1, layout.source[..., None].expand(T, C, D)), 0.0) \
        if kv.rows.shape[1] else torch.zeros(T, C, D, dtype=kv.rows.dtype, device=q.device)
    rows64 = rows.double()
    scores = fp32_scores(q, rows64, scale)                               # [T, H, C]
    record = _new_record(T, H, C, q.device)
    parts = [_online_softmax(scores, rows64, layout.valid, recipe, layout.tile,
                             i * layout.split_cols, (i + 1) * layout.split_cols, record)
             for i in range(layout.splits)]
    o, X, w_sum, denom, M_s, L_s, lse = _split_merge(parts, attn_sink)
    return TiledTrace(o=o, rows=rows, valid=layout.valid, scores=scores, e=record.e, p=record.p,
                      tile_max=record.tile_max, M=X, L=w_sum, denom=denom,
                      tiles_used=record.tiles_used, tile=layout.tile, split_max=M_s,
                      split_L=L_s, lse=lse)


def sparse_attention_golden(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices,
                            seqused_kv, attn_sink, *, window, tokens_per_batch, softmax_scale=None,
                            recipe: AttnRecipe = AttnRecipe()) -> torch.Tensor:
    """The tiled BF16 golden of SPEC section 2: [T, H, D] fp32 (bf16 for out_dtype "bf16": the
    nearest-even rounding of the fp32 o), mirroring `recipe`."""
    o = sparse_attention_trace(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table,
                               sparse_indices, seqused_kv, attn_sink, window=window,
                               tokens_per_batch=tokens_per_batch, softmax_scale=softmax_scale,
                               recipe=recipe).o
    return o.to(torch.bfloat16) if recipe.out_dtype == "bf16" else o
