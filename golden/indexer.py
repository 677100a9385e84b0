"""Sparse indexer top-k (SPEC section 7): recipe, domain, case, inputs, golden and fp64 truth.

score_tj = sum over h (in order) of weights[t, h] * relu(fp32(index_q[t, h] . k_j)), fp32
throughout, for the visible compressed slots j < cmp_valid(t) (SPEC section 2's visibility). The
row: W + j for the topk highest scores, by descending score, exact ties to the smaller j; -1 after
the last selected slot. Selection = a stable sort on (-score, j) (torch.sort(stable=True)).

The golden mirrors the kernel's roundings per step: each head's dot is the fp64 dot of the bf16
rows (exact: products of bf16 have 16 significant bits, sums of D of them stay exact in fp64 for
D <= 2^20 at the magnitudes drawn) rounded once to fp32, relu, then the weighted sum over heads in
head order with an fp32 rounding per product and per addition. The kernel's dot sums in another
order, so its scores differ by the dot error bound (golden/indexer_bounds.py, docs/bounds-indexer.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from kernelprop.golden.domain import DomainValue, most
from kernelprop.golden.values import CaseValue, TensorArgs

INDEXER_DATA = ("normal", "ties", "negative_weights")


@dataclass(frozen=True)
class IndexerRecipe:
    """The indexer's numerics: scores in fp32 (the contract's only score path)."""

    score_dtype: str = "fp32"

    def __post_init__(self) -> None:
        if self.score_dtype != "fp32":
            raise ValueError(f"score_dtype must be 'fp32', got {self.score_dtype!r}")


@dataclass(frozen=True)
class IndexerDomain(DomainValue):
    """What an indexer implementation supports: max index heads, max topk (None: any)."""

    max_heads: Optional[int] = most()
    max_topk: Optional[int] = most()

    def fit(self, case: "IndexerCase") -> "IndexerCase":
        changes = {}
        if self.max_heads is not None and case.heads > self.max_heads:
            changes["heads"] = self.max_heads
        if self.max_topk is not None and case.topk > self.max_topk:
            changes["topk"] = self.max_topk
        return case.replace(**changes) if changes else case


@dataclass(frozen=True)
class IndexerCase(CaseValue):
    """One indexer example; every tensor follows from these fields and `seed`."""

    seed: int = 0
    batches: int = 2
    tokens_per_batch: int = 2
    heads: int = 2                  # index heads Hi
    head_dim: int = 16              # index dim Di
    page_size: int = 4
    window: int = 4
    topk: int = 6
    max_cmp_len: int = 12           # compressed cache length upper bound per batch
    min_cmp_len: int = 0            # ... and lower bound (the last token of a batch sees this many)
    spare_pages: int = 1
    data: str = "normal"
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("batches", "tokens_per_batch", "heads", "head_dim", "page_size", "window",
                     "topk"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_cmp_len < 0 or self.spare_pages < 0 or not 0 <= self.min_cmp_len <= self.max_cmp_len:
            raise ValueError("need 0 <= min_cmp_len <= max_cmp_len and spare_pages >= 0")
        if self.data not in INDEXER_DATA:
            raise ValueError(f"data must be one of {INDEXER_DATA}, got {self.data!r}")

    @property
    def tokens(self) -> int:
        return self.batches * self.tokens_per_batch

    def size(self) -> tuple[Optional[int], str]:
        """(T * K index positions, "T=.. H=.. D=.. K=..") for the kill matrix (K = window + topk)."""
        T, K = self.tokens, self.window + self.topk
        return T * K, f"T={T} H={self.heads} D={self.head_dim} K={K}"



@dataclass(frozen=True)
class IndexerInputs(TensorArgs):
    """The indexer's arguments (SPEC section 7) as one value."""

    index_q: torch.Tensor
    index_k: torch.Tensor
    cmp_block_table: torch.Tensor
    weights: torch.Tensor
    seqused_kv: torch.Tensor
    window: int
    tokens_per_batch: int
    topk: int

    TENSORS = ("index_q", "index_k", "cmp_block_table", "weights", "seqused_kv")

    def kwargs(self) -> dict:
        return dict(window=self.window, tokens_per_batch=self.tokens_per_batch, topk=self.topk)

    @classmethod
    def from_state_dict(cls, state: dict) -> "IndexerInputs":
        return cls(**{n: state[n] for n in cls.TENSORS}, window=int(state["window"]),
                   tokens_per_batch=int(state["tokens_per_batch"]), topk=int(state["topk"]))

    def truth(self) -> torch.Tensor:
        """The selection on fp64 scores (ties to the smaller slot): the exact answer."""
        return self.call(indexer_topk_fp64)

    def describe(self) -> dict:
        from kernelprop.core.plain import tensor_summary

        desc = {n: tensor_summary(getattr(self, n)) for n in self.TENSORS}
        for n in ("index_q", "index_k"):
            desc[n].pop("values", None)
        desc.update(self.kwargs())
        desc["cmp_valid_per_token"] = [int(v) for v in cmp_valid(self.seqused_kv, window=self.window,
                                                                 tokens_per_batch=self.tokens_per_batch,
                                                                 tokens=self.index_q.shape[0])]
        return desc


def cmp_valid(seqused_kv: torch.Tensor, *, window: int, tokens_per_batch: int,
              tokens: int) -> torch.Tensor:
    """[T] int64 visible compressed slots per token (SPEC section 2)."""
    t = torch.arange(tokens, device=seqused_kv.device)
    used = seqused_kv.long()[t // tokens_per_batch] - tokens_per_batch + 1 + t % tokens_per_batch
    win = torch.clamp(used, max=window).clamp_min(0)
    return (used - win).clamp_min(0)


def make_indexer_inputs(case: IndexerCase) -> IndexerInputs:
    """Tensors from the case's seed: permuted pages with spare ones, per-batch lengths, weights of
    both signs; data "ties" repeats a few key rows so that exact score ties occur."""
    gen = torch.Generator().manual_seed(case.seed)
    B, S, H, D, BS = case.batches, case.tokens_per_batch, case.heads, case.head_dim, case.page_size
    T = case.tokens
    cmp_len = torch.randint(case.min_cmp_len, case.max_cmp_len + 1, (B,), generator=gen)
    seqused = cmp_len + case.window                     # the last token sees cmp_len slots
    blocks = max(1, -(-case.max_cmp_len // BS))
    pages = B * blocks + case.spare_pages
    table = torch.randperm(pages, generator=gen)[:B * blocks].reshape(B, blocks)
    index_k = torch.randn(pages, BS, D, generator=gen)
    if case.data == "ties":  # every slot's row copies one of a few distinct rows
        distinct = torch.randn(3, D, generator=gen)
        index_k = distinct[torch.randint(0, 3, (pages, BS), generator=gen)]
    index_q = torch.randn(T, H, D, generator=gen)
    weights = torch.rand(T, H, generator=gen) + 0.1
    if case.data == "negative_weights":
        weights = weights * torch.where(torch.rand(T, H, generator=gen) < 0.5, -1.0, 1.0)
    dev = case.device
    return IndexerInputs(index_q=index_q.to(torch.bfloat16).to(dev),
                         index_k=index_k.to(torch.bfloat16).to(dev),
                         cmp_block_table=table.int().to(dev), weights=weights.float().to(dev),
                         seqused_kv=seqused.int().to(dev), window=case.window,
                         tokens_per_batch=S, topk=case.topk)


def gather_index_k(index_k, cmp_block_table, seqused_kv, *, window, tokens_per_batch, slots):
    """[T, slots, Di] the key row of every compressed slot j < slots per token (page ids of
    invisible slots are clamped: their rows are masked by `visible`), and [T, slots] visible."""
    T = seqused_kv.shape[0] * tokens_per_batch
    valid = cmp_valid(seqused_kv, window=window, tokens_per_batch=tokens_per_batch, tokens=T)
    j = torch.arange(slots, device=index_k.device)
    visible = j[None, :] < valid[:, None]
    BS = index_k.shape[1]
    b = torch.arange(T, device=index_k.device) // tokens_per_batch
    col = (j // BS).clamp_max(cmp_block_table.shape[1] - 1)
    page = cmp_block_table.long()[b[:, None], col[None, :]]
    page = torch.where(visible, page, torch.zeros_like(page))
    rows = index_k[page, (j % BS)[None, :]]
    return rows, visible


def slot_count(x_shape_k, table) -> int:
    """The flat slots a block table reaches: its blocks per row times the slots per block."""
    return table.shape[1] * x_shape_k


def select_topk(scores: torch.Tensor, visible: torch.Tensor, *, window: int, topk: int):
    """[T, topk] int32: W + j by descending score, ties to the smaller j (stable sort), -1 after."""
    T, n = scores.shape
    key = torch.where(visible, scores, torch.full_like(scores, -torch.inf))
    order = torch.sort(key, dim=1, descending=True, stable=True).indices
    count = visible.sum(1, keepdim=True)
    k = min(topk, n)
    chosen = order[:, :k]
    pos = torch.arange(k, device=scores.device)[None, :]
    out = torch.where(pos < count, chosen + window, torch.full_like(chosen, -1))
    if k < topk:
        out = torch.cat([out, torch.full((T, topk - k), -1, dtype=out.dtype, device=out.device)], 1)
    return out.int()


def indexer_scores_golden(index_q, index_k, cmp_block_table, weights, seqused_kv, *, window,
                          tokens_per_batch, topk=None) -> tuple[torch.Tensor, torch.Tensor]:
    """[T, slots] fp32 scores (the kernel's roundings, module docstring) and [T, slots] visible."""
    slots = slot_count(index_k.shape[1], cmp_block_table)
    rows, visible = gather_index_k(index_k, cmp_block_table, seqused_kv, window=window,
                                   tokens_per_batch=tokens_per_batch, slots=slots)
    dots = torch.einsum("thd,tjd->thj", index_q.double(), rows.double()).float()
    acc = torch.zeros(dots.shape[0], dots.shape[2], dtype=torch.float32, device=dots.device)
    w = weights.float()
    for h in range(dots.shape[1]):  # head order: one fp32 product and one fp32 addition each
        acc = acc + w[:, h, None] * torch.relu(dots[:, h])
    return acc, visible


def indexer_scores_fp64(index_q, index_k, cmp_block_table, weights, seqused_kv, *, window,
                          tokens_per_batch, topk=None) -> tuple[torch.Tensor, torch.Tensor]:
    """[T, slots] exact (fp64) scores and visibility."""
    slots = slot_count(index_k.shape[1], cmp_block_table)
    rows, visible = gather_index_k(index_k, cmp_block_table, seqused_kv, window=window,
                                   tokens_per_batch=tokens_per_batch, slots=slots)
    dots = torch.einsum("thd,tjd->thj", index_q.double(), rows.double())
    return (weights.double()[:, :, None] * torch.relu(dots)).sum(1), visible


def indexer_topk_golden(index_q, index_k, cmp_block_table, weights, seqused_kv, *, window,
                        tokens_per_batch, topk, recipe=None):
    scores, visible = indexer_scores_golden(index_q, index_k, cmp_block_table, weights, seqused_kv,
                                            window=window, tokens_per_batch=tokens_per_batch)
    return select_topk(scores, visible, window=window, topk=topk)


def indexer_topk_fp64(index_q, index_k, cmp_block_table, weights, seqused_kv, *, window,
                      tokens_per_batch, topk, recipe=None):
    scores, visible = indexer_scores_fp64(index_q, index_k, cmp_block_table, weights, seqused_kv,
                                          window=window, tokens_per_batch=tokens_per_batch)
    return select_topk(scores, visible, window=window, topk=topk)
