"""Planted undeclared recipe: HF LlamaRMSNorm's order, y = bf16(bf16(x * inv) * w) (x * inv rounded
to bf16 before the weight product, which is rounded again), declared as the default recipe (one
rounding of x * inv * w). Written with torch from the formula, not from the golden."""
import torch

from kernelprop.golden.rmsnorm_inputs import NormRecipe


def rms_norm(x, weight=None, *, eps=1e-6):
    xf = x.float()
    inv = 1.0 / torch.sqrt((xf * xf).sum(-1, keepdim=True) / x.shape[-1] + eps)
    t = (xf * inv).to(torch.bfloat16)
    if weight is None:
        return t
    return (t.float() * weight.float()).to(torch.bfloat16)


rms_norm.recipe = NormRecipe()
