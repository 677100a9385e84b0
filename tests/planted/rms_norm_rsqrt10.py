"""Planted bug: RMSNorm with a hardware-like rsqrt of 10 correct bits (the NPU failure of SPEC 1).

It is impls/torch_reference.py's rms_norm with INV = 1/sqrt rounded to 10 significand bits, while
it declares the default recipe (recip_sqrt): the bf16 output then differs from the golden far
beyond the flips P1's bound allows.
"""
import torch

from kernelprop.golden.rmsnorm_inputs import NormRecipe


def rms_norm(x, weight=None, *, eps=1e-6, recipe=None):
    recipe = recipe or NormRecipe()
    xf = x.float()
    v = (xf * xf).sum(-1) / x.shape[-1] + eps
    mantissa, exponent = torch.frexp(torch.rsqrt(v.double()))
    inv = torch.ldexp(torch.round(mantissa * 2.0**10) / 2.0**10, exponent).float()
    y = xf * inv[..., None]
    if weight is not None:
        y = y * weight.float()
    return y if recipe.out_dtype == "fp32" else y.to(torch.bfloat16)


rms_norm.recipe = NormRecipe()
rms_norm.accepts_recipe = False
