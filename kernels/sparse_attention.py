"""Sparse decode attention (SPEC section 2): paged MQA-latent gather + tiled online softmax + sink.

Math, for token t (batch b = t // S, position s = t % S) and head h, with the valid key rows
k_1..k_n of sparse_indices[t] taken in index order (keys and values are the same row):

    s_j     = fp32(q . k_j) * c                          c = fp32(softmax_scale), default D**-0.5
    per tile:  m = max s_j,  e_j = exp(s_j - m),  p_j = round_bf16(e_j)   (p_dtype "bf16")
               l = sum p_j (l_from "rounded") or sum e_j ("unrounded"),  o_tile = sum p_j k_j
    merge:     M' = max(M, m), a = exp(M - M'), b = exp(m - M'), L = a L + b l, O = a O + b o_tile
    o = O / (L + exp(sink_h - M))                        zeros if the token has no valid row

Tiling is positional: tile i covers positions [i * tile, (i + 1) * tile) of sparse_indices[t];
invalid lanes are masked, and a tile with no valid lane is skipped (it leaves M, L, O bitwise
unchanged; no exp(-inf + inf) is formed). "compacted" tiling is golden-only (NotImplementedError).

Interpreter notes (triton 3.6.0, TRITON_INTERPRET=1): tl.dot on bf16 operands multiplies the raw
uint16 bit patterns, so on the interpreter both dots run on exact fp32 upcasts (BF16_DOT=False);
the interpreter's fp32 -> bf16 cast truncates, so P is rounded by bit arithmetic (kernels._bf16).
"""
import math
import numbers

import torch
import triton
import triton.language as tl

from golden.recipes import AttnRecipe
from kernels._bf16 import ROUNDING_CODE, _round_to_bf16
from kernels._checks import check_device, check_last_stride, check_tensor, interpreted


# %% kernel

@triton.jit
def _gather_rows(
    pos,               # [BLOCK_N] int64: index positions of the lanes within sparse_indices[t]
    lane_on,           # [BLOCK_N] bool: lane lies inside the current tile and inside [0, K)
    idx_row_ptr,       # pointer to sparse_indices[t, 0]
    stride_idx_k,      # sparse_indices stride along K
    ori_kv_ptr,        # window pool [N_ori, BS, D] bf16
    stride_ori_page,   # ori_kv stride between pages
    stride_ori_row,    # ori_kv stride between rows of a page (last dim is contiguous)
    cmp_kv_ptr,        # compressed pool [N_cmp, BS, D] bf16
    stride_cmp_page,   # cmp_kv stride between pages
    stride_cmp_row,    # cmp_kv stride between rows of a page
    ori_tab_row_ptr,   # pointer to ori_block_table[b, 0]
    stride_ori_tab,    # ori_block_table stride along its columns
    cmp_tab_row_ptr,   # pointer to cmp_block_table[b, 0]
    stride_cmp_tab,    # cmp_block_table stride along its columns
    win_valid,         # int64 scalar: window slots [0, win_valid) are visible
    cmp_valid,         # int64 scalar: compressed slots [0, cmp_valid) are visible
    W,                 # window size: index W + j is compressed slot j
    BS,                # rows per page
    N_ORI,             # pages in ori_kv
    N_CMP,             # pages in cmp_kv
    ORI_WIDTH,         # columns of ori_block_table
    CMP_WIDTH,         # columns of cmp_block_table
    offs_d,            # [BLOCK_D] column offsets
    d_mask,            # [BLOCK_D] bool: column < D
):
    """Key rows of one lane block: ([BLOCK_N, BLOCK_D] bf16, zero where invalid; [BLOCK_N] valid).

    A lane is valid iff its index is visible (SPEC 2) and its table column and page id are in
    range; every other lane is masked on every load, so no memory outside the pools is touched.
    Index arithmetic is int64: no int32 overflow, and the interpreter's per-op int32 overflow
    sanitizer (several extra numpy ops per add) is skipped for 64-bit integers.
    """
    idx = tl.load(idx_row_ptr + pos * stride_idx_k, mask=lane_on, other=-1).to(tl.int64)
    slot_cmp = idx - W
    is_win = (idx >= 0) & (idx < win_valid)
    is_cmp = (slot_cmp >= 0) & (slot_cmp < cmp_valid)
    slot = tl.where(is_win, idx, slot_cmp)                     # row number inside its cache
    blk = slot // BS                                           # column of its block table
    row = slot % BS                                            # row inside the page
    blk_ok = (is_win | is_cmp) & (blk < tl.where(is_win, ORI_WIDTH, CMP_WIDTH))
    tab_ptr = tl.where(is_win, ori_tab_row_ptr + blk * stride_ori_tab, cmp_tab_row_ptr + blk * stride_cmp_tab)
    page = tl.load(tab_ptr, mask=blk_ok, other=-1).to(tl.int64)
    valid = blk_ok & (page >= 0) & (page < tl.where(is_win, N_ORI, N_CMP))
    row_ptr = tl.where(is_win,
                       ori_kv_ptr + page * stride_ori_page + row * stride_ori_row,
                       cmp_kv_ptr + page * stride_cmp_page + row * stride_cmp_row)
    k = tl.load(row_ptr[:, None] + offs_d[None, :], mask=valid[:, None] & d_mask[None, :], other=0.0)
    return k, valid


@triton.jit
def _sparse_decode_attn_kernel(
    q_ptr,             # q [T, H, D] bf16
    stride_qt,         # q stride between tokens
    stride_qh,         # q stride between heads (last dim is contiguous)
    ori_kv_ptr,        # window pool [N_ori, BS, D] bf16
    stride_ori_page,   # ori_kv stride between pages
    stride_ori_row,    # ori_kv stride between rows of a page
    cmp_kv_ptr,        # compressed pool [N_cmp, BS, D] bf16
    stride_cmp_page,   # cmp_kv stride between pages
    stride_cmp_row,    # cmp_kv stride between rows of a page
    ori_tab_ptr,       # ori_block_table [B, ORI_WIDTH] int32
    stride_ori_tab_b,  # ori_block_table stride between batches
    stride_ori_tab_j,  # ori_block_table stride between columns
    cmp_tab_ptr,       # cmp_block_table [B, CMP_WIDTH] int32
    stride_cmp_tab_b,  # cmp_block_table stride between batches
    stride_cmp_tab_j,  # cmp_block_table stride between columns
    idx_ptr,           # sparse_indices [T, K] int32
    stride_idx_t,      # sparse_indices stride between tokens
    stride_idx_k,      # sparse_indices stride along K
    seqused_ptr,       # seqused_kv [B] int32
    stride_seqused,    # seqused_kv stride
    sink_ptr,          # attn_sink [H] fp32
    stride_sink,       # attn_sink stride
    o_ptr,             # output o [T, H, D] fp32 (written in full, zeros included)
    stride_ot,         # o stride between tokens
    stride_oh,         # o stride between heads
    H,                 # heads
    D,                 # head dim (<= BLOCK_D)
    K,                 # indices per token
    S,                 # tokens per batch
    W,                 # window size
    BS,                # rows per page
    N_ORI,             # pages in ori_kv
    N_CMP,             # pages in cmp_kv
    ORI_WIDTH,         # columns of ori_block_table
    CMP_WIDTH,         # columns of cmp_block_table
    TILE,              # softmax tile (index positions per tile), 1 <= TILE <= K
    scale,             # fp32 softmax scale
    BLOCK_H: tl.constexpr,     # heads per program (>= 16 for tl.dot; heads >= H masked)
    BLOCK_D: tl.constexpr,     # next power of two >= max(D, 16); columns >= D masked
    BLOCK_N: tl.constexpr,     # lanes per gathered block (power of two >= 16)
    TWO_PASS: tl.constexpr,    # TILE > BLOCK_N: a first pass over the tile's lane blocks finds m
    P_BF16: tl.constexpr,      # recipe.p_dtype == "bf16"
    L_ROUNDED: tl.constexpr,   # recipe.l_from == "rounded"
    ROUND_MODE: tl.constexpr,  # recipe.rounding code (kernels._bf16.ROUNDING_CODE)
    BF16_DOT: tl.constexpr,    # tl.dot on bf16 operands (False on the interpreter, see config)
):
    """One program per (token t, block of BLOCK_H heads): o[t, heads] for the module's math.

    Rounding points: q and k load as bf16; scores = fp32 dot (fp32 accumulation) times the fp32
    scale; exp, m, l, M, L, O in fp32; P rounded to bf16 by bit arithmetic (P_BF16) before the
    P.V dot (fp32 accumulation; p_dtype fp32: an IEEE fp32 dot, no TF32); o stored in fp32.
    Every gathered row is loaded once per lane block and shared by the BLOCK_H heads through
    two tl.dot: [BLOCK_H, BLOCK_D] x [BLOCK_D, BLOCK_N] and [BLOCK_H, BLOCK_N] x [BLOCK_N, BLOCK_D].
    A tile is one lane block unless TWO_PASS; then its rows are gathered twice (tile max first)
    and l, o_tile are sums of per-block partials.
    An empty tile (no valid lane) is skipped arithmetically: m = -inf gives e = 0, l = 0,
    o_tile = 0, beta = 0 and alpha = 1 (or 0 while M = -inf), so M, L, O stay bitwise unchanged
    and no exp(-inf + inf) is ever formed.
    """
    NEG_INF: tl.constexpr = float("-inf")
    t = tl.program_id(0).to(tl.int64)
    offs_h = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    h_mask = offs_h < H
    offs_d = tl.arange(0, BLOCK_D)
    d_mask = offs_d < D
    lanes = tl.arange(0, BLOCK_N).to(tl.int64)

    # Visible part of the caches for this token (SPEC 2), in int64.
    b = t // S
    used = tl.load(seqused_ptr + b * stride_seqused).to(tl.int64) - S + 1 + t % S
    win_valid = tl.minimum(used, W)
    cmp_valid = tl.maximum(used - win_valid, 0)

    q = tl.load(q_ptr + t * stride_qt + offs_h[:, None] * stride_qh + offs_d[None, :],
                mask=h_mask[:, None] & d_mask[None, :], other=0.0)
    if not BF16_DOT:
        q = q.to(tl.float32)                                   # exact upcast for the IEEE dot
    idx_row_ptr = idx_ptr + t * stride_idx_t
    ori_tab_row_ptr = ori_tab_ptr + b * stride_ori_tab_b
    cmp_tab_row_ptr = cmp_tab_ptr + b * stride_cmp_tab_b

    M = tl.full([BLOCK_H], NEG_INF, tl.float32)
    L = tl.full([BLOCK_H], 0.0, tl.float32)
    O = tl.full([BLOCK_H, BLOCK_D], 0.0, tl.float32)
    for start in range(0, K, TILE):
        m = tl.full([BLOCK_H], NEG_INF, tl.float32)            # tile max (-inf: empty tile)
        if TWO_PASS:
            for sub in range(0, TILE, BLOCK_N):
                pos = start + sub + lanes
                k, valid = _gather_rows(pos, (sub + lanes < TILE) & (pos < K), idx_row_ptr, stride_idx_k,
                                        ori_kv_ptr, stride_ori_page, stride_ori_row,
                                        cmp_kv_ptr, stride_cmp_page, stride_cmp_row,
                                        ori_tab_row_ptr, stride_ori_tab_j, cmp_tab_row_ptr, stride_cmp_tab_j,
                                        win_valid, cmp_valid, W, BS, N_ORI, N_CMP, ORI_WIDTH, CMP_WIDTH,
                                        offs_d, d_mask)
                if BF16_DOT:
                    s = tl.dot(q, tl.trans(k), out_dtype=tl.float32) * scale
                else:
                    s = tl.dot(q, tl.trans(k.to(tl.float32)), input_precision="ieee", out_dtype=tl.float32) * scale
                m = tl.maximum(m, tl.max(tl.where(valid[None, :], s, NEG_INF), axis=1))
        l = tl.full([BLOCK_H], 0.0, tl.float32)
        o_tile = tl.full([BLOCK_H, BLOCK_D], 0.0, tl.float32)
        for sub in range(0, TILE, BLOCK_N):                    # one lane block unless TWO_PASS
            pos = start + sub + lanes
            k, valid = _gather_rows(pos, (sub + lanes < TILE) & (pos < K), idx_row_ptr, stride_idx_k,
                                    ori_kv_ptr, stride_ori_page, stride_ori_row,
                                    cmp_kv_ptr, stride_cmp_page, stride_cmp_row,
                                    ori_tab_row_ptr, stride_ori_tab_j, cmp_tab_row_ptr, stride_cmp_tab_j,
                                    win_valid, cmp_valid, W, BS, N_ORI, N_CMP, ORI_WIDTH, CMP_WIDTH,
                                    offs_d, d_mask)
            if not BF16_DOT:
                k = k.to(tl.float32)                           # exact upcast for the IEEE dots
            # s_j = fp32(q . k_j) * c; invalid lanes -inf
            if BF16_DOT:
                s = tl.dot(q, tl.trans(k), out_dtype=tl.float32) * scale
            else:
                s = tl.dot(q, tl.trans(k), input_precision="ieee", out_dtype=tl.float32) * scale
            s = tl.where(valid[None, :], s, NEG_INF)
            if not TWO_PASS:
                m = tl.max(s, axis=1)
            e = tl.exp(s - tl.where(m > NEG_INF, m, 0.0)[:, None])   # fp32; 0 on invalid lanes
            if P_BF16:
                p = _round_to_bf16(e, ROUND_MODE)              # bf16 values held in fp32
                if L_ROUNDED:
                    l += tl.sum(p, axis=1)
                else:
                    l += tl.sum(e, axis=1)
            else:
                p = e
                l += tl.sum(e, axis=1)
            if P_BF16 and BF16_DOT:
                # bf16 x bf16 P.V; the cast is exact: p is bf16-representable
                o_tile = tl.dot(p.to(tl.bfloat16), k, o_tile, out_dtype=tl.float32)
            else:
                # IEEE fp32 P.V (p_dtype fp32, or any P on the interpreter); never TF32
                o_tile = tl.dot(p, k.to(tl.float32), o_tile, input_precision="ieee", out_dtype=tl.float32)
        # merge: M' = max(M, m), a = exp(M - M'), b = exp(m - M')
        M_new = tl.maximum(M, m)
        M_ref = tl.where(M_new > NEG_INF, M_new, 0.0)
        alpha = tl.exp(M - M_ref)
        beta = tl.exp(m - M_ref)
        L = alpha * L + beta * l
        O = alpha[:, None] * O + beta[:, None] * o_tile
        M = M_new

    # o = O / (L + exp(sink - M)); the sink never enters M. No valid row (M = -inf): zeros.
    sink = tl.load(sink_ptr + offs_h * stride_sink, mask=h_mask, other=NEG_INF)
    has_rows = M > NEG_INF
    denom = L + tl.exp(sink - tl.where(has_rows, M, 0.0))     # +inf sink: denom inf, o = 0
    denom = tl.where(has_rows, denom, 1.0)                     # no rows: no 0/0 (output is 0)
    out = tl.where(has_rows[:, None], tl.math.div_rn(O, denom[:, None]), 0.0)   # IEEE division
    tl.store(o_ptr + t * stride_ot + offs_h[:, None] * stride_oh + offs_d[None, :], out,
             mask=h_mask[:, None] & d_mask[None, :])


# %% launch configuration
# BLOCK_D: next power of two >= max(D, 16) (tl.dot needs every dim >= 16).
# BLOCK_H: as many heads as share one gathered tile, capped so the fp32 accumulator
#   BLOCK_H * BLOCK_D stays <= 8192 (32 KiB: 32 registers a thread at 8 warps), at least 16
#   (tl.dot), at most 64. D=512 -> 16, D=64 -> 64 (H >= 64).
# BLOCK_N: next power of two >= max(tile, 16), capped so a bf16 K block BLOCK_N * BLOCK_D stays
#   <= 32768 elements (64 KiB of shared memory for the dot operand) and <= 128 lanes; a larger
#   tile takes the TWO_PASS path. The interpreter uses the same choice so that it runs the GPU's
#   code path (a fixed rule, no autotuning: the interpreter would time nothing useful).
# num_warps: 4 for BLOCK_D <= 128, else 8 (more columns per dot).
# BF16_DOT: False on the interpreter. Triton 3.6.0's interpreter stores bf16 as uint16 and its
#   create_dot calls np.matmul on those raw bits (garbage like 1e10); the fp32 "ieee" dot of the
#   upcast operands is the same math (bf16 x bf16 products are exact in fp32).
_MAX_ACC = 8192
_MAX_KBLOCK = 32768
_MAX_LANES = 128
_MAX_D_CUDA = 1024  # beyond this the [16, BLOCK_D] operands no longer fit shared memory


def _attn_config(H: int, D: int, tile: int, K: int) -> dict:
    block_d = triton.next_power_of_2(max(D, 16))
    block_h = max(16, min(triton.next_power_of_2(H), 64, _MAX_ACC // block_d))
    tile_eff = min(tile, K)  # a tile longer than K is one tile: same semantics, smaller block
    max_lanes = max(16, min(_MAX_LANES, _MAX_KBLOCK // block_d))
    block_n = min(triton.next_power_of_2(max(tile_eff, 16)), max_lanes)
    return dict(BLOCK_H=block_h, BLOCK_D=block_d, BLOCK_N=block_n, TWO_PASS=tile_eff > block_n,
                num_warps=4 if block_d <= 128 else 8, TILE=tile_eff)


# %% wrapper

def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _fp32_scale(softmax_scale, D: int) -> float:
    """The softmax scale as the fp32 value the kernel multiplies by (default D**-0.5)."""
    if softmax_scale is None:
        softmax_scale = D ** -0.5
    elif isinstance(softmax_scale, bool) or not isinstance(softmax_scale, numbers.Real):
        raise TypeError(f"softmax_scale must be a float or None, got {type(softmax_scale).__name__}")
    scale = float(torch.tensor(float(softmax_scale), dtype=torch.float32))
    if not (math.isfinite(scale) and scale > 0.0):
        raise ValueError(f"softmax_scale must be finite and > 0 in fp32, got {softmax_scale!r}")
    return scale


def _check_pages(sparse_indices, seqused_kv, ori_block_table, cmp_block_table, n_ori, n_cmp,
                 *, window: int, tokens_per_batch: int, page_rows: int) -> None:
    """ValueError if a VALID index needs a block column or a page id outside its table or pool."""
    T, K = sparse_indices.shape
    dev = sparse_indices.device
    t = torch.arange(T, device=dev)
    b = t // tokens_per_batch
    used = seqused_kv.long()[b] - tokens_per_batch + 1 + t % tokens_per_batch          # [T]
    win_valid = torch.minimum(used, torch.full_like(used, window))
    cmp_valid = (used - win_valid).clamp_min(0)
    idx = sparse_indices.long()                                                          # [T, K]
    for name, pool, table, n_pages, is_in, slot in (
        ("ori_block_table", "ori_kv", ori_block_table, n_ori,
         (idx >= 0) & (idx < win_valid[:, None]), idx),
        ("cmp_block_table", "cmp_kv", cmp_block_table, n_cmp,
         (idx >= window) & (idx - window < cmp_valid[:, None]), idx - window),
    ):
        width = table.shape[1]
        blk = torch.where(is_in, slot // page_rows, torch.zeros_like(slot))             # [T, K]
        bad_blk = is_in & (blk >= width)
        if bool(bad_blk.any()):
            tt, kk = (int(v) for v in bad_blk.nonzero()[0])
            raise ValueError(
                f"{name}: token {tt} (batch {tt // tokens_per_batch}) has valid index "
                f"sparse_indices[{tt}, {kk}] = {int(idx[tt, kk])}, which needs block column "
                f"{int(blk[tt, kk])}, but {name} has only {width} columns")
        if width == 0:
            continue
        page = table.long()[b[:, None], blk.clamp_max(width - 1)]                          # [T, K]
        bad_page = is_in & ((page < 0) | (page >= n_pages))
        if bool(bad_page.any()):
            tt, kk = (int(v) for v in bad_page.nonzero()[0])
            bb = tt // tokens_per_batch
            raise ValueError(
                f"{name}[{bb}, {int(blk[tt, kk])}] = {int(page[tt, kk])} is not a page of {pool} "
                f"(expected 0 <= page < {n_pages}); reached by token {tt} through valid index "
                f"sparse_indices[{tt}, {kk}] = {int(idx[tt, kk])}")


def check_attention_args(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices,
                         seqused_kv, attn_sink, *, window, tokens_per_batch, softmax_scale=None,
                         check_indices=True) -> float:
    """Raise TypeError / ValueError naming the argument for bad sparse_decode_attention input
    (SPEC P13); returns the fp32 softmax scale. Shared by the wrapper and the planted-bug
    catalogue's bases, so every implementation under test is held to one input contract."""
    window = _check_int("window", window, 1)
    S = _check_int("tokens_per_batch", tokens_per_batch, 1)

    check_tensor("q", q, (torch.bfloat16,), 3, "[T, H, D]")
    T, H, D = q.shape
    check_tensor("ori_kv", ori_kv, (torch.bfloat16,), 3, "[N_ori, BS, D]")
    check_tensor("cmp_kv", cmp_kv, (torch.bfloat16,), 3, "[N_cmp, BS, D]")
    if ori_kv.shape[2] != D:
        raise ValueError(f"ori_kv must have last dim D={D} (from q), got shape {tuple(ori_kv.shape)}")
    if cmp_kv.shape[2] != D:
        raise ValueError(f"cmp_kv must have last dim D={D} (from q), got shape {tuple(cmp_kv.shape)}")
    BS = ori_kv.shape[1]
    if BS < 1:
        raise ValueError(f"ori_kv must have at least one row per page, got shape {tuple(ori_kv.shape)}")
    if cmp_kv.shape[1] != BS:
        raise ValueError(f"cmp_kv must have the page size of ori_kv ({BS} rows), got shape {tuple(cmp_kv.shape)}")
    if T % S != 0:
        raise ValueError(f"tokens_per_batch={S} must divide the token count T={T} of q")
    B = T // S
    check_tensor("ori_block_table", ori_block_table, (torch.int32,), 2, "[B, max_ori_blocks]")
    check_tensor("cmp_block_table", cmp_block_table, (torch.int32,), 2, "[B, max_cmp_blocks]")
    for name, table in (("ori_block_table", ori_block_table), ("cmp_block_table", cmp_block_table)):
        if table.shape[0] != B:
            raise ValueError(f"{name} must have B = T / tokens_per_batch = {B} rows, got shape {tuple(table.shape)}")
    check_tensor("sparse_indices", sparse_indices, (torch.int32,), 2, "[T, K]")
    if sparse_indices.shape[0] != T:
        raise ValueError(f"sparse_indices must have T={T} rows (from q), got shape {tuple(sparse_indices.shape)}")
    K = sparse_indices.shape[1]
    check_tensor("seqused_kv", seqused_kv, (torch.int32,), 1, "[B]")
    if seqused_kv.shape[0] != B:
        raise ValueError(f"seqused_kv must have shape [B] = [{B}], got {tuple(seqused_kv.shape)}")
    check_tensor("attn_sink", attn_sink, (torch.float32,), 1, "[H]")
    if attn_sink.shape[0] != H:
        raise ValueError(f"attn_sink must have shape [H] = [{H}], got {tuple(attn_sink.shape)}")
    for name, x in (("q", q), ("ori_kv", ori_kv), ("ori_block_table", ori_block_table), ("cmp_kv", cmp_kv),
                    ("cmp_block_table", cmp_block_table), ("sparse_indices", sparse_indices),
                    ("seqused_kv", seqused_kv), ("attn_sink", attn_sink)):
        check_device(name, x, "q", q)
    for name, x in (("q", q), ("ori_kv", ori_kv), ("cmp_kv", cmp_kv)):
        check_last_stride(name, x)
    if bool(torch.isnan(attn_sink).any()):
        raise ValueError("attn_sink must not contain NaN (use -inf for 'no sink')")
    scale = _fp32_scale(softmax_scale, D)
    if check_indices and T > 0 and K > 0:
        _check_pages(sparse_indices, seqused_kv, ori_block_table, cmp_block_table,
                     ori_kv.shape[0], cmp_kv.shape[0], window=window, tokens_per_batch=S, page_rows=BS)
    return scale


def sparse_decode_attention(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices,
                            seqused_kv, attn_sink, *, window, tokens_per_batch, softmax_scale=None,
                            recipe=None, check_indices=True):
    """Sparse decode attention of SPEC section 2; returns o [T, H, D] fp32 (bf16 for
    recipe.out_dtype "bf16"; recipe.tile None: one tile of all K positions).

    Strides: q, ori_kv and cmp_kv need a contiguous last dim (ValueError otherwise); all other
    strides, and all strides of the integer tensors and attn_sink, are passed to the kernel as is.
    check_indices=True verifies that every valid index reaches an existing block column and page
    (ValueError naming the table, the token and the index; it synchronizes with the device).
    With False, such lanes are masked out (ignored): memory is never read out of bounds.
    recipe: AttnRecipe (None: AttnRecipe()); only tiling "positional" is implemented here.
    """
    recipe = AttnRecipe() if recipe is None else recipe
    if not isinstance(recipe, AttnRecipe):
        raise TypeError(f"recipe must be an AttnRecipe or None, got {type(recipe).__name__}")
    if recipe.tiling != "positional":
        raise NotImplementedError(
            f"recipe.tiling={recipe.tiling!r} is not implemented by the bundled Triton kernel "
            "(positional tiling only; the golden implements 'compacted')")
    scale = check_attention_args(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table,
                                 sparse_indices, seqused_kv, attn_sink, window=window,
                                 tokens_per_batch=tokens_per_batch, softmax_scale=softmax_scale,
                                 check_indices=check_indices)
    if not interpreted() and q.shape[2] > _MAX_D_CUDA:
        raise ValueError(f"q: head dim D={q.shape[2]} exceeds the {_MAX_D_CUDA} this kernel supports on GPU")
    T, H, D = q.shape
    K, S, BS = sparse_indices.shape[1], tokens_per_batch, ori_kv.shape[1]

    o = torch.zeros((T, H, D), dtype=torch.float32, device=q.device)
    if T == 0 or H == 0 or D == 0 or K == 0:
        return _to_out_dtype(o, recipe)  # nothing to attend to: exact zeros
    cfg = _attn_config(H, D, recipe.tile_for(K), K)
    grid = (T, triton.cdiv(H, cfg["BLOCK_H"]))
    _sparse_decode_attn_kernel[grid](
        q, q.stride(0), q.stride(1),
        ori_kv, ori_kv.stride(0), ori_kv.stride(1),
        cmp_kv, cmp_kv.stride(0), cmp_kv.stride(1),
        ori_block_table, ori_block_table.stride(0), ori_block_table.stride(1),
        cmp_block_table, cmp_block_table.stride(0), cmp_block_table.stride(1),
        sparse_indices, sparse_indices.stride(0), sparse_indices.stride(1),
        seqused_kv, seqused_kv.stride(0),
        attn_sink, attn_sink.stride(0),
        o, o.stride(0), o.stride(1),
        H, D, K, S, window, BS, ori_kv.shape[0], cmp_kv.shape[0],
        ori_block_table.shape[1], cmp_block_table.shape[1], cfg["TILE"], scale,
        BLOCK_H=cfg["BLOCK_H"], BLOCK_D=cfg["BLOCK_D"], BLOCK_N=cfg["BLOCK_N"], TWO_PASS=cfg["TWO_PASS"],
        P_BF16=recipe.p_dtype == "bf16", L_ROUNDED=recipe.l_from == "rounded",
        ROUND_MODE=ROUNDING_CODE[recipe.rounding],
        BF16_DOT=not interpreted(),
        num_warps=cfg["num_warps"],
        enable_fp_fusion=False,  # no FMA contraction: s * c - m and a L + b l round like the golden
    )
    return _to_out_dtype(o, recipe)


def _to_out_dtype(o: torch.Tensor, recipe: AttnRecipe) -> torch.Tensor:
    """out_dtype "bf16": torch's cast is nearest-even on CPU and CUDA (the interpreter's in-kernel
    cast truncates, SPEC section 5, so the wrapper rounds the fp32 result instead)."""
    return o.to(torch.bfloat16) if recipe.out_dtype == "bf16" else o


sparse_decode_attention.recipe = AttnRecipe()
sparse_decode_attention.accepts_recipe = True
