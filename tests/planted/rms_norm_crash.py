"""Planted bug: an RMSNorm that crashes (a kernel launch error, say) on any input with two or more
rows. Used to check reports of failures that raise instead of breaking a bound."""
from kernelprop.impls.torch_reference import rms_norm as _reference


def rms_norm(x, weight=None, *, eps=1e-6, recipe=None):
    if x.dim() >= 2 and x.shape[0] >= 2:
        raise RuntimeError(f"planted crash: {x.shape[0]} rows")
    return _reference(x, weight, eps=eps, recipe=recipe)


rms_norm.recipe = _reference.recipe
rms_norm.accepts_recipe = True
