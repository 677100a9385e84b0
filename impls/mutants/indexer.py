"""Planted indexer bugs (SPEC section 7) and a torch base, for the kill matrix (`kp mutants`).

Every mutant is the base with one realistic bug, named by the knob it flips in `_topk`: selection
order, tie rule, score arithmetic (relu, weights order, bf16 scores, another token's weights),
visibility (cmp_valid off by one, window ignored) and paging (table ignored, page / row swapped),
output encoding (W offset, pad value, one slot short).
"""
from __future__ import annotations

import torch

from kernelprop.golden.indexer import IndexerRecipe
from kernelprop.kernels.sparse_indexer import check_indexer_args


def indexer_scores(q, k, table, weights, seqused, *, window, S, knobs):
    T, H, D = q.shape
    BS = k.shape[1]
    slots = table.shape[1] * BS
    t = torch.arange(T)
    used = seqused.long()[t // S] - S + 1 + t % S
    win = used.clamp(max=window).clamp_min(0)
    valid = (used - (0 if knobs.get("ignore_window") else win)).clamp_min(0)
    valid = valid + knobs.get("valid_shift", 0)
    j = torch.arange(slots)
    visible = j[None, :] < valid[:, None]
    b = t // S
    col, row = j // BS, j % BS
    if knobs.get("swap_page_row"):
        col, row = (j % BS) % table.shape[1], (j // BS) % BS
    page = table.long()[b[:, None], col[None, :].clamp_max(table.shape[1] - 1)]
    if knobs.get("identity_pages"):
        page = (b[:, None] * table.shape[1] + col[None, :]).clamp_max(k.shape[0] - 1)
    page = torch.where(visible, page.clamp(0, k.shape[0] - 1), torch.zeros_like(page))
    rows = k[page, row[None, :].expand_as(page)].double()
    dots = torch.einsum("thd,tjd->thj", q.double(), rows).float()
    w = weights.float()
    if knobs.get("weights_reversed"):
        w = w.flip(1)
    if knobs.get("token0_weights"):
        w = w[:1].expand_as(w)
    acc = torch.zeros(T, slots)
    for h in range(H):
        d = dots[:, h] if knobs.get("no_relu") else torch.relu(dots[:, h])
        acc = acc + w[:, h, None] * d
    if knobs.get("bf16_scores"):
        acc = acc.to(torch.bfloat16).float()
    return acc, visible


def select_topk(scores, visible, *, window, topk, knobs):
    T, n = scores.shape
    if knobs.get("ascending"):
        key = torch.where(visible, -scores, -torch.inf)
    else:
        key = torch.where(visible, scores, -torch.inf)
    if knobs.get("ties_large"):  # stable sort over reversed slots: ties go to the larger slot
        order = n - 1 - torch.sort(key.flip(1), dim=1, descending=True, stable=True).indices
    else:
        order = torch.sort(key, dim=1, descending=True, stable=True).indices
    k = max(min(topk + knobs.get("topk_delta", 0), n), 0)
    chosen = order[:, :k]
    count = visible.sum(1, keepdim=True).clamp(max=k)
    if knobs.get("slot_order"):  # the right set, written in slot order
        pos = torch.arange(k)[None, :]
        chosen = torch.where(pos < count, chosen, torch.full_like(chosen, n)).sort(1).values
    pos = torch.arange(k)[None, :]
    offset = 0 if knobs.get("no_window_offset") else window
    out = torch.where(pos < count, chosen + offset, torch.full_like(chosen, knobs.get("pad", -1)))
    if k < topk:
        out = torch.cat([out, torch.full((T, topk - k), knobs.get("pad", -1), dtype=out.dtype)], 1)
    return out.int()


def _topk(index_q, index_k, cmp_block_table, weights, seqused_kv, *, window, tokens_per_batch, topk,
          recipe=None, **knobs):
    if recipe is not None and not isinstance(recipe, IndexerRecipe):
        raise TypeError(f"recipe must be an IndexerRecipe, got {type(recipe).__name__}")
    check_indexer_args(index_q, index_k, cmp_block_table, weights, seqused_kv, window,
                       tokens_per_batch, topk)
    dev = index_q.device
    scores, visible = indexer_scores(index_q.cpu(), index_k.cpu(), cmp_block_table.cpu(), weights.cpu(),
                              seqused_kv.cpu(), window=window, S=tokens_per_batch, knobs=knobs)
    return select_topk(scores, visible, window=window, topk=topk, knobs=knobs).to(dev)


def _make(name: str, **knobs):
    def fn(*args, **kwargs):
        return _topk(*args, **kwargs, **knobs)

    fn.__name__ = fn.__qualname__ = name
    fn.accepts_recipe = True
    fn.recipe = IndexerRecipe()
    return fn


reference = _make("reference")
ascending = _make("ascending", ascending=True)
ties_large = _make("ties_large", ties_large=True)
slot_order = _make("slot_order", slot_order=True)
no_relu = _make("no_relu", no_relu=True)
weights_reversed = _make("weights_reversed", weights_reversed=True)
bf16_scores = _make("bf16_scores", bf16_scores=True)
token0_weights = _make("token0_weights", token0_weights=True)
cmp_valid_plus_one = _make("cmp_valid_plus_one", valid_shift=1)
window_ignored = _make("window_ignored", ignore_window=True)
identity_pages = _make("identity_pages", identity_pages=True)
swap_page_row = _make("swap_page_row", swap_page_row=True)
no_window_offset = _make("no_window_offset", no_window_offset=True)
pad_zero = _make("pad_zero", pad=0)
one_short = _make("one_short", topk_delta=-1)

IDX = "impls/mutants/indexer.py"


def _catalogue():
    from kernelprop.impls.mutants import Control, Mutant

    def m(fn, description, killers):
        return Mutant(fn, "indexer_topk", f"{IDX}:{fn}", description, killers)

    mutants = [
        m("ascending", "selection by ascending score (selection order)", ("I2",)),
        m("slot_order", "the right slots, written in slot order instead of by score", ("I2",)),
        m("ties_large", "exact ties broken toward the larger slot", ("I3",)),
        m("no_relu", "relu missing: negative head dots subtract", ("I2",)),
        m("weights_reversed", "head weights applied in reversed head order", ("I2",)),
        m("bf16_scores", "scores rounded to bf16 before the selection", ("I2",)),
        m("token0_weights", "every token uses token 0's head weights", ("I2", "I4")),
        m("cmp_valid_plus_one", "visibility off by one: slot cmp_valid is selectable", ("I1",)),
        m("window_ignored", "cmp_valid = used (the window's share not subtracted)", ("I1",)),
        m("identity_pages", "block table ignored: page = b * blocks + column", ("I2", "I4")),
        m("swap_page_row", "page and row of a slot swapped (j % BS as column)", ("I2",)),
        m("no_window_offset", "writes j instead of W + j", ("I1",)),
        m("pad_zero", "pads with 0 instead of -1", ("I1",)),
        m("one_short", "selects topk - 1 slots", ("I1",)),
    ]
    controls = [
        Control("bundled_indexer", "indexer_topk", "kernelprop.kernels.sparse_indexer:sparse_indexer_topk",
                "the bundled Triton indexer"),
        Control("catalogue_base_indexer", "indexer_topk", f"{IDX}:reference", "the mutants' torch base"),
    ]
    return mutants, controls


MUTANTS, CONTROLS = _catalogue()
