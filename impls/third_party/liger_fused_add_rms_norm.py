"""Liger-Kernel's fused add RMSNorm forward (liger-kernel==0.8.5), as shipped, behind the suite's
signature (SPEC section 9).

`LigerFusedAddRMSNormFunction.apply(X, R, W, eps, offset, casting_mode, in_place)` is the entry
point Liger's `LigerFusedAddRMSNorm` module calls; it returns (Y, S) out of place (in_place concerns
the backward only). Its forward kernel, per row, with X the input dtype:
  S = X + R in X (the fp32 sum rounded once to X on a GPU), stored as the residual output;
  llama: S -> fp32; ms = sum(S*S) / D; r = rsqrt(ms + eps); y = X(X(S * r) * (offset + w))
  gemma: S, w -> fp32; y = X((S * r) * (offset + w))
  none:  eps, offset -> X; squares and their sum in X, y = X((S * r) * X(offset + w))
`rsqrt` is libdevice's; y is stored in X. The weight is required. One callable per (casting mode,
offset); the output dtype follows x (`out_dtype="input"`). Needs the pinned package
(`pip install --no-deps liger-kernel==0.8.5`); on the CPU backend the bf16 add and stores are only
GPU-faithful under kernelprop.faithful_interpreter() (SPEC section 8).
"""
from __future__ import annotations

from liger_kernel.ops.fused_add_rms_norm import LigerFusedAddRMSNormFunction

from kernelprop.golden.fused_add_norm import FusedDomain
from kernelprop.golden.rmsnorm_inputs import NormRecipe

LIGER_MAX_DIM = 65536   # calculate_settings() raises above one block of 65536 columns


def _adapter(casting_mode: str, offset: float):
    def fused_add_rms_norm(x, residual, weight=None, *, eps=1e-6):
        return LigerFusedAddRMSNormFunction.apply(x, residual, weight, eps, offset, casting_mode, False)

    fused_add_rms_norm.__name__ = fused_add_rms_norm.__qualname__ = f"liger_{casting_mode}_offset{int(offset)}"
    fused_add_rms_norm.recipe = NormRecipe(inv="rsqrt", out_dtype="input", weight_offset=offset,
                                           round_before_weight=casting_mode == "llama",
                                           compute_dtype="promote" if casting_mode == "none" else "fp32")
    fused_add_rms_norm.validates_inputs = False  # asserts only that W matches D
    fused_add_rms_norm.domain = FusedDomain(weight=True, max_dim=LIGER_MAX_DIM)
    return fused_add_rms_norm


llama = _adapter("llama", 0.0)
llama_offset1 = _adapter("llama", 1.0)
gemma = _adapter("gemma", 1.0)
gemma_offset0 = _adapter("gemma", 0.0)
none = _adapter("none", 0.0)

ADAPTERS = {fn.__name__: fn for fn in (llama, llama_offset1, gemma, gemma_offset0, none)}
