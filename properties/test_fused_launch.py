"""fused_add_rms_norm batch invariance (F4 over row counts): y and residual_out of a row do not
depend on how many rows share the call, bitwise, for implementations declaring
`batch_invariant = True` (vLLM's fused_add_rms_norm chose its block size from num_tokens). The
row counts and hidden sizes are those of the RMSNorm property (properties/test_rmsnorm_launch.py).
Replay: properties/replays_norm_launch.py:f4_batch_invariance.
"""
import pytest
from hypothesis import event, given, strategies as st

from kernelprop.golden.fused_add_norm import make_fused_inputs
from kernelprop.properties.checks import run_property
from kernelprop.properties.fused_strategies import draw_fused_case
from kernelprop.properties.replays_fused import params_for
from kernelprop.properties.strategies import recipes_for
from kernelprop.properties.norm_strategies import norm_recipes
from kernelprop.properties.test_rmsnorm_launch import BANDS, COUNTS, MAX_ELEMENTS, WIDE_DIMS


@pytest.mark.spec("F4")
@given(data=st.data())
def test_f4_batch_invariance(fused_impl, backend, device, data):
    if getattr(fused_impl.fn, "batch_invariant", False) is not True:
        pytest.skip(reason="the implementation does not declare batch_invariant = True")
    case = draw_fused_case(data, "plain", impl=fused_impl, device=device)
    counts = [data.draw(st.sampled_from([c for c in COUNTS if lo <= c < hi]),
                        label=f"rows in a batch of [{lo}, {hi})") for lo, hi in BANDS]
    dim = data.draw(st.one_of(st.sampled_from(WIDE_DIMS), st.integers(257, 8192)), label="dim")
    dim = max(1, min(dim, MAX_ELEMENTS // (counts[-1] * max(case.heads, 1))))
    case = case.replace(rows=counts[-1], dim=dim)
    if fused_impl.domain is not None:
        case = fused_impl.domain.fit(case)
    recipe = data.draw(recipes_for(fused_impl, norm_recipes()), label="recipe")
    x = make_fused_inputs(case)
    event(f"F4 batch: dim {'> 256' if case.dim > 256 else '<= 256'}")
    run_property("F4", "rows of a small batch vs inside larger batches, bitwise",
                 "kernelprop.properties.replays_norm_launch:f4_batch_invariance",
                 inputs={"inputs": x}, impl=fused_impl,
                 params=params_for(recipe, backend, part_rows=counts[0], counts=counts[1:]),
                 recipe=recipe, case=case)
