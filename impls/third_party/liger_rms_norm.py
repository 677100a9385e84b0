"""Liger-Kernel's RMSNorm forward (liger-kernel==0.8.5), as shipped, behind the suite's signature.

`LigerRMSNormFunction.apply(X, W, eps, offset, casting_mode, in_place, row_mode)` is the entry point
Liger's own `LigerRMSNorm` module calls. Its forward kernel computes per row, with the x dtype X:
  llama: x -> fp32; ms = sum(x*x) / D; r = rsqrt(ms + eps); y = X(X(x * r) * (offset + w))
  gemma: x, w -> fp32; y = X((x * r) * (offset + w))
  none:  eps, offset -> X; squares and their tl.sum in X (each addition rounded), ms and r in
         fp32, y = X((x * r) * X(offset + w)): Triton's promotion (compute_dtype "promote")
`rsqrt` is libdevice's (`__nv_rsqrtf`), the same instruction as tl.math.rsqrt; `offset + w` is fp32
in llama and gemma (an fp32 scalar promotes a bf16 w); y is stored in x's dtype, nearest even.
One callable per (casting mode, offset); the output dtype follows x, declared once (`out_dtype="input"`).
"""
from __future__ import annotations

from liger_kernel.ops.rms_norm import LigerRMSNormFunction

from kernelprop.golden.rmsnorm_inputs import NormDomain, NormRecipe

# calculate_settings() raises above 65536 columns (one row per program, one block per row)
LIGER_MAX_DIM = 65536


def _adapter(casting_mode: str, offset: float):
    def rms_norm(x, weight=None, *, eps=1e-6):
        return LigerRMSNormFunction.apply(x, weight, eps, offset, casting_mode, True, None)

    rms_norm.__name__ = rms_norm.__qualname__ = f"liger_{casting_mode}_offset{int(offset)}"
    rms_norm.recipe = NormRecipe(inv="rsqrt", out_dtype="input", weight_offset=offset,
                                 round_before_weight=casting_mode == "llama",
                                 compute_dtype="promote" if casting_mode == "none" else "fp32")
    rms_norm.validates_inputs = False  # asserts only that W matches D; no dtype/device checks
    rms_norm.domain = NormDomain(max_dim=LIGER_MAX_DIM)
    return rms_norm


llama = _adapter("llama", 0.0)            # HF LlamaRMSNorm
llama_offset1 = _adapter("llama", 1.0)
gemma = _adapter("gemma", 1.0)            # HF GemmaRMSNorm: (1 + w)
gemma_offset0 = _adapter("gemma", 0.0)
none = _adapter("none", 0.0)
none_offset1 = _adapter("none", 1.0)

ADAPTERS = {fn.__name__: fn for fn in (llama, llama_offset1, gemma, gemma_offset0, none, none_offset1)}
