"""Planted mistake: an implementation more exact than it declares. It returns the fp64 softmax
rounded to fp32 (no bf16 P at all) but declares the default recipe (bf16 P): P1 must fail and the
report must say that it is closer to the fp64 truth than the golden (a wrong declared recipe)."""
from kernelprop.golden.attention import sparse_attention_fp64
from kernelprop.golden.attention_inputs import AttnRecipe


def sparse_decode_attention(*args, **kwargs):
    return sparse_attention_fp64(*args, **kwargs).float()


sparse_decode_attention.recipe = AttnRecipe()
sparse_decode_attention.validates_inputs = False
