"""Planted bug: an RMSNorm whose bf16 output is the truncation (rtz) of its fp32 value, as the
Triton interpreter's stores do (SPEC section 5), while it declares nearest-even rounding; correct
otherwise (impls/torch_reference.py)."""
from kernelprop.impls.torch_reference import rms_norm as _reference


def rms_norm(x, weight=None, *, eps=1e-6, recipe=None):
    recipe = recipe or rms_norm.recipe
    return _reference(x, weight, eps=eps, recipe=recipe.replace(rounding="rtz"))


rms_norm.recipe = _reference.recipe
rms_norm.accepts_recipe = True
