"""The norm recipes of real models (SPEC 3). The Hugging Face RMSNorm formulas (impls/hf_norms.py)
as shipped: each declares its NormRecipe (Llama: round_before_weight; Gemma: weight_offset 1; both
out_dtype "input") and passes the RMSNorm property catalogue under the ci profile, as a catalogue
control does (kernelprop.commands.mutants.run_entry). And the planted bug of each new field dies on P1.
"""
import pytest
import torch

from kernelprop.golden.rmsnorm_inputs import NormCase, make_norm_inputs
from kernelprop.golden.rmsnorm import rms_norm_golden
from kernelprop.impls import hf_norms
from kernelprop.impls.mutants import by_name
from kernelprop.commands.mutants import run_entry

TIMEOUT_S = 300
RECIPE_MUTANTS = ("gemma_no_offset", "llama_no_cast", "llama_cast_rtz", "input_dtype_always_bf16",
                  "narrow_in_fp32", "promote_fp32_sum")


@pytest.mark.parametrize("fn", [hf_norms.llama_rms_norm, hf_norms.gemma_rms_norm],
                         ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", ["bf16", "fp32"])
def test_adapter_output_dtype_follows_x_and_is_its_recipe_golden_on_bf16(fn, dtype):
    x = make_norm_inputs(NormCase(seed=3, rows=6, dim=40, dtype=dtype))
    y, g = x.call(fn), x.call(rms_norm_golden, recipe=fn.recipe)
    assert y.dtype == x.x.dtype == g.dtype
    if dtype == "bf16":  # bf16 squares are exact: only the sum's order differs, below one flip here
        assert torch.equal(y, g)


def test_adapters_differ_from_the_default_recipe_where_their_field_matters():
    x = make_norm_inputs(NormCase(seed=4, rows=8, dim=64, dtype="bf16"))
    default = x.call(rms_norm_golden)
    assert not torch.equal(x.call(hf_norms.gemma_rms_norm), default)      # 1 + w
    assert (x.call(hf_norms.llama_rms_norm) != default).any()               # the cast before w


@pytest.mark.parametrize("name", ["hf_llama_rms_norm", "hf_gemma_rms_norm"])
def test_hf_formulas_pass_the_rmsnorm_catalogue(name, tmp_path):
    run = run_entry(by_name(name), role="control", profile="ci", workdir=tmp_path,
                    timeout=TIMEOUT_S, threads=1)
    cells = {p: run.cell(p) for p in ("P1", "P4", "P12", "P13")}
    assert run.tests, f"no RMSNorm test ran: {run.output_tail[-1500:]}"
    assert run.verdict == "passed", f"{name}: {run.verdict} {cells}\n{run.output_tail[-2500:]}"
    assert cells["P1"] == "." and cells["P12"] == ".", cells


@pytest.mark.parametrize("name", RECIPE_MUTANTS)
def test_each_recipe_field_has_a_planted_bug_that_p1_kills(name, tmp_path):
    run = run_entry(by_name(name), role="mutant", profile="ci", workdir=tmp_path, specs=("P1",),
                    extra_args=("-x",), timeout=TIMEOUT_S, threads=1)
    assert run.tests, f"no P1 test ran: {run.output_tail[-1500:]}"
    assert run.cell("P1") == "K", f"{name} survives P1: {run.description}\n{run.output_tail[-2000:]}"
