"""The emulated H100 (impls/h100_emulation.py) stays inside the CUDA error model on fixed cases:
P1 for sparse attention and RMSNorm under `--error-model cuda` with the figures its declared PTX
calls for, so the no-false-alarm claim of docs/measurements.md ("GPU error model: emulated H100")
is re-checked on every change; its instructions sit at the edge of their PTX figures (the
emulation is as adversarial as the sources allow), and a bug it is given is still caught."""
from __future__ import annotations

import pytest
import torch

from kernelprop.golden.error_model import FP32_ULP_REL, PTX_FIGURES
from kernelprop.golden.sampling import TC_ADVERSARIAL
from kernelprop.golden.attention_inputs import AttnCase, make_attn_inputs, AttnRecipe
from kernelprop.golden.rmsnorm_inputs import NormCase, NormRecipe, make_norm_inputs
from kernelprop.core.impl import make_impl
from kernelprop.impls import h100_emulation as h100
from kernelprop.core.verdict import check_outcome

EMU = "kernelprop.impls.h100_emulation"


@pytest.fixture
def cuda_model(monkeypatch):
    monkeypatch.setenv("KERNELPROP_ERROR_MODEL", "cuda")


def _steps(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Representable fp32 numbers between non-negative a and b."""
    return (a.view(torch.int32).long() - b.view(torch.int32).long()).abs()


def test_instructions_at_the_edge_of_their_figures():
    """ex2.approx: exactly 2 ulp from the correctly rounded 2^t (subnormal results kept, >= 0);
    rsqrt.approx / sqrt.approx: within and near their relative figures; div.full: 2 ulp."""
    t = torch.linspace(-149.5, 20, 50001).float()
    exact = torch.exp2(t.double())
    got = h100.ex2_approx(t)
    assert int(_steps(got, exact.float()).max()) == 2 and bool((got >= 0).all())
    normal = exact >= 2.0 ** -126
    rel = ((got.double() - exact).abs() / exact)[normal]
    assert float(rel.max()) <= PTX_FIGURES["ex2.approx"].rel and float(rel.max()) > 2 * FP32_ULP_REL
    assert bool((got[(exact < 2.0 ** -127) & (exact > 2.0 ** -140)] > 0).all())   # not flushed
    assert float(h100.ex2_approx(torch.tensor([-float("inf")]))) == 0.0
    v = torch.exp2(torch.rand(20000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
                   * 250 - 125).float()
    for fn, figure in ((h100.rsqrt_approx_ftz, "rsqrt.approx.ftz"), (h100.sqrt_approx_ftz, "sqrt.approx.ftz")):
        e = 1 / v.double().sqrt() if figure.startswith("rsqrt") else v.double().sqrt()
        r = ((fn(v).double() - e) / e).abs()
        assert float(r.max()) <= PTX_FIGURES[figure].rel and float(r.max()) > 0.9 * PTX_FIGURES[figure].rel
    q = h100.div_full(torch.ones_like(v), v)
    assert int(_steps(q, (1 / v.double()).float()).max()) == 2
    assert float(h100.rsqrt_approx_ftz(torch.tensor([2.0 ** -130]))) == float("inf")   # .ftz input


ATTN_CASES = [
    (AttnCase(seed=1, batches=1, tokens_per_batch=2, heads=4, head_dim=64, page_size=16, window=16,
              topk=64, max_cmp_len=128, min_used=16 + 128), AttnRecipe()),
    (AttnCase(seed=2, batches=1, tokens_per_batch=1, heads=2, head_dim=512, page_size=64, window=64,
              topk=96, max_cmp_len=128, min_used=64 + 128, data=TC_ADVERSARIAL), AttnRecipe(tile=32)),
    (AttnCase(seed=3, batches=2, tokens_per_batch=1, heads=2, head_dim=16, page_size=8, window=8,
              topk=40, max_cmp_len=64, min_used=8 + 64, data="large_logits", sink="large"),
     AttnRecipe(tile=5, l_from="unrounded", out_dtype="bf16")),
    (AttnCase(seed=4, batches=1, tokens_per_batch=2, heads=2, head_dim=48, page_size=16, window=16,
              topk=48, max_cmp_len=64, min_used=16 + 64), AttnRecipe(tile=16, p_dtype="fp32")),
]


def _attn_p1(case, recipe, impl):
    from kernelprop.properties.replays_attention import p1, recipe_params

    params = recipe_params(recipe, impl=impl)
    return params, check_outcome(p1({"inputs": make_attn_inputs(case)}, impl, params))


@pytest.mark.parametrize("case,recipe", ATTN_CASES)
def test_emulated_attention_passes_p1_under_the_cuda_model(cuda_model, case, recipe):
    impl = make_impl("sparse_attention", f"{EMU}:sparse_decode_attention")
    params, verdict = _attn_p1(case, recipe, impl)
    assert params["error_model"] == "cuda" and "wgmma.f32.bf16.bf16 k16" in params["ptx"]
    assert not verdict.failing, verdict


def test_emulated_attention_with_truncated_p_fails_p1(cuda_model):
    """The same emulation rounding P toward zero while the recipe says nearest: caught."""
    emu = h100.sparse_decode_attention

    def rtz_p(*args, recipe=None, **kwargs):
        return emu(*args, recipe=(recipe or AttnRecipe()).replace(rounding="rtz"), **kwargs)

    rtz_p.accepts_recipe, rtz_p.ptx = True, emu.ptx
    impl = make_impl("sparse_attention", f"{EMU}:sparse_decode_attention")
    impl = type(impl)(**{**impl.__dict__, "fn": rtz_p})
    case, recipe = ATTN_CASES[0]
    assert _attn_p1(case, recipe, impl)[1].failing


NORM_CASES = [
    (NormCase(seed=0, rows=4, dim=512, weight=True), NormRecipe()),
    (NormCase(seed=1, rows=3, dim=1000, weight=True, dtype="fp32"), NormRecipe(inv="rsqrt", chunk=96)),
    (NormCase(seed=2, rows=2, dim=4096, weight=False), NormRecipe(inv="recip_sqrt_rn", out_dtype="fp32")),
    (NormCase(seed=3, rows=4, dim=64, eps=0.0, weight=True), NormRecipe()),   # tiny: _inputs
]


def _inputs(case: NormCase):
    """The case's inputs; seed 3: rows near the CUDA domain's floor (v ~ 2^-100, with squares
    below 2^-126 that must not flush)."""
    x = make_norm_inputs(case)
    if case.seed != 3:
        return x
    tiny = torch.randn(case.rows, case.dim, generator=torch.Generator().manual_seed(3)) * 2.0 ** -50
    tiny[:, :8] *= 2.0 ** -18                    # squares ~2^-136: subnormal
    return x.replace(x=tiny.to(torch.bfloat16))


@pytest.mark.parametrize("case,recipe", NORM_CASES)
def test_emulated_rms_norm_passes_p1_under_the_cuda_model(cuda_model, case, recipe):
    from kernelprop.golden.rmsnorm_bounds import in_domain
    from kernelprop.properties.replays_norm import p1, recipe_params

    impl = make_impl("rms_norm", f"{EMU}:rms_norm")
    x = _inputs(case)
    assert in_domain(x.x, x.eps, "cuda")
    params = recipe_params(recipe, "cpu", impl=impl)
    assert params["error_model"] == "cuda" and params["ptx"]
    verdict = check_outcome(p1({"inputs": x}, impl, params))
    assert not verdict.failing, verdict


def test_emulated_rms_norm_with_a_12_bit_rsqrt_fails_p1(cuda_model):
    """An INV with 12 correct bits in place of rsqrt.approx (the NPU failure): caught at D = 8192."""
    from kernelprop.golden.rmsnorm import rms_norm_golden
    from kernelprop.properties.replays_norm import p1, recipe_params

    def approx(x, weight=None, *, eps=1e-6, recipe=None):
        return rms_norm_golden(x, weight, eps=eps, recipe=NormRecipe(inv="rsqrt_approx", approx_bits=12))

    approx.ptx = h100.rms_norm.ptx
    impl = make_impl("rms_norm", f"{EMU}:rms_norm")
    impl = type(impl)(**{**impl.__dict__, "fn": approx, "accepts_recipe": False})
    recipe = NormRecipe()
    verdict = check_outcome(p1({"inputs": make_norm_inputs(NormCase(seed=1, rows=4, dim=8192, weight=True))},
                               impl, recipe_params(recipe, "cpu", impl=impl)))
    assert verdict.failing


def test_error_model_knob_selects_cuda_on_the_cpu_backend(monkeypatch):
    """KERNELPROP_ERROR_MODEL (--error-model) picks the bounds' model; default the backend's."""
    from kernelprop.golden.error_model import error_model_family
    from kernelprop.golden.rmsnorm_bounds import V_MIN_BY_BACKEND, domain_v_min

    model_v_min = lambda: domain_v_min(error_model_family())  # noqa: E731
    from kernelprop.properties.replays_attention import recipe_params as attn_params
    from kernelprop.properties.replays_norm import recipe_params as norm_params

    monkeypatch.delenv("KERNELPROP_ERROR_MODEL", raising=False)
    monkeypatch.setenv("KERNELPROP_BACKEND", "cpu")
    assert error_model_family() == "cpu" and attn_params(AttnRecipe())["error_model"] == "random"
    assert norm_params(NormRecipe(), "cpu")["v_div_units"] == 1.0 and model_v_min() == V_MIN_BY_BACKEND["cpu"]
    monkeypatch.setenv("KERNELPROP_ERROR_MODEL", "cuda")
    assert attn_params(AttnRecipe())["error_model"] == "cuda" and model_v_min() == V_MIN_BY_BACKEND["cuda"]
    params = norm_params(NormRecipe(), "cpu")
    assert (params["inv_ulps"], params["v_div_units"], params["error_model"]) == (3.5, 5.0, "cuda")
    bundled = make_impl("rms_norm")       # its PTX: v by div.rn, INV per variant
    assert norm_params(NormRecipe(inv="rsqrt"), "cpu", impl=bundled)["v_div_units"] == 1.0
    # the fused op's F2 holds y to RMSNorm's P1 bound on z: the same figures, not the backend's
    from kernelprop.properties.replays_fused import params_for as fused_params
    assert fused_params(NormRecipe(), "cpu") == params
    assert fused_params(NormRecipe(inv="rsqrt"), "cpu")["inv_ulps"] == norm_params(NormRecipe(inv="rsqrt"), "cpu")["inv_ulps"]
    monkeypatch.setenv("KERNELPROP_ERROR_MODEL", "gpu")
    with pytest.raises(ValueError, match="KERNELPROP_ERROR_MODEL"):
        error_model_family()
