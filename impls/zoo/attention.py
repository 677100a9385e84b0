"""Zoo: public sparse/paged/split-KV decode attention bugs (survey bugs 1-14 and "see also"),
each reproduced on the planted-bug base of impls/mutants/attention.py (SparseAttention, its
split-KV subclass), from the thread's description. Every class docstring links its thread(s) and
says what triggers the bug; `ZOO` (bottom) is the registry the kill matrix runs (`kp mutants
--zoo`), with the out-of-scope bugs and why.
"""
from __future__ import annotations

import math
import os

import torch

from kernelprop.golden.attention_inputs import AttnRecipe
from kernelprop.impls.mutants.attention import (FixedTile64, SparseAttention, SplitKVAttention,
                                                TableWidthAsStride, UnmaskedValueRows, exp_as_gpu)
from kernelprop.impls.zoo import ZooControl, ZooEntry

HERE = "impls/zoo/attention.py"


class ShortSplitFloor(SplitKVAttention):
    """sglang #2465 / PR #2479: the Triton decode kernel fails with num_kv_splits = 2 "for short
    prompts". Mechanism as reproduced (inferred, the PR states none): keys per split from a floor
    division, floor(n / kv_splits) rounded up to split_align, so splits * length < n drops the
    tail keys, and a prompt shorter than kv_splits (length 0) loses every key. Trigger: a split
    recipe with a valid-key count that kv_splits does not divide, or fewer keys than splits."""

    def split_length(self, n, recipe):
        per = n // recipe.kv_splits
        return -(-per // recipe.split_align) * recipe.split_align


class UnwrittenSplitScratch(SplitKVAttention):
    """vLLM PR #47188 (closed): stage 1 writes the partials (o_i, lse_i) of the splits that hold
    keys into a workspace from torch.empty; stage 2 merges every split, also the empty ones stage
    1 never wrote, so their weight exp(lse_i - X) and o_i are whatever the workspace held.
    Trigger: more splits than valid keys (a short window) and a workspace not zero: fresh
    allocations are often zero-filled pages, which is why the bug was intermittent."""

    def merge_splits(self, parts, sink):
        o_i = torch.stack([p[0] for p in parts], -2)                    # [T, H, n, D]
        lse = torch.stack([p[1] for p in parts], -1)                    # [T, H, n]
        live = torch.stack([p[2] for p in parts], -1)
        o_i = torch.where(live[..., None], o_i, torch.empty_like(o_i))  # the stage-1 workspace
        lse = torch.where(live, lse, torch.empty_like(lse))
        X = lse.amax(-1)
        w = exp_as_gpu(lse - X[..., None])
        acc, total = (w[..., None] * o_i).sum(-2), w.sum(-1)
        seen = live.any(-1)
        return torch.where(seen[..., None], acc / (total + self.sink_term(sink, X))[..., None], 0.0)


class Block16Fixed(FixedTile64):
    """The base over positional blocks of 16 index positions, no recipe keyword (bug 4's base)."""

    recipe = AttnRecipe(tile=16)


class LeadingMaskedBlockNaN(Block16Fixed):
    """vLLM #48364 / PR #48366: xpu_mla_sparse returns NaN when the first BLOCK_N = 16 top-k
    entries of a row are all masked. Its merge does not skip a block without a valid entry:
    m' = max(m, -inf), alpha = exp2(m - m'), beta = exp2(-inf - m'); while the running max m is
    still -inf these are exp2(-inf - -inf) = NaN and stay in L and O for good (a later empty block
    is harmless: m is finite, alpha = 1, beta = 0). Trigger: a masked (padded or invisible) first
    block followed by valid entries; the upstream test padded only at the back."""

    def merge(self, M, L, O, m, live, l, o):
        m = torch.where(live, m, -math.inf)
        M_new = torch.maximum(M, m)
        a, b = exp_as_gpu(M - M_new), exp_as_gpu(m - M_new)
        return M_new, a * L + b * l, a[..., None] * O + b[..., None] * o


class NullSlotGather(SparseAttention):
    """vLLM #57156 (open): the decode kernel gathers slot 0 (the null block) for invalid indices
    and relies on the softmax's p = 0 to drop them; p = 0 times a NaN that capture batches left in
    slot 0 is NaN. Trigger: a row with an invalid index while pool row 0 holds NaN (P10's
    canaries: row 0 unreached by every valid index)."""

    def mask_keys(self, keys, valid):
        return keys


class ManyRowsUnzeroedScratch(SparseAttention):
    """sglang PR #39288 (open): calls with more than 64 query rows take another (prefill) path,
    whose page-split scratch is not zeroed: masked candidates keep what the scratch held, and p = 0
    times NaN is NaN. Reproduced: for T > 64 tokens the candidate rows are gathered into a
    torch.empty workspace, only valid lanes written. Trigger: > 64 query rows (a count
    threshold) and a workspace that holds NaN (poisoned allocations)."""

    ROWS_SWITCH = 64

    def mask_keys(self, keys, valid):
        if keys.shape[0] <= self.ROWS_SWITCH:
            return super().mask_keys(keys, valid)
        scratch = torch.empty_like(keys)
        return torch.where(valid[..., None], keys, scratch)


class WindowValuesUnmasked(UnmaskedValueRows):
    """vLLM PR #30887: the Triton attention kernels mask the scores of keys outside the sliding
    window but load the V blocks there unmasked, which may hold NaN: p = 0 times NaN. Reproduced:
    every lane's row loaded at its address (clamped into the table), only the scores masked.
    Trigger: a lane outside the visible window or cache whose row holds NaN."""


class PageStrideIgnored(SparseAttention):
    """vLLM #47783 / PR #47493: after vLLM packed the KV cache per block, the FlashInfer sparse MLA
    path addressed rows as base + slot * token_stride, slot = page * page_size + row: it assumes
    page stride = page_size x row stride. Trigger: a pool view whose pages are padded (page stride
    != page_size x row stride)."""

    def read(self, pool, table, b, slot, ok):
        BS, D = pool.shape[1], pool.shape[2]
        if table.shape[1] == 0:
            return torch.zeros(*slot.shape, D, device=pool.device)
        slot = torch.where(ok, slot, 0)
        flat = torch.where(ok, self.page(table, b, slot // BS, pool.shape[0]) * BS + slot % BS, 0)
        rows = pool.as_strided((pool.shape[0] * BS, D), (pool.stride(1), pool.stride(2)))
        return rows[flat].float()


def _wrap_int32(x: torch.Tensor) -> torch.Tensor:
    """x mod 2^32 read as a signed int32 (int64 arithmetic in, int32 wraparound out)."""
    return ((x + 2**31) % 2**32) - 2**31


class PageOffsetInt32(SparseAttention):
    """flashinfer #3130 / PR #3136: MLA decode returns zeros for large page indices:
    indices[q] * ckv_stride_page is formed in 32 bits and wraps at page ~1M with stride 16384.
    Reproduced: the element offset page * page_stride wraps as an int32. Trigger: a pool of more
    than 2^31 elements with used pages at its end (8 GiB bf16: a GPU-nightly far-pages class)."""

    def read(self, pool, table, b, slot, ok):
        BS, D = pool.shape[1], pool.shape[2]
        if table.shape[1] == 0:
            return torch.zeros(*slot.shape, D, device=pool.device)
        slot = torch.where(ok, slot, 0)
        page = torch.where(ok, self.page(table, b, slot // BS, pool.shape[0]), 0)
        s0, s1, s2 = pool.stride()
        offset = _wrap_int32(page * s0) + (slot % BS) * s1                  # element offsets
        size = (pool.shape[0] - 1) * s0 + (BS - 1) * s1 + (D - 1) * s2 + 1
        memory = pool.as_strided((size,), (1,))                              # the pool's span
        offset = offset.clamp(0, size - 1 - (D - 1) * s2)
        return memory[offset[..., None] + torch.arange(D, device=pool.device) * s2].float()


class QueryOffsetInt32(SparseAttention):
    """sglang #20389 (open): Triton attention faults when qo_indptr[i] * stride_qbs exceeds 2^31
    (DeepSeek-V3 past ~131k tokens). Reproduced: token t's q is read at the int32-wrapped offset
    t * q.stride(0). Trigger: T x H x D > 2^31 (a GPU-nightly size)."""

    def online_softmax(self, q, keys, valid, scale, sink, recipe):
        T = q.shape[0]
        t = torch.arange(T, device=q.device)
        wrapped = _wrap_int32(t * q.shape[1] * q.shape[2]) // (q.shape[1] * q.shape[2])
        return super().online_softmax(q[wrapped.clamp(0, max(T - 1, 0))], keys, valid, scale,
                                      sink, recipe)


class FiniteSentinel(SparseAttention):
    """flashinfer #4450 (see also #4267): paged decode returns zeros, with a wrong LSE, for valid
    finite logits below -5e4, because its `-inf` was the finite -5e4: masked lanes and the
    initial running max sit at -5e4, so a row whose every score is below it keeps the running max
    -5e4, and exp(s + 5e4) underflows to 0. Trigger: scores below -5e4 (a very negative row)."""

    NEG = -5e4

    def tile_parts(self, q, keys, valid, scale, sink, recipe):
        K = keys.shape[1]
        for start, stop in self.tile_bounds(K, max(K, 1) if recipe.tile is None else recipe.tile):
            k_t = keys[:, start:stop]
            s = self.scores(q, k_t, scale).masked_fill(~valid[:, None, start:stop], self.NEG)
            m = s.amax(-1) if stop > start else s.new_full(s.shape[:-1], self.NEG)
            e = exp_as_gpu(s - m[..., None])
            p = self.round_p(e, recipe)
            yield m, torch.ones_like(m, dtype=torch.bool), self.tile_sum(p, e, recipe), \
                self.pv(p, k_t, recipe)

    def online_softmax(self, q, keys, valid, scale, sink, recipe):
        T, H, D = q.shape
        M = torch.full((T, H), self.NEG, device=q.device)
        L = torch.zeros(T, H, device=q.device)
        O = torch.zeros(T, H, D, device=q.device)
        for part in self.tile_parts(q, keys, valid, scale, sink, recipe):
            M, L, O = self.merge(M, L, O, *part)
        return M, L, O


class TailLanesCounted(SparseAttention):
    """flashinfer #3716: CuteDSL paged decode (is_causal=False) counts the KV lanes past seq_len
    of the last 256-key tile in the softmax denominator. Reproduced: the last tile's lanes past
    the K index positions are loaded as zero rows and not masked, so each adds exp(0 - m) to L.
    Trigger: K not a multiple of the tile (the recipe's tile; untiled has no tail)."""

    def online_softmax(self, q, keys, valid, scale, sink, recipe):
        K = keys.shape[1]
        tile = K if recipe.tile is None else recipe.tile
        pad = (-K) % max(tile, 1) if K else 0
        if pad:
            keys = torch.cat([keys, keys.new_zeros(keys.shape[0], pad, keys.shape[2])], 1)
            valid = torch.cat([valid, valid.new_ones(valid.shape[0], pad)], 1)
        return super().online_softmax(q, keys, valid, scale, sink, recipe)


class MtpSplitFullyMasked(SplitKVAttention):
    """aiter PR #4711: with MTP, stage 2 decides which splits to merge from the batch (its last,
    longest token), so a split that is fully causal-masked for an earlier token of the batch is
    merged: its o_i = 0 / 0 = NaN, times weight 0, is NaN. Trigger: tokens_per_batch >= 2 with a
    split recipe where an earlier token has fewer keys than its batch's last."""

    def __call__(self, *args, tokens_per_batch, **kwargs):
        self._S = tokens_per_batch
        return super().__call__(*args, tokens_per_batch=tokens_per_batch, **kwargs)

    def merge_splits(self, parts, sink):
        S = self._S
        batch_live = [p[2].reshape(-1, S, *p[2].shape[1:])[:, -1:].expand(-1, S, *p[2].shape[1:])
                      .reshape(p[2].shape) for p in parts]
        return super().merge_splits([(o, lse, live) for (o, lse, _), live in
                                     zip(parts, batch_live)], sink)

    def split_terms(self, o_i, w, live):
        return (w[..., None] * o_i).sum(-2), w.sum(-1)


class NarrowedTableStride(TableWidthAsStride):
    """vLLM PR #55184 (open; its claim): the K-cache gather advances rows of a block table by its
    logical width, not its physical row stride, which differs for narrowed table views. Trigger:
    a block table that is a column slice of a wider one (the engine_tables class)."""


class NondeterministicSplitOrder(SplitKVAttention):
    """aiter #4350 (open): sparse MLA returns NaN nondeterministically at num_kv_splits = 16; the
    thread names no mechanism. Reproduced (inferred): stage 1 stores o_i = 0, lse_i = -inf for an
    empty split; stage 2 merges online in a run-dependent order (atomics) with an unguarded
    rescale exp(X - X'), which is exp(-inf - -inf) = NaN when an empty split comes first.
    Trigger: a split recipe with empty splits, merged in an order that starts with one."""

    def merge_splits(self, parts, sink):
        seed = int.from_bytes(os.urandom(4), "little")
        order = torch.randperm(len(parts), generator=torch.Generator().manual_seed(seed))
        o0, lse0, _ = parts[0]
        X = torch.full_like(lse0, -math.inf)
        acc, total = torch.zeros_like(o0), torch.zeros_like(lse0)
        for i in order.tolist():
            o_i, lse_i, live = parts[i]
            o_i = torch.where(live[..., None], o_i, 0.0)
            X_new = torch.maximum(X, lse_i)
            old, w = exp_as_gpu(X - X_new), exp_as_gpu(lse_i - X_new)
            acc = acc * old[..., None] + w[..., None] * o_i
            total = total * old + w
            X = X_new
        seen = torch.stack([p[2] for p in parts], -1).any(-1)
        return torch.where(seen[..., None], acc / (total + self.sink_term(sink, X))[..., None], 0.0)


block16 = Block16Fixed()
split_base = SplitKVAttention()
zoo_sglang_2465_short_split = ShortSplitFloor()
zoo_vllm_47188_unwritten_split = UnwrittenSplitScratch()
zoo_vllm_48364_leading_masked_block = LeadingMaskedBlockNaN()
zoo_vllm_57156_null_slot_gather = NullSlotGather()
zoo_sglang_39288_rows_scratch = ManyRowsUnzeroedScratch()
zoo_vllm_30887_window_v_unmasked = WindowValuesUnmasked()
zoo_vllm_47783_page_stride = PageStrideIgnored()
zoo_flashinfer_3130_page_offset_int32 = PageOffsetInt32()
zoo_sglang_20389_q_offset_int32 = QueryOffsetInt32()
zoo_flashinfer_4450_finite_sentinel = FiniteSentinel()
zoo_flashinfer_3716_tail_lanes = TailLanesCounted()
zoo_aiter_4711_mtp_split_masked = MtpSplitFullyMasked()
zoo_vllm_55184_table_width = NarrowedTableStride()
zoo_aiter_4350_split_order = NondeterministicSplitOrder()


def _entry(name, bug, threads, mechanism, trigger, killers, survives=""):
    return ZooEntry(name=name, bug=bug, threads=tuple(threads), kind="sparse_attention",
                    mechanism=mechanism, target=f"{HERE}:{name}", trigger=trigger,
                    expected_killers=tuple(killers), survives=survives)


def _out(name, bug, threads, mechanism, why):
    return ZooEntry(name=name, bug=bug, threads=tuple(threads), kind="sparse_attention",
                    mechanism=mechanism, in_scope=False, out_of_scope=why)


SGL, VLLM, FI = ("https://github.com/sgl-project/sglang", "https://github.com/vllm-project/vllm",
                 "https://github.com/flashinfer-ai/flashinfer")
GPU_SIZE = ("needs a tensor past 2^31 elements (4-8 GiB bf16): the GPU nightly's far-pages / "
            "large-offsets class; on the CPU interpreter the wrap never happens at ci sizes")

ZOO = [
    _entry("zoo_sglang_2465_short_split", 1, [f"{SGL}/issues/2465", f"{SGL}/pull/2479"],
           "split length floor(n / kv_splits): tail keys dropped, short prompts lose every key",
           "split recipe, n not divisible by kv_splits or n < kv_splits", ("P1",)),
    _entry("zoo_vllm_47188_unwritten_split", 2, [f"{VLLM}/pull/47188"],
           "stage 2 merges empty splits whose partials stage 1 never wrote (torch.empty workspace)",
           "more splits than valid keys, workspace not zero (poisoned allocations)", ("P1", "P7")),
    _out("zoo_cutlass_2274_mla_split", 3,
         ["https://github.com/NVIDIA/cutlass/issues/2274", f"{SGL}/pull/6101",
          f"{VLLM}/pull/17745"],
         "cutlass MLA split-KV merge wrong, hidden by small test values",
         "Lk = 576 != Lv = 512 (MLA's rope columns) is not expressible: the contract's K = V is one "
         "latent row; needs an Lv < Lk option (value = the first Lv columns) in the contract, "
         "golden and strategies; the large_logits_sink class is the data the maintainers added"),
    _entry("zoo_vllm_48364_leading_masked_block", 4, [f"{VLLM}/issues/48364", f"{VLLM}/pull/48366"],
           "running max -inf over an all-masked first block of 16: exp2(-inf - -inf) = NaN",
           "leading pads / invalid entries filling the first block (P5 shuffles, multi_tile)",
           ("P1", "P5", "P7")),
    _entry("zoo_vllm_57156_null_slot_gather", 5, [f"{VLLM}/issues/57156"],
           "invalid indices gather slot 0 unmasked, p = 0 x NaN in the null block",
           "an invalid index while pool row 0 holds NaN", ("P1", "P10")),
    _entry("zoo_sglang_39288_rows_scratch", 6, [f"{SGL}/pull/39288"],
           "> 64 query rows: masked candidates keep an unzeroed (torch.empty) workspace",
           "T > 64 query rows (many_rows class) and poisoned allocations", ("P1",)),
    _entry("zoo_vllm_30887_window_v_unmasked", 7, [f"{VLLM}/pull/30887"],
           "V rows outside the window loaded unmasked: p = 0 x NaN",
           "a lane outside the visible rows whose row holds NaN", ("P1", "P10")),
    _entry("zoo_vllm_47783_page_stride", 8, [f"{VLLM}/issues/47783", f"{VLLM}/pull/47493"],
           "rows addressed as slot x row stride: page stride assumed page_size x row stride",
           "a pool view with padded pages (strided pools)", ("P1", "P8")),
    _entry("zoo_flashinfer_3130_page_offset_int32", 9, [f"{FI}/issues/3130", f"{FI}/pull/3136"],
           "page x page stride formed in int32, wraps past 2^31 elements",
           "a pool > 2^31 elements with the used pages at its end", ("P1",), survives=GPU_SIZE),
    _entry("zoo_sglang_20389_q_offset_int32", 10, [f"{SGL}/issues/20389"],
           "token x q token stride formed in int32, wraps past 2^31 elements",
           "T x H x D > 2^31", ("P1",), survives=GPU_SIZE),
    _entry("zoo_flashinfer_4450_finite_sentinel", 11, [f"{FI}/issues/4450", f"{FI}/issues/4267"],
           "finite -5e4 stands for -inf: rows with every score below -5e4 give zeros",
           "scores below -5e4 (huge_scores class)", ("P1",)),
    _entry("zoo_flashinfer_3716_tail_lanes", 12, [f"{FI}/issues/3716"],
           "lanes past K in the last tile counted in the denominator (score 0)",
           "K not a multiple of the tile", ("P1",)),
    _out("zoo_vllm_56578_softcap", 13, [f"{VLLM}/issues/56578", f"{VLLM}/pull/56579"],
         "softcap helper tanh via exp overflows to inf / inf = NaN for |S / cap| > ~88",
         "softcap is not in the contract: needs an AttnRecipe softcap field (cap tanh(s / cap)) in "
         "golden and bounds, and scores past 88 x cap (the huge_scores class would then reach it)"),
    _out("zoo_flaggems_3759_gqa_group", 14, ["https://github.com/flagos-ai/FlagGems/pull/3759"],
         "KV group of a head computed as i_gbh // G instead of // cdiv(G, BH)",
         "the contract is MQA with one KV head: needs a GQA option (2+ KV heads, q heads per group) "
         "in the inputs, golden and strategies; with one KV head the bug is invisible"),
    _entry("zoo_aiter_4711_mtp_split_masked", 0, ["https://github.com/ROCm/aiter/pull/4711"],
           "splits cut from the batch's last token: an earlier MTP token's split is fully masked, "
           "0 x NaN in the merge", "tokens_per_batch >= 2 with a split recipe", ("P1",)),
    _entry("zoo_aiter_4350_split_order", 0, ["https://github.com/ROCm/aiter/issues/4350"],
           "(inferred) splits merged in a run-dependent order: an empty split merged first is NaN",
           "split recipe with empty splits; reruns", ("P1", "P11")),
    _entry("zoo_vllm_55184_table_width", 0, [f"{VLLM}/pull/55184"],
           "block-table rows advanced by logical width, not physical row stride",
           "block tables that are slices of a wider table (engine_tables)", ("P1", "P8")),
]

CONTROLS = [
    ZooControl("zoo_block16", "sparse_attention", f"{HERE}:block16",
               "the base over fixed blocks of 16, no recipe keyword (bug 4's base): correct"),
    ZooControl("zoo_split_base", "sparse_attention", f"{HERE}:split_base",
               "the split-KV base of the split entries: correct"),
]
