"""A planted RMSNorm property for tests/test_reports.py (not collected by `./kp test`: the file
name does not match test_*.py; the report tests pass it to pytest explicitly). Parametrized over
the two layouts so that one fast file gives two failing tests (xdist: two workers, two reports)."""
from dataclasses import asdict

import pytest
from hypothesis import given, strategies as st

from kernelprop.golden.rmsnorm_inputs import make_norm_inputs
from kernelprop.properties.checks import run_property
from kernelprop.properties.strategies import recipes_for
from kernelprop.properties.norm_strategies import norm_cases, norm_recipes


@pytest.mark.spec("P1")
@pytest.mark.parametrize("layout", ["rows", "per_head"])
@given(data=st.data())
def test_planted_norm_p1(norm_impl, device, layout, data):
    heads = (lambda h: 0) if layout == "rows" else (lambda h: max(h, 1))
    case = data.draw(norm_cases().map(lambda c: c.replace(device=device, heads=heads(c.heads))),
                     label="case")
    recipe = data.draw(recipes_for(norm_impl, norm_recipes()), label="recipe")
    run_property("P1", "rms_norm impl vs golden, same recipe", "tests.planted.norm_replay:norm_p1",
                 inputs={"inputs": make_norm_inputs(case)}, impl=norm_impl,
                 params={"recipe": asdict(recipe)}, recipe=recipe, case=case)
