"""vLLM's `fused_add_rms_norm(input, residual, weight, epsilon)` semantics as a torch reference
adapter (SPEC section 9), written from its documented behaviour, not its CUDA code.

vLLM's custom op works in place and returns nothing: per token row, z = input + residual in the
model dtype (the fp32 sum rounded once), residual := z; then inv = rsqrt(mean(z^2) + eps) in fp32
over the stored z, and input := (dtype(z * inv)) * weight in the model dtype (HF LlamaRMSNorm's
order: the normalized row is rounded to the model dtype before the weight product, which is
rounded again). Declared: `inplace = True`, NormRecipe(inv="rsqrt", round_before_weight=True,
out_dtype="input"), a weight required; inputs are checked as the bundled kernel checks them.
"""
from __future__ import annotations

import torch

from kernelprop.golden.fused_add_norm import FusedDomain
from kernelprop.golden.rmsnorm_inputs import NormRecipe
from kernelprop.golden.rounding import round_to_bf16
from kernelprop.kernels.fused_add_rms_norm import check_fused_args

RECIPE = NormRecipe(inv="rsqrt", round_before_weight=True, out_dtype="input")


def _model_dtype(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """An fp32 result rounded once to the model dtype (nearest even), as fp32."""
    return round_to_bf16(t, "rne") if dtype == torch.bfloat16 else t


def fused_add_rms_norm(x, residual, weight=None, *, eps=1e-6):
    """In place: residual := RNE(x + residual), x := y. Returns None."""
    if weight is None:
        raise ValueError("weight must be a tensor [D]: vLLM's fused_add_rms_norm always has one")
    check_fused_args(x, residual, weight, eps)
    z = (x.float() + residual.float()).to(x.dtype)
    residual.copy_(z)
    zf = residual.float()
    eps32 = torch.tensor(float(eps), dtype=torch.float32, device=x.device)
    inv = torch.rsqrt((zf * zf).sum(-1, keepdim=True) / x.shape[-1] + eps32)
    t = _model_dtype(zf * inv, x.dtype)
    x.copy_(_model_dtype(t * weight.float(), x.dtype).to(x.dtype))


fused_add_rms_norm.inplace = True
fused_add_rms_norm.recipe = RECIPE
fused_add_rms_norm.domain = FusedDomain(weight=True)
