"""Fused residual-add RMSNorm properties F1-F5 (SPEC section 9) on the implementation under test
(`fused_impl`: the bundled kernel or --impl fused_add_rms_norm=...). Bad input is P13 through the
op's table (properties/replays_fused_bad_input.py, run by test_bad_input.py). Each test runs over
the op's shape classes (FusedInputs.SHAPE_CLASSES). Bounds: docs/bounds-fused-add-norm.md."""
import torch
from hypothesis import assume, strategies as st

from kernelprop.golden.fused_add_norm import make_fused_inputs
from kernelprop.golden.error_model import error_model_family
from kernelprop.golden import fused_add_norm_bounds
from kernelprop.properties.checks import run_property
from kernelprop.properties.fused_strategies import draw_fused_case
from kernelprop.properties.replays_fused import params_for
from kernelprop.properties.strategies import recipes_for, shape_class_property
from kernelprop.properties.norm_strategies import norm_recipes

R = "kernelprop.properties.replays_fused"
MAX_CHUNKS_CPU = 16   # the interpreter runs one masked reduction per chunk: cap their count


def z_in_domain(inputs) -> bool:
    """fused_add_norm_bounds.z_in_domain under this run's error model (golden.error_model
    .error_model_family: --error-model, else the backend's). The test bodies call it without it:
    hypothesis derives a test's derandomized seed from its source, which stays as it is."""
    return fused_add_norm_bounds.z_in_domain(inputs, error_model_family())


def _draw(impl, data, device, shape_class, backend):
    case = draw_fused_case(data, shape_class, impl=impl, device=device)
    recipe = data.draw(recipes_for(impl, norm_recipes()), label="recipe")
    if backend == "cpu" and impl.varies("chunk") and recipe.chunk is not None \
            and -(-case.dim // recipe.chunk) > MAX_CHUNKS_CPU:
        recipe = recipe.replace(chunk=-(-case.dim // MAX_CHUNKS_CPU))
    return case, recipe


def _run(pid, check, replay, case, recipe, impl, backend, inputs, **extra):
    return run_property(pid, check, f"{R}:{replay}", inputs=inputs, impl=impl,
                        params=params_for(recipe, backend, impl=impl, **extra), recipe=recipe, case=case)


@shape_class_property("F1", "fused")
def test_f1_residual_out_is_the_rounded_sum(fused_impl, backend, device, shape_class, data):
    case, recipe = _draw(fused_impl, data, device, shape_class, backend)
    _run("F1", "residual_out bitwise RNE_in(x + residual)", "f1_residual", case, recipe, fused_impl,
         backend, {"inputs": make_fused_inputs(case)})


@shape_class_property("F2", "fused")
def test_f2_y_within_the_norm_bound_on_z(fused_impl, backend, device, shape_class, data):
    case, recipe = _draw(fused_impl, data, device, shape_class, backend)
    x = make_fused_inputs(case)
    assume(z_in_domain(x))
    _run("F2", "y within the RMSNorm P1 bound of the golden on z", "f2_norm", case, recipe,
         fused_impl, backend, {"inputs": x})


@shape_class_property("F3", "fused", not_applicable={
    "cancellation": "residual = 0 leaves nothing to cancel"})
def test_f3_zero_residual_is_rms_norm_of_x(fused_impl, backend, device, shape_class, data):
    case, recipe = _draw(fused_impl, data, device, shape_class, backend)
    x = make_fused_inputs(case)
    zero = x.replace(residual=torch.zeros_like(x.x))
    swapped = x.replace(x=torch.zeros_like(x.x), residual=x.x)
    _run("F3", "residual = 0: z = x, y(x, 0) == y(0, x)", "f3_zero_residual", case, recipe,
         fused_impl, backend, {"inputs": zero, "swapped": swapped})


def _change_other_rows(x, keep, seed: int):
    gen = torch.Generator().manual_seed(seed)
    D = x.x.shape[-1]
    rows = x.x.reshape(-1, D).shape[0]
    mask = torch.ones(rows, dtype=torch.bool)
    mask[keep] = False
    new = []
    for t in (x.x, x.residual):
        fresh = (torch.randn(t.shape, generator=gen) * 3).to(t.dtype).to(t.device)
        flat = fresh.reshape(-1, D)
        flat[~mask] = t.reshape(-1, D)[~mask]
        new.append(flat.reshape(t.shape))
    return x.replace(x=new[0], residual=new[1])


@shape_class_property("F4", "fused")
def test_f4_rows_are_independent(fused_impl, backend, device, shape_class, data):
    case, recipe = _draw(fused_impl, data, device, shape_class, backend)
    x = make_fused_inputs(case)
    rows = x.x.reshape(-1, case.dim).shape[0]
    assume(rows >= 1)
    keep = sorted(set(data.draw(st.lists(st.integers(0, rows - 1), min_size=1, max_size=2), label="keep")))
    seed = data.draw(st.integers(0, 2 ** 16), label="seed")
    _run("F4", "other rows' data leave the kept rows bitwise unchanged", "f4_rows", case, recipe,
         fused_impl, backend, {"a": x, "b": _change_other_rows(x, keep, seed)}, keep=keep)


@shape_class_property("F5", "fused")
def test_f5_writes_only_what_it_declares(fused_impl, backend, device, shape_class, data):
    case, recipe = _draw(fused_impl, data, device, shape_class, backend)
    strided_ok = fused_impl.domain is None or getattr(fused_impl.domain, "strided", None) is not False
    pad = data.draw(st.sampled_from((0, 3) if strided_ok else (0,)), label="row padding")
    _run("F5", "in place: y into x, z into residual, nothing else written; out of place: no input "
         "written", "f5_buffers", case, recipe, fused_impl, backend,
         {"inputs": make_fused_inputs(case)}, pad=pad)
