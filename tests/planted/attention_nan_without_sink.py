"""Planted bug: NaN output on every head whose sink is -inf (as from exp(sink - M) * 0 or a
log(0) in a sink merge), correct elsewhere (impls/torch_reference.py). P6's sink scaling compares
o(sink) with the implementation's own o(-inf): the NaN must give a violation, not a NaN bound."""
import math

import torch

from kernelprop.impls.torch_reference import sparse_decode_attention as _reference


def sparse_decode_attention(*args, recipe=None, **kwargs):
    o = _reference(*args, recipe=recipe, **kwargs)
    sink = args[7]
    return torch.where((sink == -math.inf)[None, :, None], math.nan, o)


sparse_decode_attention.recipe = _reference.recipe
sparse_decode_attention.accepts_recipe = _reference.accepts_recipe
