"""Sparse indexer top-k (SPEC section 7): a Triton kernel for the scores, torch for the selection.

score_tj = sum over h (in order) of weights[t, h] * relu(fp32(index_q[t, h] . k_j)) in fp32, for
every visible compressed slot j < cmp_valid(t); invisible slots get -inf. Selection: a stable
descending sort (torch.sort(stable=True)) keeps equal scores in slot order, so exact ties take the
smaller j; the first min(topk, cmp_valid) sorted slots are written as W + j, then -1.
"""
import numbers

import torch
import triton
import triton.language as tl

from kernelprop.golden.indexer import IndexerRecipe, cmp_valid, select_topk
from kernelprop.kernels._checks import check_device, check_last_stride
from kernelprop.kernels._launch import KernelLaunch

BLOCK_J = 16   # slots per program: the DSV4 indexer (Hi 64, Di 128) compiles to 168 registers, no spill


@triton.jit
def _indexer_scores_kernel(
    q_ptr, stride_qt, stride_qh,          # index_q [T, Hi, Di] bf16
    k_ptr, stride_kp, stride_kr,          # index_k [N, BS, Di] bf16
    tab_ptr, stride_tb,                   # cmp_block_table [B, max_blocks] int32
    w_ptr, stride_wt,                     # weights [T, Hi] fp32
    valid_ptr,                            # [T] int32 visible compressed slots
    out_ptr, stride_ot,                   # scores [T, slots] fp32
    S, BS, Di, NJ,                        # NJ: slot blocks per token
    HEADS: tl.constexpr, BLOCK_J: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """One token and BLOCK_J slots per program: page lookup per slot, per head one fp32 dot
    (tl.sum), relu, and the weighted sum over heads in head order. A 1-D grid of T * NJ programs
    (grid axis 0 allows 2^31 - 1; axes 1-2 only 65535, which NJ passes at ~1M slots)."""
    pid = tl.program_id(0)
    t = pid // NJ
    j = (pid % NJ) * BLOCK_J + tl.arange(0, BLOCK_J)
    d = tl.arange(0, BLOCK_D)
    valid = tl.load(valid_ptr + t)
    vis = j < valid
    b = t // S
    page = tl.load(tab_ptr + b * stride_tb + j // BS, mask=vis, other=0)
    rows = k_ptr + page.to(tl.int64)[:, None] * stride_kp + (j % BS)[:, None] * stride_kr + d[None, :]
    k = tl.load(rows, mask=vis[:, None] & (d[None, :] < Di), other=0.0).to(tl.float32)
    acc = tl.zeros([BLOCK_J], dtype=tl.float32)
    for h in tl.static_range(HEADS):
        q = tl.load(q_ptr + t * stride_qt + h * stride_qh + d, mask=d < Di, other=0.0).to(tl.float32)
        dot = tl.sum(k * q[None, :], axis=1)
        w = tl.load(w_ptr + t * stride_wt + h)
        acc = acc + w * tl.maximum(dot, 0.0)
    acc = tl.where(vis, acc, float("-inf"))
    tl.store(out_ptr + t * stride_ot + j, acc)


def _tensor(name, x, dtype, dim):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype != dtype:
        raise TypeError(f"{name} must have dtype {str(dtype).replace('torch.', '')}, "
                        f"got {str(x.dtype).replace('torch.', '')}")
    if x.dim() != dim:
        raise ValueError(f"{name} must have {dim} dims, got shape {tuple(x.shape)}")


def _int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise (TypeError if not isinstance(value, numbers.Integral) or isinstance(value, bool)
               else ValueError)(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_indexer_args(index_q, index_k, cmp_block_table, weights, seqused_kv, window,
                       tokens_per_batch, topk) -> torch.Tensor:
    """Raise TypeError / ValueError naming the argument for bad indexer input (P13 / I6); returns
    the [T] visible compressed slots per token."""
    _tensor("index_q", index_q, torch.bfloat16, 3)
    _tensor("index_k", index_k, torch.bfloat16, 3)
    _tensor("cmp_block_table", cmp_block_table, torch.int32, 2)
    _tensor("weights", weights, torch.float32, 2)
    _tensor("seqused_kv", seqused_kv, torch.int32, 1)
    W = _int("window", window, 1)
    S = _int("tokens_per_batch", tokens_per_batch, 1)
    _int("topk", topk, 1)
    T, H, D = index_q.shape
    if index_k.shape[-1] != D:
        raise ValueError(f"index_k's last dim {index_k.shape[-1]} must equal index_q's {D}")
    if tuple(weights.shape) != (T, H):
        raise ValueError(f"weights must be [T, Hi] = [{T}, {H}], got {tuple(weights.shape)}")
    if T % S:
        raise ValueError(f"tokens_per_batch={S} must divide index_q's T={T}")
    if seqused_kv.shape[0] != T // S:
        raise ValueError(f"seqused_kv must be [B] = [{T // S}], got {tuple(seqused_kv.shape)}")
    if cmp_block_table.shape[0] != T // S:
        raise ValueError(f"cmp_block_table must have B = {T // S} rows, got {cmp_block_table.shape[0]}")
    for name, x in (("index_k", index_k), ("cmp_block_table", cmp_block_table),
                    ("weights", weights), ("seqused_kv", seqused_kv)):
        check_device(name, x, "index_q", index_q)
    for name, x in (("index_q", index_q), ("index_k", index_k), ("weights", weights)):
        check_last_stride(name, x)
    valid = cmp_valid(seqused_kv, window=W, tokens_per_batch=S, tokens=T)
    BS = index_k.shape[1]
    need = (valid + BS - 1) // BS                      # block columns each token reads
    if valid.numel() and int(need.max()) > cmp_block_table.shape[1]:
        raise ValueError(f"cmp_block_table has {cmp_block_table.shape[1]} block columns; the visible "
                         f"slots need {int(need.max())}")
    cols = torch.arange(cmp_block_table.shape[1], device=valid.device)
    b = torch.arange(T, device=valid.device) // S
    used = cols[None, :] < need[:, None]
    pages = cmp_block_table.long()[b]
    bad = used & ((pages < 0) | (pages >= index_k.shape[0]))
    if bool(bad.any()):
        raise ValueError(f"cmp_block_table holds a page id outside index_k's {index_k.shape[0]} "
                         f"pages where a visible slot reads it")
    return valid


def sparse_indexer_topk(index_q, index_k, cmp_block_table, weights, seqused_kv, *, window,
                        tokens_per_batch, topk, recipe=None):
    """[T, topk] int32: W + j of the topk highest-scoring visible compressed slots (SPEC 7)."""
    recipe = IndexerRecipe() if recipe is None else recipe
    if not isinstance(recipe, IndexerRecipe):
        raise TypeError(f"recipe must be an IndexerRecipe, got {type(recipe).__name__}")
    valid = check_indexer_args(index_q, index_k, cmp_block_table, weights, seqused_kv, window,
                               tokens_per_batch, topk)
    T, H, D = index_q.shape
    slots = cmp_block_table.shape[1] * index_k.shape[1]
    scores = indexer_scores(index_q, index_k, cmp_block_table, weights, valid, tokens_per_batch, slots)
    visible = torch.arange(slots, device=scores.device)[None, :] < valid[:, None]
    return select_topk(scores, visible, window=window, topk=topk)


def indexer_scores(index_q, index_k, cmp_block_table, weights, valid, tokens_per_batch, slots):
    """[T, slots] fp32 kernel scores (-inf where invisible)."""
    T = index_q.shape[0]
    if T == 0 or slots == 0:
        return torch.full((T, slots), float("-inf"), dtype=torch.float32, device=index_q.device)
    padded = torch.full((T, triton.cdiv(slots, BLOCK_J) * BLOCK_J), float("-inf"), dtype=torch.float32,
                        device=index_q.device)
    indexer_launch(index_q, index_k, cmp_block_table, weights, valid.to(torch.int32).contiguous(), padded,
                   tokens_per_batch).run()
    return padded[:, :slots]


def indexer_launch(index_q, index_k, cmp_block_table, weights, valid, scores, tokens_per_batch) -> KernelLaunch:
    """The score kernel's launch for checked inputs, [T] int32 `valid` and an allocated [T, a
    multiple of BLOCK_J] fp32 `scores` (no checks here): the wrapper runs it and `./kp compile`
    compiles it, so both see one config."""
    T, H, D = index_q.shape
    n_jblk = scores.shape[1] // BLOCK_J
    grid = (T * n_jblk,)
    args = (
        index_q, index_q.stride(0), index_q.stride(1),
        index_k, index_k.stride(0), index_k.stride(1),
        cmp_block_table, cmp_block_table.stride(0),
        weights, weights.stride(0),
        valid,
        scores, scores.stride(0),
        tokens_per_batch, index_k.shape[1], D, n_jblk,
    )
    constexprs = dict(HEADS=H, BLOCK_J=BLOCK_J, BLOCK_D=triton.next_power_of_2(max(D, 1)))
    return KernelLaunch(_indexer_scores_kernel, grid, args, constexprs)


sparse_indexer_topk.accepts_recipe = True
sparse_indexer_topk.recipe = IndexerRecipe()
