"""P1 for sparse attention: the implementation equals the golden of its recipe, within the bound
of golden/attention_bounds.py (sound: any correct implementation passes; tight: one that rounds P
the wrong way fails)."""

from kernelprop.golden.attention_inputs import make_attn_inputs
from kernelprop.properties.checks import run_property
from kernelprop.properties.replays_attention import recipe_params
from kernelprop.properties.attention_strategies import draw_attn
from kernelprop.properties.strategies import shape_class_property


@shape_class_property("P1", "attn")
def test_p1_kernel_matches_golden(attn_impl, backend, device, shape_class, data):
    drawn = draw_attn(data, shape_class, impl=attn_impl, backend=backend, device=device)
    case, recipe = drawn.case, drawn.recipe
    run_property("P1", "impl vs golden, same recipe", "kernelprop.properties.replays_attention:p1",
                 inputs={"inputs": make_attn_inputs(case)}, impl=attn_impl,
                 params=recipe_params(recipe), recipe=recipe, case=case)
