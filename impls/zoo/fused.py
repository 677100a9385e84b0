"""Zoo: public fused residual-add RMSNorm bugs, each reproduced on the fused op's torch base
(impls/mutants/fused.py: z = RNE_in(x + r), then an RMSNorm on z), from the thread's
description. `ZOO` is the registry the kill matrix runs (`kp mutants --zoo`); `CONTROLS` the
correct bases.
"""
from __future__ import annotations

from kernelprop.impls.mutants.fused import FusedAddNorm
from kernelprop.impls.zoo import ZooControl, ZooEntry
from kernelprop.impls.zoo.norm import BlockFromTokenCount, ThreadBlockSum

HERE = "impls/zoo/fused.py"
VLLM = "https://github.com/vllm-project/vllm"


class FusedThreadBlockSum(FusedAddNorm):
    """The fused op whose RMSNorm on z sums squares as a CUDA thread block of 256 (a control,
    declares batch_invariant)."""

    batch_invariant = True
    norm = ThreadBlockSum()


class FusedBlockFromTokenCount(FusedThreadBlockSum):
    """vLLM #48271: fused_add_rms_norm, like rms_norm, launches 1024 threads per row below 256
    tokens and 256 above, so z's sum of squares is reduced in a batch-size-dependent order; it
    still declares batch invariance (VLLM_BATCH_INVARIANT). Trigger: D > 512, the same rows in a
    batch below and above 256 rows."""

    norm = BlockFromTokenCount()


fused_block_256 = FusedThreadBlockSum()
zoo_vllm_48271_fused_block_by_tokens = FusedBlockFromTokenCount()

ZOO = [
    ZooEntry(name="zoo_vllm_48271_fused_block_by_tokens", bug=18,
             threads=(f"{VLLM}/issues/48271", f"{VLLM}/pull/48391"), kind="fused_add_rms_norm",
             mechanism="fused add-norm block size chosen from num_tokens: the norm's reduction "
                       "order depends on the batch size, declared batch invariant",
             target=f"{HERE}:zoo_vllm_48271_fused_block_by_tokens",
             trigger="D > 512, the same rows below and above 256 rows", expected_killers=("F4",)),
    ZooEntry(name="zoo_sglang_28005_residual_aliased", bug=0,
             threads=("https://github.com/sgl-project/sglang/pull/28005",), kind="fused_add_rms_norm",
             mechanism="the layer passes residual = hidden_states (an alias) to the in-place "
                       "fused add-norm, which overwrites the still-live hidden_states",
             in_scope=False,
             out_of_scope="a caller's aliasing, not a kernel bug: the kernel does what its "
                          "in-place contract says. The suite would need a model-level harness "
                          "(or a contract clause that x and residual may alias, with F1-F5 drawn "
                          "on aliased arguments)"),
]

CONTROLS = [
    ZooControl("zoo_fused_block256", "fused_add_rms_norm", f"{HERE}:fused_block_256",
               "fused add-norm with the thread-block sum of squares at a fixed block of 256, "
               "declares batch_invariant (the base of zoo_vllm_48271_fused_block_by_tokens)"),
]
