"""compute_dtype "promote" (Triton's type promotion on a bf16 x, Liger's none mode): the golden's
bf16 tree sum, its independent mirror in the mutant base, and the intervals of
docs/bounds-rmsnorm.md#recipes holding every tree order they claim to hold."""
from __future__ import annotations

import pytest
import torch

from kernelprop.golden.rmsnorm_inputs import NormCase, NormRecipe, make_norm_inputs
from kernelprop.golden.rmsnorm import bf16_tree_sum, rms_norm_golden, rms_norm_trace
from kernelprop.golden.rmsnorm_bounds import p1_interval, tree_sum_interval
from kernelprop.golden.rounding import round_to_bf16
from kernelprop.impls.mutants import rmsnorm as M

PROMOTE = NormRecipe(inv="rsqrt", compute_dtype="promote", out_dtype="input")
DIMS = (1, 7, 64, 100, 512, 1000)


def _squares(x):
    return round_to_bf16(x.float() * x.float(), "rne")


def _sequential_bf16_sum(sq):
    """Left to right, each addition rounded to bf16: another order than the modelled tree."""
    s = torch.zeros(sq.shape[:-1])
    for i in range(sq.shape[-1]):
        s = round_to_bf16(s + sq[..., i], "rne")
    return s


def test_promote_resolves_to_fp32_for_fp32_x_and_is_validated():
    assert PROMOTE.for_input(torch.float32).compute_dtype == "fp32"
    assert PROMOTE.for_input(torch.bfloat16).compute_dtype == "promote"
    assert PROMOTE.promotes(torch.bfloat16) and not PROMOTE.promotes(torch.float32)
    assert PROMOTE.compute_in(torch.bfloat16) == "fp32"
    with pytest.raises(ValueError, match="compute_dtype"):
        NormRecipe(compute_dtype="promoted")


def test_tree_sum_is_the_pairwise_halving_tree():
    sq = torch.tensor([[2.0 ** -8, 1.0, 2.0 ** -8]])
    # P = 4, the pairs (i, i + 2): 2^-8 + 2^-8 = 2^-7 and 1 + 0, then 1 + 2^-7 (a bf16 value)
    assert bf16_tree_sum(sq, "rne").item() == 1.0 + 2.0 ** -7
    assert _sequential_bf16_sum(sq).item() == 1.0   # the order matters: each 2^-8 is lost


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("weight", [True, False])
@pytest.mark.parametrize("offset", [0.0, 1.0])
def test_golden_equals_the_mutant_base_bitwise(dim, weight, offset):
    x = make_norm_inputs(NormCase(seed=dim, rows=6, dim=dim, weight=weight))
    recipe = PROMOTE.replace(weight_offset=offset)
    ours = M.RMSNorm()(x.x, x.weight, eps=x.eps, recipe=recipe)
    assert torch.equal(ours, rms_norm_golden(x.x, x.weight, eps=x.eps, recipe=recipe))


@pytest.mark.parametrize("dim", DIMS)
def test_tree_sum_interval_holds_the_tree_and_other_orders(dim):
    x = make_norm_inputs(NormCase(seed=dim, rows=8, dim=dim)).x
    sq = _squares(x)
    tree, seq, fp32 = bf16_tree_sum(sq, "rne").double(), _sequential_bf16_sum(sq).double(), sq.sum(-1).double()
    lo, hi = tree_sum_interval(x, "rne", 1 + (dim - 1).bit_length())
    assert ((lo <= tree) & (tree <= hi)).all() and ((lo <= fp32) & (fp32 <= hi)).all()
    lo, hi = tree_sum_interval(x, "rne", dim)
    assert ((lo <= seq) & (seq <= hi)).all() and (lo > 0).all()


@pytest.mark.parametrize("dim", DIMS)
def test_p1_interval_is_the_point_of_the_decided_order_and_holds_other_orders(dim):
    inputs = make_norm_inputs(NormCase(seed=dim, rows=5, dim=dim))
    recipe = PROMOTE.replace(out_dtype="fp32")
    trace = rms_norm_trace(inputs.x, inputs.weight, eps=inputs.eps, recipe=recipe)
    lo, hi = p1_interval(trace, inputs, recipe, 1.0)
    y = trace.y_fp32.double()
    assert ((lo <= y) & (y <= hi)).all()
    # only fp32 steps after the sum: INV's ulp each side and the fp32 roundings of t and y
    assert ((hi - lo) <= 16 * 2.0 ** -23 * y.abs() + 2.0 ** -140).all()
    # another order of the bf16 sum: outside the decided interval somewhere, inside the any-order one
    alt = M.RMSNorm()
    alt.promoted_sum = lambda sq, rounding: _sequential_bf16_sum(sq)
    y_alt = alt(inputs.x, inputs.weight, eps=inputs.eps, recipe=recipe).double()
    lo_any, hi_any = p1_interval(trace, inputs, recipe, 1.0, backend="cuda")
    assert ((lo_any <= y_alt) & (y_alt <= hi_any)).all()
