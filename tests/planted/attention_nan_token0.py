"""Planted bug: token 0 is always NaN, whatever the pools hold (a numerics bug, not a memory one);
correct elsewhere (impls/torch_reference.py). P10 must not blame unread rows for it."""
import math

from kernelprop.impls.torch_reference import sparse_decode_attention as _reference


def sparse_decode_attention(*args, recipe=None, **kwargs):
    o = _reference(*args, recipe=recipe, **kwargs).clone()
    o[:1] = math.nan
    return o


sparse_decode_attention.recipe = _reference.recipe
sparse_decode_attention.accepts_recipe = _reference.accepts_recipe
