"""Planted mistake: impls/flat_slot_reference.py as shipped (bf16-valued output) but declaring the
default out_dtype "fp32" (it returns the bf16 values as fp32). P1 must fail and the report must say
that every actual value lies on the bf16 grid."""
from kernelprop.golden.attention_inputs import AttnRecipe
from kernelprop.impls import flat_slot_reference as _ref


def sparse_decode_attention(*args, **kwargs):
    return _ref.sparse_decode_attention(*args, **kwargs).float()


sparse_decode_attention.recipe = AttnRecipe(tile=None, p_dtype="fp32", l_from="unrounded")
sparse_decode_attention.validates_inputs = False
