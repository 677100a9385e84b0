"""Replay functions of the indexer properties I1-I5 (SPEC section 7; I6 is P13 through the op's
argument table). No hypothesis here. `inputs["inputs"]` is an IndexerInputs; I4 compares two
inputs "a" and "b"; I5 adds "attn", an AttnInputs over the same compressed pages. Bounds:
golden/indexer_bounds.py, docs/bounds-indexer.md. Every outcome compares per-token violation
amounts with zeros bitwise (0 = the property holds for that token), so a report points at the
worst token and says by how much.
"""
from __future__ import annotations

import torch

from kernelprop.core.evidence import Outcome
from kernelprop.golden.attention import gather_kv
from kernelprop.golden.indexer import IndexerInputs, cmp_valid, indexer_scores_fp64, \
    indexer_topk_golden
from kernelprop.golden.indexer_bounds import score_error_bound
from kernelprop.golden.attention_inputs import AttnInputs

I1_DOC = ("I1: every entry is -1 or W + j with j a visible compressed slot, no slot twice, -1 only "
          "as a suffix, min(topk, cmp_valid) entries selected; per token: 1 = violated")
I2_DOC = ("I2: with exact scores s and the score-error bound E (docs/bounds-indexer.md), every "
          "selected s_j + E_j >= every unselected visible s_j' - E_j', and consecutive selected "
          "entries in order likewise; per token: the largest excess (0 = within the bound)")
I3_DOC = ("I3: slots with exactly equal exact scores: the smaller slot is selected first (a larger "
          "tied slot never precedes or displaces a smaller one); per token: violating pairs")
I4_DOC = "I4: the rows of the kept tokens are bitwise unchanged (page permutation / other tokens)"
I5_DOC = ("I5: fp64 attention over the kernel's row vs over the golden's row differs by at most "
          "(pi_K(K\\G) + pi_G(G\\K)) * 2 max|v_d| + 2^-40 max|v_d|, where every swapped pair is a "
          "near-tie (|s_j - s_i| <= E_j + E_i) and pi is the softmax share incl. the sink; else 0")


def _row(x: IndexerInputs, impl) -> torch.Tensor:
    return x.call(impl.fn).cpu()


def _visible(x: IndexerInputs) -> torch.Tensor:
    return cmp_valid(x.seqused_kv.cpu(), window=x.window, tokens_per_batch=x.tokens_per_batch,
                     tokens=x.index_q.shape[0])


def i1_flags(row: torch.Tensor, x: IndexerInputs) -> torch.Tensor:
    """[T] 1.0 where the row is not a valid selection (SPEC I1), else 0.0."""
    T, K = x.index_q.shape[0], x.topk
    if row.dim() != 2 or tuple(row.shape) != (T, K) or row.dtype != torch.int32:
        return torch.ones(T)
    valid = _visible(x)
    r = row.long()
    pad = r == -1
    slot = r - x.window
    ok_entry = pad | ((slot >= 0) & (slot < valid[:, None]))
    suffix = (pad.long().cummax(1).values.bool() == pad)           # once -1, always -1
    count_ok = (~pad).sum(1) == torch.clamp(valid, max=K)
    s = torch.where(pad, -1 - torch.arange(K)[None, :], r).sort(1).values
    distinct = (s[:, 1:] != s[:, :-1]).all(1) if K > 1 else torch.ones(T, dtype=torch.bool)
    ok = ok_entry.all(1) & suffix.all(1) & count_ok & distinct
    return (~ok).double()


def _positions(row: torch.Tensor, x: IndexerInputs, slots: int) -> torch.Tensor:
    """[T, slots] position of slot j in the row, `slots + K` where not selected."""
    T, K = row.shape
    big = slots + K
    pos = torch.full((T, slots + 1), big, dtype=torch.long)
    slot = row.long() - x.window
    slot = torch.where((slot >= 0) & (slot < slots), slot, torch.full_like(slot, slots))
    rank = torch.arange(K).expand(T, K)
    pos.scatter_reduce_(1, slot, rank, reduce="amin")
    return pos[:, :slots]


def _scores(x: IndexerInputs):
    s, visible = x.call(indexer_scores_fp64)
    return s.cpu(), visible.cpu(), x.call(score_error_bound).cpu()


def _zeros_outcome(actual: torch.Tensor, doc: str, **metrics) -> Outcome:
    a = torch.where(actual > 0, actual, torch.zeros_like(actual)).double()
    return Outcome(actual=a, expected=torch.zeros_like(a), bound=None, bound_doc=doc,
                   metrics=metrics)


def i1_valid(inputs: dict, impl, params: dict) -> Outcome:
    x = inputs["inputs"]
    return _zeros_outcome(i1_flags(_row(x, impl), x), I1_DOC)


def i2_optimal(inputs: dict, impl, params: dict) -> Outcome:
    x = inputs["inputs"]
    row = _row(x, impl)
    s, visible, E = _scores(x)
    if i1_flags(row, x).any():  # I1's business: judge the valid tokens only
        keep = i1_flags(row, x) == 0
    else:
        keep = torch.ones(row.shape[0], dtype=torch.bool)
    pos = _positions(row, x, s.shape[1])
    chosen = (pos < s.shape[1] + x.topk) & visible
    lo = torch.where(chosen, s + E, torch.inf).amin(1)
    hi = torch.where(visible & ~chosen, s - E, -torch.inf).amax(1)
    excess = torch.where(torch.isfinite(lo) & torch.isfinite(hi), hi - lo, torch.zeros_like(lo))
    # order: entry i+1 may not beat entry i by more than both bounds
    slot = (row.long() - x.window).clamp(0, max(s.shape[1] - 1, 0))
    sel = (row >= 0) & ((row.long() - x.window) < s.shape[1])
    if s.shape[1]:
        sv, ev = s.gather(1, slot), E.gather(1, slot)
        pair = sel[:, 1:] & sel[:, :-1]
        gap = torch.where(pair, (sv[:, 1:] - ev[:, 1:]) - (sv[:, :-1] + ev[:, :-1]), -torch.inf)
        order = gap.amax(1) if gap.shape[1] else torch.full_like(excess, -torch.inf)
        excess = torch.maximum(excess, order)
    return _zeros_outcome(torch.where(keep, excess, torch.zeros_like(excess)), I2_DOC)


def i3_ties(inputs: dict, impl, params: dict) -> Outcome:
    x = inputs["inputs"]
    row = _row(x, impl)
    s, visible, _ = _scores(x)
    n = s.shape[1]
    pos = _positions(row, x, n)
    j = torch.arange(n)
    tie = (s[:, :, None] == s[:, None, :]) & visible[:, :, None] & visible[:, None, :] \
        & (j[:, None] < j[None, :])[None]
    # pair (j < j'): j' selected while j is not, or j' placed before j
    bad = tie & (pos[:, None, :] < pos[:, :, None])
    return _zeros_outcome(bad.sum((1, 2)).double(), I3_DOC)


def i4_rows_unchanged(inputs: dict, impl, params: dict) -> Outcome:
    a, b = inputs["a"], inputs["b"]
    keep = torch.tensor(params.get("keep", list(range(a.index_q.shape[0]))), dtype=torch.long)
    ra, rb = _row(a, impl), _row(b, impl)
    return Outcome(actual=rb[keep].double(), expected=ra[keep].double(), bound=None,
                   bound_doc=I4_DOC)


# %% I5: attention end to end

def compose_indices(row: torch.Tensor, window: int) -> torch.Tensor:
    """A full sparse_indices row: the window slots 0..W-1, then the indexer's row (SPEC 7)."""
    T = row.shape[0]
    win = torch.arange(window, dtype=torch.int32).expand(T, window)
    return torch.cat([win, row.int().cpu()], 1)


def _attention(attn: AttnInputs, sparse_indices: torch.Tensor):
    """fp64 o [T, H, D], the softmax share of every index position [T, H, K], max |v| per token."""
    x = attn.replace(sparse_indices=sparse_indices)
    kv = gather_kv(x.ori_kv, x.ori_block_table, x.cmp_kv, x.cmp_block_table, x.sparse_indices,
                   x.seqused_kv, window=x.window, tokens_per_batch=x.tokens_per_batch)
    rows = kv.rows.double()
    scale = x.q.shape[-1] ** -0.5 if x.softmax_scale is None else float(x.softmax_scale)
    s = torch.einsum("thd,tkd->thk", x.q.double(), rows) * scale
    valid = kv.valid[:, None, :]
    has = valid.any(-1, keepdim=True)
    M = torch.where(has, torch.where(valid, s, -torch.inf).amax(-1, keepdim=True), 0.0)
    e = torch.where(valid, torch.exp(s - M), 0.0)
    denom = e.sum(-1, keepdim=True) + torch.exp(x.attn_sink.double()[None, :, None] - M)
    o = torch.where(has, torch.einsum("thk,tkd->thd", e, rows) / denom, 0.0)
    vmax = torch.where(kv.valid[..., None], rows.abs(), 0.0).amax((1, 2)) if rows.shape[1] \
        else torch.zeros(rows.shape[0], dtype=torch.float64)
    return o, torch.where(has, e / denom, 0.0), vmax


def i5_attention(inputs: dict, impl, params: dict) -> Outcome:
    x, attn = inputs["inputs"], inputs["attn"]
    row_k, row_g = _row(x, impl), x.call(indexer_topk_golden).cpu()
    if i1_flags(row_k, x).any():
        row_k = torch.where(i1_flags(row_k, x)[:, None] > 0, row_g, row_k)  # I1's business
    s, visible, E = _scores(x)
    W, n = x.window, s.shape[1]
    o_k, share_k, vmax_k = _attention(attn, compose_indices(row_k, W))
    o_g, share_g, vmax_g = _attention(attn, compose_indices(row_g, W))
    pos_k, pos_g = _positions(row_k, x, n), _positions(row_g, x, n)
    in_k, in_g = pos_k < n + x.topk, pos_g < n + x.topk
    only_k, only_g = in_k & ~in_g, in_g & ~in_k                      # [T, slots]
    near = (s[:, :, None] - s[:, None, :]).abs() <= E[:, :, None] + E[:, None, :]
    pairs = only_k[:, :, None] & only_g[:, None, :]
    legit = ~(pairs & ~near).any((1, 2))                             # [T]
    # softmax share of the swapped positions (window first, then the row's positions)
    mk = torch.cat([torch.zeros(x.index_q.shape[0], W, dtype=torch.bool),
                    _row_member(row_k, only_k, W)], 1)
    mg = torch.cat([torch.zeros(x.index_q.shape[0], W, dtype=torch.bool),
                    _row_member(row_g, only_g, W)], 1)
    pi = (share_k * mk[:, None, :]).sum(-1) + (share_g * mg[:, None, :]).sum(-1)   # [T, H]
    vmax = torch.maximum(vmax_k, vmax_g)[:, None, None]
    bound = torch.where(legit[:, None, None], pi[..., None] * 2 * vmax, 0.0) + 2.0 ** -40 * vmax
    return Outcome(actual=o_k, expected=o_g, bound=bound.expand_as(o_k).contiguous(),
                   bound_doc=I5_DOC, metrics={"swapped_tokens": int((only_k.any(1)).sum())})


def _row_member(row: torch.Tensor, member: torch.Tensor, window: int) -> torch.Tensor:
    """[T, K] whether each row position names a slot in `member` [T, slots]."""
    slot = row.long() - window
    ok = (slot >= 0) & (slot < member.shape[1])
    got = member.gather(1, slot.clamp(0, max(member.shape[1] - 1, 0))) if member.shape[1] \
        else torch.zeros_like(ok)
    return ok & got


def attention_for(x: IndexerInputs, seed: int, *, heads: int = 2, head_dim: int = 8) -> AttnInputs:
    """Attention inputs over the indexer's compressed pages (same table, same page shape) and a
    window pool, values from `seed`; sparse_indices is a placeholder (I5 composes it)."""
    gen = torch.Generator().manual_seed(seed)
    T, B = x.index_q.shape[0], x.seqused_kv.shape[0]
    N, BS = x.index_k.shape[0], x.index_k.shape[1]
    wblocks = -(-x.window // BS)
    ori_pages = B * wblocks
    return AttnInputs(
        q=torch.randn(T, heads, head_dim, generator=gen).to(torch.bfloat16),
        ori_kv=torch.randn(ori_pages, BS, head_dim, generator=gen).to(torch.bfloat16),
        ori_block_table=torch.arange(ori_pages, dtype=torch.int32).reshape(B, wblocks),
        cmp_kv=torch.randn(N, BS, head_dim, generator=gen).to(torch.bfloat16),
        cmp_block_table=x.cmp_block_table.cpu(), sparse_indices=torch.full((T, 1), -1, dtype=torch.int32),
        seqused_kv=x.seqused_kv.cpu(), attn_sink=torch.randn(heads, generator=gen),
        window=x.window, tokens_per_batch=x.tokens_per_batch)
