"""Torch adapters of the Hugging Face RMSNorm formulas, written from their documented behaviour.

Each is a plain callable with the bundled signature `(x, weight=None, *, eps=1e-6) -> y` and
declares the NormRecipe it computes (SPEC sections 3 and 6), so the suite checks it as shipped:

- `llama_rms_norm` (transformers' LlamaRMSNorm; also Mistral, Qwen2): x upcast to fp32,
  variance = mean(x^2), x * rsqrt(variance + eps) in fp32, cast to x's dtype, then
  weight * that in x's dtype (a bf16 product rounds once): round_before_weight, out_dtype "input".
- `gemma_rms_norm` (transformers' GemmaRMSNorm): x upcast to fp32, the same normalization,
  times (1 + weight) computed in fp32, one cast to x's dtype at the end: weight_offset 1.

Both use torch.rsqrt (inv "rsqrt") and do no argument checks (validates_inputs False: P13 is
skipped). The weight is taken in x's dtype or fp32, as the models hold it.
"""
from __future__ import annotations

import torch

from kernelprop.golden.rmsnorm_inputs import NormRecipe


def _normalized(x: torch.Tensor, eps: float) -> torch.Tensor:
    """x / sqrt(mean(x^2) + eps) in fp32, as both models' _norm computes it."""
    h = x.to(torch.float32)
    variance = h.pow(2).mean(-1, keepdim=True)
    return h * torch.rsqrt(variance + eps)


def llama_rms_norm(x, weight=None, *, eps=1e-6):
    h = _normalized(x, eps).to(x.dtype)
    return h if weight is None else weight.to(x.dtype) * h


llama_rms_norm.recipe = NormRecipe(inv="rsqrt", round_before_weight=True, out_dtype="input")
llama_rms_norm.accepts_recipe = False
llama_rms_norm.validates_inputs = False


def gemma_rms_norm(x, weight=None, *, eps=1e-6):
    h = _normalized(x, eps)
    if weight is not None:
        h = h * (1.0 + weight.float())
    return h.type_as(x)


gemma_rms_norm.recipe = NormRecipe(inv="rsqrt", weight_offset=1.0, out_dtype="input")
gemma_rms_norm.accepts_recipe = False
gemma_rms_norm.validates_inputs = False
