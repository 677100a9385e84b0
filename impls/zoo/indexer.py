"""Zoo: public sparse top-k indexer bugs (survey bugs 15-17), each reproduced on the torch base of
impls/mutants/indexer.py (its score and selection steps), from the thread's description. `ZOO` is
the registry the kill matrix runs (`kp mutants --zoo`).
"""
from __future__ import annotations

import os

import torch

from kernelprop.golden.indexer import IndexerRecipe
from kernelprop.impls.mutants.indexer import indexer_scores, select_topk
from kernelprop.impls.zoo import ZooEntry
from kernelprop.kernels.sparse_indexer import check_indexer_args

HERE = "impls/zoo/indexer.py"
SGL = "https://github.com/sgl-project/sglang"


def _indexer(select):
    """An indexer callable (the bundled signature) whose selection step is `select(scores,
    visible, window, topk)`; scores [T, slots] fp32, visible [T, slots] bool."""
    def fn(index_q, index_k, cmp_block_table, weights, seqused_kv, *, window, tokens_per_batch,
           topk, recipe=None):
        if recipe is not None and not isinstance(recipe, IndexerRecipe):
            raise TypeError(f"recipe must be an IndexerRecipe, got {type(recipe).__name__}")
        check_indexer_args(index_q, index_k, cmp_block_table, weights, seqused_kv, window,
                           tokens_per_batch, topk)
        scores, visible = indexer_scores(index_q.cpu(), index_k.cpu(), cmp_block_table.cpu(),
                                  weights.cpu(), seqused_kv.cpu(), window=window,
                                  S=tokens_per_batch, knobs={})
        return select(scores, visible, window, topk, table=cmp_block_table.cpu(),
                      args=(index_q, index_k, weights, seqused_kv, tokens_per_batch)) \
            .to(index_q.device)

    fn.accepts_recipe = True
    fn.recipe = IndexerRecipe()
    return fn


def _tie_buffer(scores, visible, window, topk, **_):
    """sglang PR #30645: the DSA top-k v2 kernel keeps the entries tied at the selection
    threshold in a buffer of fixed capacity (kMaxNumTie = 1024 for topk 2048); past it, the
    missing entries are written as -1 inside the first min(seq_len, topk) outputs (FA3 then
    reads slot -1). Reproduced at the suite's sizes with the same ratio, capacity topk // 2:
    entries above the threshold value, then at most that many tied at it (smallest slots
    first), the rest -1. Trigger: more than topk // 2 slots tied at the k-th score (ReLU-dead
    all-zero rows, repeated keys)."""
    T, n = scores.shape
    out = select_topk(scores, visible, window=window, topk=topk, knobs={}).long()
    capacity = max(1, topk // 2)
    key = torch.where(visible, scores, -torch.inf)
    k = min(topk, n)
    if k == 0:
        return out.int()
    kth = key.sort(1, descending=True).values[:, k - 1:k]                  # [T, 1]
    slot = (out - window).clamp(min=0, max=max(n - 1, 0))
    chosen = out >= window
    tied = chosen & (key.gather(1, slot) == kth) & torch.isfinite(kth)
    rank = tied.long().cumsum(1)                                          # among the tied
    overflow = tied & (rank > capacity)
    return torch.where(overflow, -1, out).int()


def _ks_missing(scores, visible, window, topk, *, table, args):
    """sglang PR #12583: the top-k kernel was not passed `ks` (each token's start offset in the
    ragged key buffer), so every token's slots were read from the start of the buffer, i.e. the
    first sequence's keys, while its length `ke - ks` stayed its own. Reproduced on the paged
    contract: every token's scores come from batch 0's block-table row, visibility from its own
    batch. Trigger: B >= 2 (with different pages)."""
    index_q, index_k, weights, seqused_kv, S = args
    first_row = table[:1].expand_as(table)
    wrong, _ = indexer_scores(index_q.cpu(), index_k.cpu(), first_row, weights.cpu(), seqused_kv.cpu(),
                       window=window, S=S, knobs={})
    return select_topk(wrong, visible, window=window, topk=topk, knobs={})


def _unstable_ties(scores, visible, window, topk, **_):
    """sglang PR #24654: topk.cu is not stable under ties near the selection boundary, so two
    tensor-parallel ranks select different top-k from the same scores. Reproduced: exact ties
    broken by a run-dependent order (the slots are shuffled before a stable sort). Trigger:
    exact score ties (the "ties" data kind), run twice."""
    n = scores.shape[1]
    seed = int.from_bytes(os.urandom(4), "little")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    key = torch.where(visible, scores, -torch.inf)[:, perm]
    order = perm[torch.sort(key, dim=1, descending=True, stable=True).indices]
    k = min(topk, n)
    count = visible.sum(1, keepdim=True).clamp(max=k)
    pos = torch.arange(k)[None, :]
    out = torch.where(pos < count, order[:, :k] + window, torch.full_like(order[:, :k], -1))
    if k < topk:
        out = torch.cat([out, torch.full((out.shape[0], topk - k), -1, dtype=out.dtype)], 1)
    return out.int()


zoo_sglang_30645_tie_buffer = _indexer(_tie_buffer)
zoo_sglang_12583_ks_missing = _indexer(_ks_missing)
zoo_sglang_24654_unstable_ties = _indexer(_unstable_ties)


def _entry(name, bug, threads, mechanism, trigger, killers, survives=""):
    return ZooEntry(name=name, bug=bug, threads=tuple(threads), kind="indexer_topk",
                    mechanism=mechanism, target=f"{HERE}:{name}", trigger=trigger,
                    expected_killers=tuple(killers), survives=survives)


ZOO = [
    _entry("zoo_sglang_30645_tie_buffer", 15, [f"{SGL}/pull/30645"],
           "tie buffer of fixed capacity (topk / 2): overflowing ties written as -1 mid-row",
           "more than topk / 2 slots tied at the k-th score (ReLU-dead rows, repeated keys)",
           ("I1",)),
    _entry("zoo_sglang_12583_ks_missing", 16, [f"{SGL}/pull/12583"],
           "ragged start offset ks not passed: every token reads the first sequence's keys",
           "B >= 2", ("I2",)),
    _entry("zoo_sglang_24654_unstable_ties", 17, [f"{SGL}/pull/24654"],
           "unstable tie-breaking: ties at the boundary resolved in a run-dependent order",
           "exact ties (ties data kind), reruns", ("I3", "I4")),
]

CONTROLS: list = []
