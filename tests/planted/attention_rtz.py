"""Planted bug: sparse attention that rounds P toward zero whatever its recipe says.

It is impls/torch_reference.py with the P rounding forced to "rtz" while it declares the default
(nearest-even) recipe: the truncation bias SPEC section 4 says P1 must catch. With p_dtype "fp32"
nothing is rounded, so the bug shows only under a bf16 P.
"""
from kernelprop.impls.torch_reference import sparse_decode_attention as _reference


def sparse_decode_attention(*args, recipe=None, **kwargs):
    recipe = recipe or sparse_decode_attention.recipe
    return _reference(*args, recipe=recipe.replace(rounding="rtz"), **kwargs)


sparse_decode_attention.recipe = _reference.recipe
sparse_decode_attention.accepts_recipe = _reference.accepts_recipe
