"""RMSNorm properties of how the kernel is launched rather than of its arithmetic on one input:
- P9 batch invariance: a row's output does not depend on how many rows share the call (launch
  heuristics keyed on the token count: block size, split, path). Checked bitwise for
  implementations declaring `batch_invariant = True`; for every other one a single example is
  measured and reported (skip message), as information.
- P11 reruns: a second call on the same tensors is bitwise the first, and x and weight come back
  unchanged (a kernel normalizing its input in place corrupts the caller's residual).
- P1 under every declared autotune config (cpu backend, kernelprop.faithful): the session
  verifies config 0; this runs configs 1.. on the same draw, so a config that leaves part of the
  output unwritten (NaN under the poisoned allocations) fails.
Replays: properties/replays_norm_launch.py; bounds: docs/bounds-rmsnorm.md#launch.
"""
import pytest
import torch
from hypothesis import assume, event, given, strategies as st

from kernelprop.golden.rmsnorm_inputs import NormCase, NormRecipe, make_norm_inputs
from kernelprop.properties.checks import run_property
from kernelprop.golden.error_model import error_model_family
from kernelprop.golden.rmsnorm_bounds import in_recipe_domain
from kernelprop.properties.replays_norm import recipe_params
from kernelprop.properties.strategies import recipes_for, shape_class_property
from kernelprop.properties.norm_strategies import draw_norm_case, norm_recipes

LAUNCH = "kernelprop.properties.replays_norm_launch"
# Row counts on both sides of the thresholds launch heuristics use (powers of two and their
# neighbours: vLLM's num_tokens < 256, the > 64-row path switch, split counts), up to 4096.
COUNTS = (1, 2, 3, 8, 16, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 511, 512, 513,
          1023, 1024, 1025, 2048, 4096)
# Hidden sizes, mostly past the plain class's (a thread holds several elements of a row only past
# its block size)
WIDE_DIMS = (64, 257, 1000, 2048, 4096, 7168)
# Each example calls one count per band: the smallest batch's rows, called alone, against the same
# rows inside the two larger batches (every example crosses 64 and 512, and 256 half the time)
BANDS = ((1, 64), (64, 512), (512, 4097))
MAX_ELEMENTS = 1 << 23  # per call: the dim is lowered so that the largest batch stays cheap
REPORT_CASE = dict(rows=257, dim=600)


def _batch_invariant(impl) -> bool:
    return getattr(impl.fn, "batch_invariant", False) is True


def _fit(impl, case):
    return case if impl.domain is None else impl.domain.fit(case)


# %% P9 batch invariance

@pytest.mark.spec("P9")
@given(data=st.data())
def test_p9_batch_invariance(norm_impl, backend, device, data):
    if not _batch_invariant(norm_impl):
        pytest.skip(reason="the implementation does not declare batch_invariant = True "
                           "(test_p9_batch_invariance_reported measures it as information)")
    case = draw_norm_case(data, "plain", device=device, domain=norm_impl.domain)
    counts = [data.draw(st.sampled_from([c for c in COUNTS if lo <= c < hi]),
                        label=f"rows in a batch of [{lo}, {hi})") for lo, hi in BANDS]
    dim = data.draw(st.one_of(st.sampled_from(WIDE_DIMS), st.integers(257, 8192)), label="dim")
    dim = max(1, min(dim, MAX_ELEMENTS // (counts[-1] * max(case.heads, 1))))
    case = _fit(norm_impl, case.replace(rows=counts[-1], dim=dim, nonfinite_rows=0))
    recipe = data.draw(recipes_for(norm_impl, norm_recipes(), case), label="recipe")
    whole = make_norm_inputs(case)
    assume(in_recipe_domain(whole.x, whole.eps, recipe, error_model_family()))
    part = whole.replace(x=whole.x[:counts[0]])
    event(f"P9 batch: dim {'> 256' if case.dim > 256 else '<= 256'}, "
          f"{'fp32' if recipe.for_input(whole.x.dtype).out_dtype == 'fp32' else 'bf16'} output")
    run_property("P9", "rows of a small batch vs inside larger batches, bitwise", f"{LAUNCH}:p9_batch_invariance",
                 inputs={"inputs": whole, "part": part}, impl=norm_impl,
                 params=recipe_params(recipe, backend, start=0, counts=counts[1:]), recipe=recipe,
                 case=case)


@pytest.mark.spec("P9")
def test_p9_batch_invariance_reported(norm_impl, device):
    """One example (row 0 of 257 rows at D = 600 vs row 0 alone) for an implementation that
    does not declare batch invariance: the result is the skip message (information, no failure)."""
    if _batch_invariant(norm_impl):
        pytest.skip(reason="declared batch_invariant: test_p9_batch_invariance checks it")
    case = _fit(norm_impl, NormCase(seed=1, device=device, **REPORT_CASE))
    whole = make_norm_inputs(case)
    recipe = norm_impl.recipe_for(case)
    call = lambda x: x.call(norm_impl, recipe=recipe)  # noqa: E731
    batch, alone = call(whole)[:1], call(whole.replace(x=whole.x[:1]))
    differ = int((batch.float().view(torch.int32) != alone.float().view(torch.int32)).sum())
    pytest.skip(reason=f"information (not declared batch_invariant): row 0 in {case.rows} rows vs "
                       f"alone at D = {case.dim}: "
                       + ("bitwise equal" if differ == 0 else f"{differ} element(s) differ"))


# %% P11 reruns and unchanged inputs

@shape_class_property("P11", "norm")
def test_p11_reruns_equal_and_inputs_unchanged(norm_impl, backend, device, shape_class, data):
    case = draw_norm_case(data, shape_class, device=device, domain=norm_impl.domain)
    recipe = data.draw(recipes_for(norm_impl, norm_recipes(), case), label="recipe")
    run_property("P11", "rerun bitwise equal, x and weight unchanged", f"{LAUNCH}:p11_reruns",
                 inputs={"inputs": make_norm_inputs(case)}, impl=norm_impl,
                 params=recipe_params(recipe, backend), recipe=recipe, case=case)


# %% P1 under every declared autotune config

def _autotuned_configs(impl, x, recipe) -> int:
    """How many configs every autotuned Triton kernel of one call declares (the smallest; 0:
    none ran)."""
    from kernelprop.faithful import autotune_choices

    before = autotune_choices()
    x.call(impl, recipe=recipe)
    ran = [c for k, c in autotune_choices().items() if before.get(k) is not c]
    return min((c.count for c in ran), default=0)


@pytest.mark.spec("P1")
@given(data=st.data())
def test_p1_every_autotune_config(norm_impl, backend, device, data):
    if backend != "cpu":
        pytest.skip(reason="choosing an autotune config needs the faithful interpreter (cpu "
                           "backend); on a GPU the autotuner benchmarks and keeps one")
    case = draw_norm_case(data, "plain", device=device, domain=norm_impl.domain)
    recipe = data.draw(recipes_for(norm_impl, norm_recipes(), case), label="recipe")
    if isinstance(recipe, NormRecipe) and recipe.chunk is not None:
        recipe = recipe.replace(chunk=max(recipe.chunk, -(-case.dim // 16)))
    x = make_norm_inputs(case)
    assume(in_recipe_domain(x.x, x.eps, recipe, error_model_family()))
    count = _autotuned_configs(norm_impl, x, recipe)
    if count < 2:
        pytest.skip(reason="no @triton.autotune kernel with several configs ran")
    for index in range(1, count):
        run_property("P1", f"rms_norm impl vs golden, autotune config {index}",
                     f"{LAUNCH}:p1_autotune_config", inputs={"inputs": x}, impl=norm_impl,
                     params=recipe_params(recipe, backend, autotune_config=index), recipe=recipe,
                     case=case)
