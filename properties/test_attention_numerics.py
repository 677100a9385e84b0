"""P2 and P3 for sparse attention: the golden against the fp64 truth (analytic bound, every recipe,
compacted tiling included), the ratio rule for the implementation, and invariance of the online
merge to tile size and tiling (golden: P2 + P2; implementation: P1 + P1 + P2 + P2). Bounds:
golden/attention_bounds.py and docs/bounds-attention-props.md."""
import pytest
from hypothesis import strategies as st

from kernelprop.golden.attention_inputs import AttnCase, make_attn_inputs
from kernelprop.properties.checks import run_property
from kernelprop.properties.replays_attention import recipe_params
from kernelprop.properties.attention_limits import AttnLimits
from kernelprop.properties.strategies import shape_class_property
from kernelprop.properties.attention_strategies import (attn_recipes, backend_limits, draw_attn,
                                                        tiles)

# Properties that call the implementation twice with any tile size (tile 1 costs one interpreter
# iteration per index position) draw smaller cases on the CPU interpreter.
TWO_CALL_CPU_LIMITS = AttnLimits(batches=1, tokens_per_batch=2, heads=3, head_dim=24, page_size=8,
                             window=6, topk=6, extra=2, cmp_len=16)
ONE_CALL_CPU_LIMITS = AttnLimits(batches=2, tokens_per_batch=2, heads=3, head_dim=32, page_size=8,
                             window=12, topk=16, extra=4, cmp_len=32)
BOTH_TILINGS = ("positional", "compacted")


def _golden_case(data, shape_class, backend, device):
    """(case, recipe) of a golden-only property: every recipe, both tilings, both p_max."""
    drawn = draw_attn(data, shape_class, backend=backend, device=device,
                      recipes=attn_recipes(tilings=BOTH_TILINGS, p_maxes=("tile", "running")))
    return drawn.case, drawn.recipe


def _impl_case(data, shape_class, impl, backend, device, cpu_limits: AttnLimits):
    """(case, recipe) of an implementation's property: its recipes, `cpu_limits` on the CPU."""
    drawn = draw_attn(data, shape_class, impl=impl, backend=backend, device=device,
                      limits=backend_limits(backend, cpu_limits))
    return drawn.case, drawn.recipe


def _other_recipe(data, recipe, tilings, max_tile=100):
    """A second recipe differing in tile size (1, odd, > K, non-divisors) and tiling."""
    return recipe.replace(tile=data.draw(tiles(max_tile=max_tile), label="tile_b")).with_tiling(
        data.draw(st.sampled_from(tilings), label="tiling_b"))


@shape_class_property("P2", "attn")
def test_p2_golden_within_analytic_bound_of_fp64(backend, device, shape_class, data):
    case, recipe = _golden_case(data, shape_class, backend, device)
    run_property("P2", "golden vs fp64 truth, analytic bound", "kernelprop.properties.replays_attention:p2_golden",
                 inputs={"inputs": make_attn_inputs(case)}, params=recipe_params(recipe),
                 recipe=recipe, case=case)


@shape_class_property("P2", "attn")
def test_p2_ratio_rule_impl_vs_fp64(attn_impl, backend, device, shape_class, data):
    case, recipe = _impl_case(data, shape_class, attn_impl, backend, device, ONE_CALL_CPU_LIMITS)
    run_property("P2", "ratio rule: err(impl) <= err(golden) + max P1",
                 "kernelprop.properties.replays_attention:p2_ratio", inputs={"inputs": make_attn_inputs(case)},
                 impl=attn_impl, params=recipe_params(recipe), recipe=recipe, case=case)


@shape_class_property("P3", "attn")
def test_p3_golden_tile_and_tiling_invariance(backend, device, shape_class, data):
    case, recipe = _golden_case(data, shape_class, backend, device)
    other = _other_recipe(data, recipe, BOTH_TILINGS)
    inputs = {"inputs": make_attn_inputs(case)}
    params = {**recipe_params(recipe), "recipe_b": recipe_params(other)["recipe"]}
    run_property("P3", "golden, two tile sizes and tilings",
                 "kernelprop.properties.replays_attention:golden_agree", inputs=inputs, params=params,
                 recipe=recipe, case=case)
    if recipe.p_dtype == "fp32":
        run_property("P3", "fp32 P: the P3 bound is a few fp32 ulps x tiles",
                     "kernelprop.properties.replays_attention:p3_fp32_bound_size", inputs=inputs,
                     params=params, recipe=recipe, case=case)


@shape_class_property("P3", "attn")
def test_p3_impl_tile_invariance(attn_impl, backend, device, shape_class, data):
    if not attn_impl.varies("tile"):
        pytest.skip(reason=attn_impl.unsupported_reason(
            attn_impl.recipe_for(AttnCase()).replace(tile=1)))
    # positional only: the bundled kernels and impls/torch_reference.py raise NotImplementedError
    # for compacted tiling (the golden's P3 covers compacted)
    case, recipe = _impl_case(data, shape_class, attn_impl, backend, device, TWO_CALL_CPU_LIMITS)
    tilings = ("positional",) if attn_impl.varies("tiling") else (recipe.tiling,)
    other = _other_recipe(data, recipe, tilings, max_tile=2 * case.num_indices + 1)
    params = {**recipe_params(recipe), "recipe_b": recipe_params(other)["recipe"]}
    run_property("P3", "impl, two tile sizes",
                 "kernelprop.properties.replays_attention:impl_agree", inputs={"inputs": make_attn_inputs(case)},
                 impl=attn_impl, params=params, recipe=recipe, case=case)
