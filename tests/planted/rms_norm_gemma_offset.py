"""Planted undeclared recipe: Gemma's RMSNorm, y = bf16(x * inv * (1 + w)) with 1 + w in fp32,
declared as the default recipe (weight offset 0). Written with torch from the formula."""
import torch

from kernelprop.golden.rmsnorm_inputs import NormRecipe


def rms_norm(x, weight=None, *, eps=1e-6):
    xf = x.float()
    inv = 1.0 / torch.sqrt((xf * xf).sum(-1, keepdim=True) / x.shape[-1] + eps)
    y = xf * inv
    if weight is not None:
        y = y * (1.0 + weight.float())
    return y.to(torch.bfloat16)


rms_norm.recipe = NormRecipe()
