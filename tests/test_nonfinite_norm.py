"""Non-finite RMSNorm input (shape class nonfinite_rows): the poisoned rows are what the case
says, and the documented row result (golden.rmsnorm.nonfinite_row_result) is what the golden
computes under every recipe."""
import math

import pytest
import torch

from kernelprop.golden.rmsnorm_inputs import NormCase, NormRecipe, make_norm_inputs
from kernelprop.golden.rmsnorm import nonfinite_row_result, nonfinite_rows, rms_norm_golden


@pytest.mark.parametrize("seed", range(6))
def test_poisoned_rows_leave_the_finite_rows_alone(seed):
    case = NormCase(seed=seed, rows=5, dim=33, nonfinite_rows=2)
    x, clean = make_norm_inputs(case), make_norm_inputs(case.replace(nonfinite_rows=0))
    bad = nonfinite_rows(x.x)
    assert int(bad.sum()) == 2 and torch.equal(x.x[~bad], clean.x[~bad])
    assert torch.equal(x.weight, clean.weight)


@pytest.mark.parametrize("inv", ["recip_sqrt", "rsqrt", "recip_sqrt_rn", "rsqrt_approx"])
@pytest.mark.parametrize("out_dtype", ["fp32", "bf16"])
@pytest.mark.parametrize("chunk", [None, 1, 5])
def test_documented_result_is_the_golden_of_every_recipe(inv, out_dtype, chunk):
    x = torch.tensor([[1.0, -2.0, math.inf, 3.0, 0.0], [1.0, math.nan, 2.0, 0.0, -1.0],
                      [-1.0, 2.0, -math.inf, -0.0, math.inf], [1.0, 2.0, 3.0, 4.0, 5.0]])
    w = torch.tensor([1.0, 0.5, -1.0, 2.0, -3.0])
    recipe = NormRecipe(inv=inv, chunk=chunk, out_dtype=out_dtype)
    y = rms_norm_golden(x, w, eps=1e-6, recipe=recipe).float()
    doc = nonfinite_row_result(x, w)
    rows = nonfinite_rows(x)
    assert rows.tolist() == [True, True, True, False]
    assert torch.equal(torch.isnan(y[rows]), torch.isnan(doc[rows]))
    number = ~torch.isnan(doc[rows])
    assert bool((y[rows][number] == 0).all())
    assert torch.equal(torch.signbit(y[rows][number]), torch.signbit(doc[rows][number]))
    assert bool(torch.isnan(doc[1]).all()), "a NaN row is NaN throughout"
