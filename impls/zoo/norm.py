"""Zoo: public RMSNorm bugs (survey bugs 18-21 and the RMSNorm "see also" entries), each reproduced
on the planted-bug base of impls/mutants/rmsnorm.py (its steps: load, sum of squares, inverse,
weight product, store), written from the thread's description. `ZOO` is the registry the kill
matrix runs (`kp mutants --zoo`); `CONTROLS` are the correct bases that must pass everything.
"""
from __future__ import annotations

import torch

from kernelprop.impls.mutants.rmsnorm import Gemma, Llama, RMSNorm
from kernelprop.impls.zoo import ZooControl, ZooEntry

HERE = "impls/zoo/norm.py"
VLLM = "https://github.com/vllm-project/vllm"


def _tree_sum(p: torch.Tensor) -> torch.Tensor:
    """Pairwise halving over the last dim (a power of two): a block reduction's order."""
    while p.shape[-1] > 1:
        half = p.shape[-1] // 2
        p = p[..., :half] + p[..., half:]
    return p[..., 0]


class ThreadBlockSum(RMSNorm):
    """The CUDA RMSNorm's sum of squares: thread t of a block of `block` threads adds x_t^2,
    x_{t+block}^2, ... in order, then the block reduces the per-thread partials as a tree. A
    control at a fixed block: its order is one fp32 order of the sum (within P1's bound), and it
    declares `batch_invariant` (a row's result does not depend on the other rows)."""

    batch_invariant = True

    def block(self, rows: int) -> int:
        return 256

    def sum_of_squares(self, xf, chunk, c=lambda t: t):
        sq = c(xf * xf)
        D = sq.shape[-1]
        block = self.block(sq.reshape(-1, D).shape[0] if sq.dim() > 1 else 1)
        lanes = -(-D // block) * block
        padded = torch.nn.functional.pad(sq, (0, lanes - D)).reshape(*sq.shape[:-1], -1, block)
        partial = torch.zeros(padded.shape[:-2] + (block,), dtype=torch.float32, device=sq.device)
        for k in range(padded.shape[-2]):  # each thread's strided loop
            partial = partial + padded[..., k, :]
        return _tree_sum(partial)


class BlockFromTokenCount(ThreadBlockSum):
    """vLLM #48271: rms_norm / fused_add_rms_norm launch 1024 threads per row when num_tokens <
    256 and 256 otherwise; the per-row reduction order then depends on how many rows share the
    batch, a row's output changes by an ulp between a small and a large batch, also under
    VLLM_BATCH_INVARIANT (it still declares batch invariance). Trigger: D > 256 (a thread then
    holds several elements at block 256), the same row alone and in a batch of >= 256 rows."""

    def block(self, rows: int) -> int:
        return 1024 if rows < 256 else 256


STAGES, TILE = 3, 32


class PipelinedSum(RMSNorm):
    """vLLM PR #44692: the mHC fused RMSNorm (TileLang) software-pipelines its loop over column
    tiles with num_stages = 3, the per-tile partial sums of squares living in a ring of 3 stage
    buffers. The miscompiled loop issues the loads of the last D/TILE mod 3 tiles (and of every
    tile when there are fewer than 3) but consumes the stage buffer before they land: those
    partials are the buffer's previous contents (the tile 3 earlier, or never-written memory: NaN
    under the suite's poisoned allocations). Right only when the tile count is a multiple of 3
    (the thread: wrong or NaN except at 4096). Trigger: D not in (96, 192] at TILE 32 (any D
    whose tile count is not a multiple of 3)."""

    def sum_of_squares(self, xf, chunk, c=lambda t: t):
        sq = c(xf * xf)
        D = sq.shape[-1]
        tiles = -(-D // TILE)
        ring = torch.empty((STAGES,) + sq.shape[:-1], dtype=torch.float32, device=sq.device)
        landed = tiles - tiles % STAGES
        ss = torch.zeros(sq.shape[:-1], dtype=torch.float32, device=sq.device)
        for i in range(tiles):
            if i < landed:
                ring[i % STAGES] = sq[..., i * TILE:(i + 1) * TILE].sum(-1)
            ss = ss + ring[i % STAGES]
        return ss


class WeightInFp32(Llama):
    """vLLM PR #42379 (#42325): the DeepSeek-V4 support change made the RMSNorm CUDA kernels
    multiply the weight in fp32, while the model's recipe (declared here: round_before_weight,
    Llama's) rounds x * inv to the activation dtype before the weight product. Trigger: bf16 x
    (the rounding of t moves the output's rounding on a large share of elements)."""

    def before_weight(self, t, recipe):
        return t


class DenseRowsAssumed(RMSNorm):
    """unsloth PR #10617: fast_rms_layernorm computes each row's address as row * n_cols (dense
    rows, unit column stride) whatever the tensor's strides, so a strided X is read at the wrong
    offsets. Trigger: a strided x (padded rows or a non-unit column stride)."""

    def load(self, x):
        dense = x.as_strided(x.shape, torch.empty(x.shape, device="meta").stride(),
                             x.storage_offset())
        return dense.float()


class ColumnStrideIgnored(RMSNorm):
    """LightLLM #1467: the Triton RMSNorm's variance pass honours x_stride1, its normalize pass
    reads column j at x + row * x_stride0 + j (x_stride1 ignored). Trigger: a non-unit column
    stride."""

    def __call__(self, x, weight=None, *, eps=1e-6, recipe=None):
        # accepts any column stride (no contiguity check): the variance pass reads x as strided
        self._unit_cols = x.as_strided(x.shape, x.stride()[:-1] + (1,), x.storage_offset())
        return super().__call__(x.contiguous(), weight, eps=eps, recipe=recipe)

    def apply(self, xf, inv, weight, in_dtype, recipe=None, c=lambda t: t):
        return super().apply(self._unit_cols.float(), inv, weight, in_dtype, recipe, c)


class OddHiddenOverrun(RMSNorm):
    """aiter #5044 / PR #5290: the RMSNorm stores two elements per lane, so at an odd hidden
    size the last lane of row r also writes column D, i.e. column 0 of row r + 1 (the masked
    lane's value, 0), and rows finish in any order. Reproduced with rows finishing last-to-first:
    row r + 1's column 0 ends as 0. Trigger: odd D, >= 2 rows."""

    def store(self, y, recipe):
        out = super().store(y, recipe)
        D = out.shape[-1]
        if D % 2 == 0:
            return out
        flat = torch.empty(out.numel() + 1, dtype=out.dtype, device=out.device)
        rows = out.reshape(-1, D)
        for r in reversed(range(rows.shape[0])):
            flat[r * D:(r + 1) * D] = rows[r]
            flat[(r + 1) * D] = 0
        return flat[:out.numel()].reshape(out.shape)


class GemmaOffsetMissing(Gemma):
    """Liger-Kernel #74: Gemma's RMSNorm multiplies by (1 + w); the kernel used for it multiplies
    by w. Declared recipe: weight_offset 1 (Gemma). Trigger: any x with a weight."""

    def offset_weight(self, weight, recipe):
        return weight.float()


class InputOverwrittenInFp32(RMSNorm):
    """nano-vllm #170: `x = x.float()` returns x itself for an fp32 x, and the in-place
    `x.mul_(rsqrt(var + eps))` then overwrites the caller's tensor (the residual it was saved
    as). The output is right; the input is not left as it was. Trigger: fp32 x."""

    def load(self, x):
        return x if x.dtype == torch.float32 else x.float()

    def apply(self, xf, inv, weight, in_dtype, recipe=None, c=lambda t: t):
        y = super().apply(xf, inv, weight, in_dtype, recipe, c)
        if in_dtype == torch.float32:
            xf.mul_(inv[..., None])
        return y


block_256 = ThreadBlockSum()
zoo_vllm_48271_block_by_tokens = BlockFromTokenCount()
zoo_vllm_44692_pipelined_sum = PipelinedSum()
zoo_vllm_42379_weight_in_fp32 = WeightInFp32()
zoo_unsloth_10617_dense_rows = DenseRowsAssumed()
zoo_lightllm_1467_x_stride1 = ColumnStrideIgnored()
zoo_aiter_5044_odd_hidden = OddHiddenOverrun()
zoo_liger_74_gemma_offset = GemmaOffsetMissing()
zoo_nanovllm_170_input_overwritten = InputOverwrittenInFp32()


def _entry(name, bug, threads, mechanism, trigger, killers, survives=""):
    return ZooEntry(name=name, bug=bug, threads=tuple(threads), kind="rms_norm",
                    mechanism=mechanism, target=f"{HERE}:{name}", trigger=trigger,
                    expected_killers=tuple(killers), survives=survives)


ZOO = [
    _entry("zoo_vllm_48271_block_by_tokens", 18,
           [f"{VLLM}/issues/48271", f"{VLLM}/pull/48391"],
           "block size chosen from num_tokens (< 256 rows: 1024 threads, else 256): a row's "
           "reduction order depends on the batch size, declared batch invariant",
           "D > 256, the row alone vs in >= 256 rows", ("P9",)),
    _entry("zoo_vllm_44692_pipelined_sum", 19, [f"{VLLM}/pull/44692"],
           "pipelined (3 stages) loop-carried sum of squares: the last tiles' partials read "
           "from stale or never-written stage buffers",
           "tile count not a multiple of 3 (most D)", ("P1",)),
    _entry("zoo_vllm_42379_weight_in_fp32", 20,
           [f"{VLLM}/issues/42325", f"{VLLM}/pull/42379"],
           "weight multiplied in fp32, the declared recipe rounds x * inv to bf16 first",
           "bf16 x, declared round_before_weight", ("P1",)),
    _entry("zoo_unsloth_10617_dense_rows", 21, ["https://github.com/unslothai/unsloth/pull/10617"],
           "rows addressed as row * n_cols (dense rows, unit column stride assumed)",
           "strided x", ("P1", "P13")),
    _entry("zoo_lightllm_1467_x_stride1", 0, ["https://github.com/ModelTC/LightLLM/issues/1467"],
           "normalize pass ignores x_stride1 (the variance pass honours it)",
           "non-unit column stride", ("P13",)),
    _entry("zoo_aiter_5044_odd_hidden", 0,
           ["https://github.com/ROCm/aiter/issues/5044", "https://github.com/ROCm/aiter/pull/5290"],
           "odd hidden size: a row's last two-element store writes the next row's column 0",
           "odd D, >= 2 rows", ("P1",)),
    _entry("zoo_liger_74_gemma_offset", 0, ["https://github.com/linkedin/Liger-Kernel/issues/74"],
           "Gemma's (1 + w) offset missing: multiplies by w", "declared weight_offset 1",
           ("P1", "P12")),
    _entry("zoo_nanovllm_170_input_overwritten", 0,
           ["https://github.com/GeeeekExplorer/nano-vllm/issues/170"],
           "fp32 x normalized in place: the output is right, the caller's input is overwritten",
           "fp32 x", ("P9",)),
]

CONTROLS = [
    ZooControl("zoo_block256", "rms_norm", f"{HERE}:block_256",
               "thread-block sum of squares at a fixed block of 256, declares batch_invariant "
               "(the base of zoo_vllm_48271_block_by_tokens)"),
]
