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

The wrapper checks its arguments, then runs `attention_launch(...)`: a KernelLaunch that
`./kp compile` also builds (on meta tensors) and compiles for sm_90a, so the compile table and
the launches share one configuration function (`attn_config`).
"""
import math
import numbers

import torch
import triton
import triton.language as tl

from kernelprop.golden.attention_inputs import UNSPLIT_FIELDS, AttnRecipe
from kernelprop.kernels._bf16 import ROUNDING_CODE, tl_round_to_bf16
from kernelprop.kernels._checks import check_device, check_last_stride, check_tensor, interpreted
from kernelprop.kernels._launch import KernelLaunch


# %% kernel

@triton.jit
def _gather_rows(
    pos,               # [BLOCK_N] int32: index positions of the lanes within sparse_indices[t]
    lane_on,           # [BLOCK_N] bool: lane lies inside the current tile and inside [0, K)
    src,               # the token's key source, a tuple built once per program (see the kernel):
                       # (idx_row_ptr -> sparse_indices[t, 0], stride_idx_k,
                       #  ori_kv_ptr, stride_ori_page, stride_ori_row,     window pool [N_ori, BS, D]
                       #  cmp_kv_ptr, stride_cmp_page, stride_cmp_row,     compressed pool [N_cmp, BS, D]
                       #  ori_tab_row_ptr -> ori_block_table[b, 0], stride_ori_tab (along columns),
                       #  cmp_tab_row_ptr -> cmp_block_table[b, 0], stride_cmp_tab,
                       #  win_valid: window slots [0, win_valid) visible (int32, in [0, W]),
                       #  cmp_valid: compressed slots [0, cmp_valid) visible (int32 >= 0),
                       #  W (index W + j is compressed slot j), BS (rows per page),
                       #  N_ORI, N_CMP (pages per pool), ORI_WIDTH, CMP_WIDTH (table columns))
    offs_d,            # [BLOCK_D] main column offsets
    d_mask,            # [BLOCK_D] bool: column < D
    offs_e,            # [BLOCK_E] tail column offsets (HAS_TAIL)
    e_mask,            # [BLOCK_E] bool: tail column < D
    HAS_TAIL: tl.constexpr,    # D > BLOCK_D: the tail columns are loaded too
    EVEN_D: tl.constexpr,      # D >= BLOCK_D: no column mask on the main block
):
    """One lane block's key rows: (k [BLOCK_N, BLOCK_D] bf16, k_e [BLOCK_N, BLOCK_E] bf16 tail
    columns (HAS_TAIL; else k again, a placeholder never used), valid [BLOCK_N]).

    A lane is valid iff its index is visible (SPEC 2) and its table column and page id are in
    range; every other lane is masked on every load (it reads zeros), so no memory outside the
    pools is touched. Lane vectors are int32 (half the registers of int64: the DSV4 config
    spilled with int64), and no int32 operation can wrap: idx - W is formed only where
    idx >= W >= 1, slots are < 2^31, the page offset page * stride_page is widened to int64
    before it is formed, and row * stride_row < BS * stride_row < 2^31 (the wrapper rejects
    larger pages; widening this product too costs the DSV4 config 4 B of spills).
    """
    (idx_row_ptr, stride_idx_k, ori_kv_ptr, stride_ori_page, stride_ori_row,
     cmp_kv_ptr, stride_cmp_page, stride_cmp_row, ori_tab_row_ptr, stride_ori_tab,
     cmp_tab_row_ptr, stride_cmp_tab, win_valid, cmp_valid, W, BS, N_ORI, N_CMP,
     ORI_WIDTH, CMP_WIDTH) = src
    idx = tl.load(idx_row_ptr + pos * stride_idx_k, mask=lane_on, other=-1)
    is_win = (idx >= 0) & (idx < win_valid)
    is_cmp = (idx >= W) & (tl.where(idx >= W, idx - W, 0) < cmp_valid)
    slot = tl.where(is_win, idx, tl.where(is_cmp, idx - W, 0))   # row number inside its cache
    blk = slot // BS                                           # column of its block table
    row = slot % BS                                            # row inside the page
    blk_ok = (is_win | is_cmp) & (blk < tl.where(is_win, ORI_WIDTH, CMP_WIDTH))
    tab_ptr = tl.where(is_win, ori_tab_row_ptr + blk * stride_ori_tab, cmp_tab_row_ptr + blk * stride_cmp_tab)
    page = tl.load(tab_ptr, mask=blk_ok, other=-1)
    valid = blk_ok & (page >= 0) & (page < tl.where(is_win, N_ORI, N_CMP))
    page64 = tl.where(valid, page, 0).to(tl.int64)
    row_ptr = tl.where(is_win,
                       ori_kv_ptr + page64 * stride_ori_page + (row * stride_ori_row).to(tl.int64),
                       cmp_kv_ptr + page64 * stride_cmp_page + (row * stride_cmp_row).to(tl.int64))
    k = _load_rows(row_ptr, valid, offs_d, d_mask, EVEN_D)
    if HAS_TAIL:
        k_e = _load_rows(row_ptr, valid, offs_e, e_mask, False)
    else:
        k_e = k                                                # placeholder, never used
    return k, k_e, valid


@triton.jit
def _load_rows(
    row_ptr,           # [BLOCK_N] pointers to column 0 of the key rows
    valid,             # [BLOCK_N] bool: lane holds a valid row (others load zeros, read nothing)
    offs,              # [WIDTH] column offsets
    col_mask,          # [WIDTH] bool: column < D
    EVEN: tl.constexpr,        # every column is < D: no column mask (whole 16-byte vectors)
):
    """[BLOCK_N, WIDTH] bf16 columns `offs` of the rows, zero where invalid or past D."""
    if EVEN:
        return tl.load(row_ptr[:, None] + offs[None, :], mask=valid[:, None], other=0.0)
    return tl.load(row_ptr[:, None] + offs[None, :], mask=valid[:, None] & col_mask[None, :], other=0.0)


@triton.jit
def _scores_t(
    k,                 # [BLOCK_N, BLOCK_D] bf16 key rows, columns [0, BLOCK_D) (zero where invalid)
    k_e,               # [BLOCK_N, BLOCK_E] bf16 tail columns [BLOCK_D, BLOCK_D + BLOCK_E) (HAS_TAIL)
    qT,                # [BLOCK_D, BLOCK_H] q^T: bf16 (BF16_DOT) or its exact fp32 upcast
    qT_e,              # [BLOCK_E, BLOCK_H] tail rows of q^T (HAS_TAIL)
    scale,             # fp32 softmax scale
    HAS_TAIL: tl.constexpr,    # D > BLOCK_D: the tail columns continue the same accumulation
    BF16_DOT: tl.constexpr,    # bf16 tensor-core dot (else an IEEE fp32 dot of exact upcasts)
):
    """Scores^T [BLOCK_N, BLOCK_H] = fp32(k . q) * scale: one fp32 accumulator over all D columns
    (the tail's products are accumulated onto the main block's), then one multiply."""
    if BF16_DOT:
        sT = tl.dot(k, qT, out_dtype=tl.float32)
        if HAS_TAIL:
            sT = tl.dot(k_e, qT_e, sT, out_dtype=tl.float32)
    else:
        sT = tl.dot(k.to(tl.float32), qT, input_precision="ieee", out_dtype=tl.float32)
        if HAS_TAIL:
            sT = tl.dot(k_e.to(tl.float32), qT_e, sT, input_precision="ieee", out_dtype=tl.float32)
    return sT * scale


@triton.jit
def _p_block(
    sT,                # [BLOCK_N, BLOCK_H] scores^T, -inf on invalid lanes
    m,                 # [BLOCK_H] tile max (-inf: empty tile)
    P_BF16: tl.constexpr,      # recipe.p_dtype == "bf16"
    L_ROUNDED: tl.constexpr,   # recipe.l_from == "rounded"
    ROUND_MODE: tl.constexpr,  # recipe.rounding code
):
    """e = exp(s - m) (0 on invalid lanes and in an empty tile), P = round_bf16(e) (P_BF16) or e;
    returns (P [BLOCK_N, BLOCK_H] fp32 holding P's values, this block's sum of P or of e)."""
    NEG_INF: tl.constexpr = float("-inf")
    e = tl.exp(sT - tl.where(m > NEG_INF, m, 0.0)[None, :])    # fp32; 0 on invalid lanes
    if P_BF16:
        p = tl_round_to_bf16(e, ROUND_MODE)                      # bf16 values held in fp32
        if L_ROUNDED:
            return p, tl.sum(p, axis=0)
        return p, tl.sum(e, axis=0)
    return e, tl.sum(e, axis=0)


@triton.jit
def _pv_t(
    k,                 # [BLOCK_N, WIDTH] bf16 key rows (columns of one block)
    p,                 # [BLOCK_N, BLOCK_H] P (fp32 holding bf16 values when P_BF16)
    acc,               # [WIDTH, BLOCK_H] fp32 accumulator
    P_BF16: tl.constexpr,      # P is bf16-representable: a bf16 tensor-core dot is exact in its products
    BF16_DOT: tl.constexpr,    # bf16 tensor-core dots (else IEEE fp32 dots of exact upcasts)
):
    """acc + (P.V)^T = acc + k^T . P, accumulated in fp32 by tl.dot."""
    if P_BF16 and BF16_DOT:
        # bf16 x bf16; the cast is exact: p is bf16-representable
        return tl.dot(tl.trans(k), p.to(tl.bfloat16), acc, out_dtype=tl.float32)
    # IEEE fp32 (p_dtype fp32, or any P on the interpreter); never TF32
    return tl.dot(tl.trans(k.to(tl.float32)), p, acc, input_precision="ieee", out_dtype=tl.float32)


@triton.jit
def _merge_factors(M, m):
    """M' = max(M, m), a = exp(M - M'), b = exp(m - M'). An empty tile (m = -inf) gives b = 0 and
    a = 1 (or 0 while M = -inf, where L and O are 0): M, L, O stay bitwise unchanged, and no
    exp(-inf + inf) is formed (the reference M' is 0 while M' = -inf)."""
    NEG_INF: tl.constexpr = float("-inf")
    M_new = tl.maximum(M, m)
    M_ref = tl.where(M_new > NEG_INF, M_new, 0.0)
    return M_new, tl.exp(M - M_ref), tl.exp(m - M_ref)


@triton.jit
def _tile_block(
    k,                 # [BLOCK_N, BLOCK_D] bf16 key rows of one lane block (zero where invalid)
    k_e,               # [BLOCK_N, BLOCK_E] their tail columns (HAS_TAIL; else unused)
    valid,             # [BLOCK_N] bool: lane holds a valid row
    qT,                # [BLOCK_D, BLOCK_H] q^T (bf16, or its fp32 upcast on the interpreter)
    qT_e,              # [BLOCK_E, BLOCK_H] tail rows of q^T (HAS_TAIL)
    m,                 # [BLOCK_H] tile max: given when M_GIVEN, else this block's (= the tile's) max
    l,                 # [BLOCK_H] running sum of P over the tile's blocks so far
    oT_tile,           # [BLOCK_D, BLOCK_H] running (P.V)^T of the tile's blocks so far (fp32)
    oT_tile_e,         # [BLOCK_E, BLOCK_H] its tail rows (HAS_TAIL; else returned unchanged)
    scale,             # fp32 softmax scale
    HAS_TAIL: tl.constexpr,    # D > BLOCK_D (columns split into a main and a tail block)
    M_GIVEN: tl.constexpr,     # m is the tile max from a first pass (TWO_PASS)
    P_BF16: tl.constexpr,      # recipe.p_dtype == "bf16"
    L_ROUNDED: tl.constexpr,   # recipe.l_from == "rounded"
    ROUND_MODE: tl.constexpr,  # recipe.rounding code
    BF16_DOT: tl.constexpr,    # bf16 tensor-core dots (else IEEE fp32 dots of exact upcasts)
):
    """One lane block of a softmax tile: s = fp32(q.k) * c (invalid lanes -inf), e = exp(s - m)
    (m = -inf: e = 0, the block is empty), P = round_bf16(e), l += sum P (or e), o_tile += P.V
    accumulated in fp32 by tl.dot. Returns (m, l, oT_tile, oT_tile_e)."""
    NEG_INF: tl.constexpr = float("-inf")
    sT = tl.where(valid[:, None], _scores_t(k, k_e, qT, qT_e, scale, HAS_TAIL, BF16_DOT), NEG_INF)
    if not M_GIVEN:
        m = tl.max(sT, axis=0)
    p, l_block = _p_block(sT, m, P_BF16, L_ROUNDED, ROUND_MODE)
    l += l_block
    oT_tile = _pv_t(k, p, oT_tile, P_BF16, BF16_DOT)
    if HAS_TAIL:
        oT_tile_e = _pv_t(k_e, p, oT_tile_e, P_BF16, BF16_DOT)
    return m, l, oT_tile, oT_tile_e


@triton.jit
def _merge(M, L, OT, OT_e, m, l, oT_tile, oT_tile_e, HAS_TAIL: tl.constexpr):
    """Left-to-right tile merge (_merge_factors): L = a L + b l, O = a O + b o_tile (O^T here,
    main and tail rows)."""
    M_new, alpha, beta = _merge_factors(M, m)
    OT = alpha[None, :] * OT + beta[None, :] * oT_tile
    if HAS_TAIL:
        OT_e = alpha[None, :] * OT_e + beta[None, :] * oT_tile_e
    return M_new, alpha * L + beta * l, OT, OT_e


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
    N_HBLK,            # head blocks per token: cdiv(H, BLOCK_H) (program = token * N_HBLK + block)
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
    BLOCK_D: tl.constexpr,     # main column block (power of two); columns >= D masked
    BLOCK_E: tl.constexpr,     # tail column block [BLOCK_D, BLOCK_D + BLOCK_E) (power of two >= 16)
    HAS_TAIL: tl.constexpr,    # D > BLOCK_D: the tail block is used (else BLOCK_E is a placeholder)
    BLOCK_N: tl.constexpr,     # lanes per gathered block (power of two >= 16)
    TWO_PASS: tl.constexpr,    # TILE > BLOCK_N: a first pass over the tile's lane blocks finds m
    P_BF16: tl.constexpr,      # recipe.p_dtype == "bf16"
    L_ROUNDED: tl.constexpr,   # recipe.l_from == "rounded"
    ROUND_MODE: tl.constexpr,  # recipe.rounding code (kernels._bf16.ROUNDING_CODE)
    BF16_DOT: tl.constexpr,    # tl.dot on bf16 operands (False on the interpreter, see config)
    EVEN_D: tl.constexpr,      # D >= BLOCK_D: no column mask on the main block
):
    """One program per (token t, block of BLOCK_H heads): o[t, heads] for the module's math.

    Rounding points: q and k load as bf16; scores = fp32 dot (fp32 accumulation) times the fp32
    scale; exp, m, l, M, L, O in fp32; P rounded to bf16 by bit arithmetic (P_BF16) before the
    P.V dot (fp32 accumulation; p_dtype fp32: an IEEE fp32 dot, no TF32); o stored in fp32.
    Every gathered row is loaded once per lane block and shared by the BLOCK_H heads through two
    transposed tl.dot, heads on the N side so that M >= 64 and Hopper runs them as wgmma from
    shared memory (docs/roofline.md): scores^T = k [BLOCK_N, BLOCK_D] . q^T [BLOCK_D, BLOCK_H] and
    (P.V)^T = k^T [BLOCK_D, BLOCK_N] . P^T [BLOCK_N, BLOCK_H]. The transposition changes no sum,
    only its layout. With HAS_TAIL the columns are a main block [0, BLOCK_D) and a tail block
    [BLOCK_D, BLOCK_D + BLOCK_E): the tail's score products continue the main block's fp32
    accumulator, and O^T has main and tail rows (576 = 512 + 64 loads 576 columns, not 1024).
    A tile is one lane block unless TWO_PASS; then its rows are gathered twice (tile max first)
    and l, o_tile are sums of per-block partials.
    An empty tile (no valid lane) is skipped arithmetically: m = -inf gives e = 0, l = 0,
    o_tile = 0, beta = 0 and alpha = 1 (or 0 while M = -inf), so M, L, O stay bitwise unchanged
    and no exp(-inf + inf) is ever formed.
    """
    NEG_INF: tl.constexpr = float("-inf")
    # 1-D grid, head blocks fastest: the programs of one token run side by side and share its
    # gathered rows through L2 (each row leaves HBM once per token, not once per head block).
    pid = tl.program_id(0)
    t = (pid // N_HBLK).to(tl.int64)
    offs_h = (pid % N_HBLK) * BLOCK_H + tl.arange(0, BLOCK_H)
    h_mask = offs_h < H
    offs_d = tl.arange(0, BLOCK_D)
    d_mask = offs_d < D
    offs_e = BLOCK_D + tl.arange(0, BLOCK_E)                   # tail columns (HAS_TAIL)
    e_mask = offs_e < D
    lanes = tl.arange(0, BLOCK_N)

    # Visible part of the caches for this token (SPEC 2), in int64, then clamped into int32:
    # win_valid in [0, W] and cmp_valid in [0, 2^31 - 1] select the same slots (slots are int32).
    b = t // S
    used = tl.load(seqused_ptr + b * stride_seqused).to(tl.int64) - S + 1 + t % S
    win_valid = tl.maximum(tl.minimum(used, W), 0)
    cmp_valid = tl.minimum(tl.maximum(used - win_valid, 0), 2147483647)
    win_valid = win_valid.to(tl.int32)
    cmp_valid = cmp_valid.to(tl.int32)

    # q^T [BLOCK_D, BLOCK_H]: heads are the N side of both dots (see the docstring)
    qT = tl.load(q_ptr + t * stride_qt + offs_d[:, None] + offs_h[None, :] * stride_qh,
                 mask=d_mask[:, None] & h_mask[None, :], other=0.0)
    if HAS_TAIL:
        qT_e = tl.load(q_ptr + t * stride_qt + offs_e[:, None] + offs_h[None, :] * stride_qh,
                       mask=e_mask[:, None] & h_mask[None, :], other=0.0)
    else:
        qT_e = qT                                              # placeholder, never used
    if not BF16_DOT:
        qT = qT.to(tl.float32)                                 # exact upcast for the IEEE dot
        qT_e = qT_e.to(tl.float32)
    src = (idx_ptr + t * stride_idx_t, stride_idx_k,                 # the token's key source
           ori_kv_ptr, stride_ori_page, stride_ori_row, cmp_kv_ptr, stride_cmp_page, stride_cmp_row,
           ori_tab_ptr + b * stride_ori_tab_b, stride_ori_tab_j, cmp_tab_ptr + b * stride_cmp_tab_b,
           stride_cmp_tab_j, win_valid, cmp_valid, W, BS, N_ORI, N_CMP, ORI_WIDTH, CMP_WIDTH)

    M = tl.full([BLOCK_H], NEG_INF, tl.float32)
    L = tl.full([BLOCK_H], 0.0, tl.float32)
    OT = tl.full([BLOCK_D, BLOCK_H], 0.0, tl.float32)          # O^T, columns [0, BLOCK_D)
    OT_e = tl.full([BLOCK_E, BLOCK_H], 0.0, tl.float32)        # its tail rows (stays 0 without a tail)
    if not TWO_PASS:
        # a tile is one lane block: one flat loop, so the compiler's software pipeline
        # (num_stages) prefetches the next tiles' indices, page ids and rows during this one
        for start in range(0, K, TILE):
            pos = start + lanes
            k, k_e, valid = _gather_rows(pos, (lanes < TILE) & (pos < K), src,
                                         offs_d, d_mask, offs_e, e_mask, HAS_TAIL, EVEN_D)
            sT = tl.where(valid[:, None], _scores_t(k, k_e, qT, qT_e, scale, HAS_TAIL, BF16_DOT), NEG_INF)
            m = tl.max(sT, axis=0)                             # the tile max
            p, l = _p_block(sT, m, P_BF16, L_ROUNDED, ROUND_MODE)
            M, alpha, beta = _merge_factors(M, m)
            L = alpha * L + beta * l
            # O = a O + b o_tile per column block, each right after its o_tile dot (from 0), so
            # only one o_tile block is live: the same operations as _merge, in another order
            OT = alpha[None, :] * OT + beta[None, :] * _pv_t(k, p, tl.zeros([BLOCK_D, BLOCK_H], tl.float32),
                                                             P_BF16, BF16_DOT)
            if HAS_TAIL:
                OT_e = alpha[None, :] * OT_e + beta[None, :] * _pv_t(
                    k_e, p, tl.zeros([BLOCK_E, BLOCK_H], tl.float32), P_BF16, BF16_DOT)
    else:
        for start in range(0, K, TILE):
            m = tl.full([BLOCK_H], NEG_INF, tl.float32)        # tile max first (-inf: empty tile)
            for sub in range(0, TILE, BLOCK_N):
                pos = start + sub + lanes
                k, k_e, valid = _gather_rows(pos, (sub + lanes < TILE) & (pos < K), src,
                                             offs_d, d_mask, offs_e, e_mask, HAS_TAIL, EVEN_D)
                sT = _scores_t(k, k_e, qT, qT_e, scale, HAS_TAIL, BF16_DOT)
                m = tl.maximum(m, tl.max(tl.where(valid[:, None], sT, NEG_INF), axis=0))
            l = tl.full([BLOCK_H], 0.0, tl.float32)
            oT_tile = tl.full([BLOCK_D, BLOCK_H], 0.0, tl.float32)
            oT_tile_e = tl.full([BLOCK_E, BLOCK_H], 0.0, tl.float32)
            for sub in range(0, TILE, BLOCK_N):                # l and o_tile: sums of block partials
                pos = start + sub + lanes
                k, k_e, valid = _gather_rows(pos, (sub + lanes < TILE) & (pos < K), src,
                                             offs_d, d_mask, offs_e, e_mask, HAS_TAIL, EVEN_D)
                m, l, oT_tile, oT_tile_e = _tile_block(k, k_e, valid, qT, qT_e, m, l, oT_tile, oT_tile_e,
                                                       scale, HAS_TAIL, True, P_BF16, L_ROUNDED,
                                                       ROUND_MODE, BF16_DOT)
            M, L, OT, OT_e = _merge(M, L, OT, OT_e, m, l, oT_tile, oT_tile_e, HAS_TAIL)

    # o = O / (L + exp(sink - M)); the sink never enters M. No valid row (M = -inf): zeros.
    sink = tl.load(sink_ptr + offs_h * stride_sink, mask=h_mask, other=NEG_INF)
    has_rows = M > NEG_INF
    denom = L + tl.exp(sink - tl.where(has_rows, M, 0.0))     # +inf sink: denom inf, o = 0
    denom = tl.where(has_rows, denom, 1.0)                     # no rows: no 0/0 (output is 0)
    out = tl.where(has_rows[None, :], tl.math.div_rn(OT, denom[None, :]), 0.0)   # IEEE division
    o_head_ptr = o_ptr + t * stride_ot + offs_h[None, :] * stride_oh
    tl.store(o_head_ptr + offs_d[:, None], out, mask=d_mask[:, None] & h_mask[None, :])
    if HAS_TAIL:
        out_e = tl.where(has_rows[None, :], tl.math.div_rn(OT_e, denom[None, :]), 0.0)
        tl.store(o_head_ptr + offs_e[:, None], out_e, mask=e_mask[:, None] & h_mask[None, :])


# %% launch configuration
# Shapes of the two dots (transposed so that heads are the N side and wgmma applies, which needs
# M >= 64 per warpgroup): scores^T [BLOCK_N, BLOCK_H] = k [BLOCK_N, cols] . q^T [cols, BLOCK_H]
# and (P.V)^T [cols, BLOCK_H] = k^T [cols, BLOCK_N] . P^T [BLOCK_N, BLOCK_H]. Numbers in
# brackets were measured with `./kp compile` (sm_90a, triton 3.6.0; docs/roofline.md).
# Column blocks: one block of next_pow2(max(D, 16)) columns (tl.dot needs every dim >= 16), or
#   two (HAS_TAIL): a power-of-two main block and a second block BLOCK_E, either a tail (576 =
#   512 + 64: 576 loaded columns, not 1024) or the second half of a power-of-two D (512 = 256 +
#   256). The flat loop merges each block's o_tile right after its dot, so with two blocks only
#   the larger block's o_tile is live beside O^T.
# BLOCK_H: the most heads (16 <= BLOCK_H <= min(64, next_pow2(H)), a power of two) whose live
#   fp32 values stay <= 32768 elements (128 KiB: 128 registers a thread at 8 warps): per head,
#   the accumulators (columns + largest block: O^T and one o_tile block; TWO_PASS: 2 x columns,
#   every block's o_tile lives across the tile's lane blocks) and 4 softmax copies of the lane
#   block (s, e, P and its bf16 operand: 4 x BLOCK_N). The candidate layout with the most heads
#   wins, ties go to fewer columns, then to one block. Fewer head blocks = fewer L2 re-reads of a
#   token's rows (docs/roofline.md). DSV4 D=512: 32 heads in 256 + 256 [255 registers, 0 spills at
#   2 stages; one 512 block at 32 heads: 204 B spills]; D=576: 16 heads in 512 + 64; D=256: 32
#   heads [64 in 128 + 128: 48 B spills]; D <= 128: 64 heads at <= 64 lanes [D=64 at 128 lanes:
#   64 heads in 32 + 32 spilled 596 B, so 32 heads].
# BLOCK_N: next power of two >= max(tile, 16), capped so a bf16 K block BLOCK_N x columns stays
#   <= 36864 elements (72 KiB of shared memory per pipeline stage) and <= 128 lanes. A larger tile
#   takes the TWO_PASS path, with half that K block [D=512 tile 100: 64 lanes spilled 16-24 B, 32
#   lanes none; D=576: ~200 B vs none]. The interpreter uses the same choice so that it runs the
#   GPU's code path (a fixed rule, no autotuning: the interpreter would time nothing useful).
# num_warps: 8 when there are > 128 columns or BLOCK_H x columns >= 8192, else 4 [H64 D128 at 4
#   warps: 312 B spills; at 8: none].
# num_stages: 2 with two column blocks or fp32 P [DSV4 at 3 stages: 4 B spills; D=576: 28 B],
#   else 3 (the flat tile loop keeps two K blocks in flight with cp.async; TWO_PASS D=512 at 2
#   stages: 40 B spills, at 3: 16 B).
# p_dtype fp32: the P.V dot is an IEEE fp32 dot (no tensor core), its fp32 k operand lives in
#   registers: one column block and a K block of <= 8192 fp32 elements [DSV4: 16 lanes, 191
#   registers, 0 spills; 64 lanes in 256 + 256 at 32 heads: 2484 B spills].
# BF16_DOT: False on the interpreter. Triton 3.6.0's interpreter stores bf16 as uint16 and its
#   create_dot calls np.matmul on those raw bits (garbage like 1e10); the fp32 "ieee" dot of the
#   upcast operands is the same math (bf16 x bf16 products are exact in fp32).
_MAX_LIVE = 32768
_SOFTMAX_COPIES = 4
_MAX_KBLOCK = 36864
_FP32_KBLOCK = 8192
_MAX_LANES = 128
_SPLIT_MIN_D = 256
_MAX_D_CUDA = 1024  # beyond this the [16, BLOCK_D] operands no longer fit shared memory


def _column_layouts(D: int) -> list[tuple[int, int, bool]]:
    """(BLOCK_D, BLOCK_E, HAS_TAIL) candidates: one block, main + tail, two halves."""
    whole = triton.next_power_of_2(max(D, 16))
    out = [(whole, 16, False)]
    if D > _SPLIT_MIN_D and D & (D - 1):
        main = whole // 2
        tail = triton.next_power_of_2(max(D - main, 16))
        if main + tail < whole:
            out.append((main, tail, True))
    if D == whole and D >= 32:
        out.append((D // 2, D // 2, True))
    return out


def attn_config(H: int, D: int, tile: int, K: int, *, p_fp32: bool = False) -> dict:
    tile_eff = min(tile, K)  # a tile longer than K is one tile: same semantics, smaller block
    best = None
    layouts = _column_layouts(D)[:1] if p_fp32 else _column_layouts(D)
    for block_d, block_e, has_tail in layouts:
        width = block_d + (block_e if has_tail else 0)         # columns loaded per row
        kblock = _FP32_KBLOCK if p_fp32 else _MAX_KBLOCK
        max_lanes = max(16, min(_MAX_LANES, _prev_pow2(kblock // width)))
        block_n = min(triton.next_power_of_2(max(tile_eff, 16)), max_lanes)
        two_pass = tile_eff > block_n
        if two_pass:  # o_tile of every block stays live across the lane blocks: half the K block
            block_n = min(block_n, max(16, _prev_pow2(kblock // 2 // width)))
        acc_cols = width + (width if two_pass else max(block_d, block_e if has_tail else 0))
        per_head = acc_cols + _SOFTMAX_COPIES * block_n
        block_h = max(16, min(triton.next_power_of_2(H), 64, _prev_pow2(_MAX_LIVE // per_head)))
        rank = (block_h, -width, not has_tail)
        if best is None or rank > best[0]:
            best = (rank, dict(BLOCK_H=block_h, BLOCK_D=block_d, BLOCK_E=block_e, HAS_TAIL=has_tail,
                               BLOCK_N=block_n, TWO_PASS=two_pass,
                               num_warps=8 if width > 128 or block_h * width >= 8192 else 4,
                               num_stages=2 if has_tail or p_fp32 else 3, TILE=tile_eff))
    return best[1]


def _prev_pow2(n: int) -> int:
    return 1 << (max(n, 1).bit_length() - 1)


# %% wrapper

def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def fp32_scale(softmax_scale, D: int) -> float:
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
    scale = fp32_scale(softmax_scale, D)
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
    if recipe.kv_splits is not None:
        raise NotImplementedError(
            f"recipe.kv_splits={recipe.kv_splits!r}: the bundled Triton kernel runs one pass over "
            "the keys (no split-KV); it declares accepts_recipe without the split fields, so the "
            "suite never asks it for a split (impls/split_kv_reference.py computes split recipes)")
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
    for name, pool in (("ori_kv", ori_kv), ("cmp_kv", cmp_kv)):
        if pool.shape[1] * pool.stride(1) >= 2 ** 31:
            raise ValueError(f"{name}: a page spans {pool.shape[1]} rows x stride {pool.stride(1)} >= 2^31 "
                             "elements, beyond this kernel's int32 row offsets")
    T, H, D = q.shape
    K = sparse_indices.shape[1]

    o = torch.zeros((T, H, D), dtype=torch.float32, device=q.device)
    if T == 0 or H == 0 or D == 0 or K == 0:
        return _to_out_dtype(o, recipe)  # nothing to attend to: exact zeros
    attention_launch(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices, seqused_kv,
                     attn_sink, o, window=window, tokens_per_batch=tokens_per_batch, scale=scale,
                     recipe=recipe).run()
    return _to_out_dtype(o, recipe)


def attention_launch(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices, seqused_kv,
                     attn_sink, o, *, window: int, tokens_per_batch: int, scale: float,
                     recipe: AttnRecipe) -> KernelLaunch:
    """The kernel launch for checked arguments and an allocated o (no checks here): the wrapper
    runs it and `./kp compile` compiles it for sm_90a, so both see one configuration."""
    T, H, D = q.shape
    K, S, BS = sparse_indices.shape[1], tokens_per_batch, ori_kv.shape[1]
    tile = recipe.tile_for(K)   # tile None (untiled): one tile of all K positions
    cfg = attn_config(H, D, tile, K, p_fp32=recipe.p_dtype == "fp32")
    n_hblk = triton.cdiv(H, cfg["BLOCK_H"])
    grid = (T * n_hblk,)
    args = (
        q, q.stride(0), q.stride(1),
        ori_kv, ori_kv.stride(0), ori_kv.stride(1),
        cmp_kv, cmp_kv.stride(0), cmp_kv.stride(1),
        ori_block_table, ori_block_table.stride(0), ori_block_table.stride(1),
        cmp_block_table, cmp_block_table.stride(0), cmp_block_table.stride(1),
        sparse_indices, sparse_indices.stride(0), sparse_indices.stride(1),
        seqused_kv, seqused_kv.stride(0),
        attn_sink, attn_sink.stride(0),
        o, o.stride(0), o.stride(1),
        H, n_hblk, D, K, S, window, BS, ori_kv.shape[0], cmp_kv.shape[0],
        ori_block_table.shape[1], cmp_block_table.shape[1], cfg["TILE"], scale,
    )
    constexprs = dict(
        BLOCK_H=cfg["BLOCK_H"], BLOCK_D=cfg["BLOCK_D"], BLOCK_N=cfg["BLOCK_N"], TWO_PASS=cfg["TWO_PASS"],
        P_BF16=recipe.p_dtype == "bf16", L_ROUNDED=recipe.l_from == "rounded",
        ROUND_MODE=ROUNDING_CODE[recipe.rounding],
        BF16_DOT=not interpreted(), EVEN_D=D >= cfg["BLOCK_D"],
        BLOCK_E=cfg["BLOCK_E"], HAS_TAIL=cfg["HAS_TAIL"],
    )
    options = dict(
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
        enable_fp_fusion=False,  # no FMA contraction: s * c - m and a L + b l round like the golden
    )
    return KernelLaunch(_sparse_decode_attn_kernel, grid, args, constexprs, options)


def _to_out_dtype(o: torch.Tensor, recipe: AttnRecipe) -> torch.Tensor:
    """out_dtype "bf16": torch's cast is nearest-even on CPU and CUDA (the interpreter's in-kernel
    cast truncates, SPEC section 5, so the wrapper rounds the fp32 result instead)."""
    return o.to(torch.bfloat16) if recipe.out_dtype == "bf16" else o


sparse_decode_attention.recipe = AttnRecipe()
# every recipe field but the split-KV ones: this kernel is one pass over the keys
sparse_decode_attention.accepts_recipe = UNSPLIT_FIELDS
# its sm_90a PTX (./kp compile; kernelprop.core.ptx_audit.declared_ptx): P1 on CUDA charges these figures
sparse_decode_attention.ptx = ("cvt.rn.bf16", "div.rn", "ex2.approx", "wgmma.f32.bf16.bf16 k16")
