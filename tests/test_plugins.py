"""Third-party kernels as they ship (issue 10): out_dtype / untiled recipes, declarations, domains,
flat slot ids, report hints, and regression tests built from the shrunk counterexamples of the
planted implementations under tests/planted/ (each case below is the one the ci profile shrank to).
"""
from __future__ import annotations

import dataclasses

import math
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from kernelprop.golden.attention import gather_kv, sparse_attention_golden, sparse_attention_trace
from kernelprop.golden.attention_inputs import (UNSPLIT_FIELDS, AttnCase, AttnDomain, AttnRecipe,
                                                make_attn_inputs)
from kernelprop.golden.rmsnorm_inputs import NormCase, NormDomain
from kernelprop.golden.output_rounding import reachable_bf16, round_bf16_rne, widen_for_rounded
from kernelprop.commands import hints
from kernelprop.properties import explain_attention
from kernelprop.core.impl import check_targets, make_impl
from kernelprop.core.verdict import check_outcome, derived_truth
from kernelprop.golden.attention_slots import flat_slot_ids
from kernelprop.properties import replays_attention as R

ROOT = Path(__file__).resolve().parents[1]
PLANTED = "tests/planted/"
# the ci profile's shrunk examples (reports of the planted implementations)
TINY = AttnCase(seed=0, batches=1, tokens_per_batch=1, heads=1, head_dim=1, page_size=1, window=1,
                topk=0, max_cmp_len=0, min_used=0, spare_pages=0)
TINY2 = TINY.replace(batches=2)


def _planted(name: str):
    return make_impl("sparse_attention", f"{PLANTED}{name}.py:sparse_decode_attention")


# %% recipe and output rounding

def test_recipe_out_dtype_and_untiled_are_validated():
    assert AttnRecipe(tile=None).tile_for(40) == 40 and AttnRecipe(tile=64).tile_for(40) == 40
    assert AttnRecipe(tile=7).tile_for(40) == 7 and AttnRecipe(tile=None).tile_for(0) == 1
    for bad in ({"tile": 0}, {"tile": True}, {"tile": 2.0}, {"out_dtype": "fp16"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            AttnRecipe(**bad)


def _exact_bf16_rne(v: float) -> float:
    """Nearest-even bf16 of a float64 by exact rational arithmetic (normal range)."""
    x = Fraction(v)
    e = math.floor(math.log2(abs(v)))
    step = Fraction(2) ** (e - 7)
    q, r = divmod(x, step)
    if r > step / 2 or (r == step / 2 and q % 2 == 1):
        q += 1
    return float(q * step)


def test_round_bf16_rne_from_fp64_is_one_rounding():
    """fp64 values just above a bf16 tie: fp32-then-bf16 would round to the tie and then to even
    (down); one rounding goes up. round_bf16_rne must match the exact rational rounding."""
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(2000, generator=gen, dtype=torch.float64)
    ties = torch.tensor([1 + 2.0 ** -8 + 2.0 ** -40, 1 + 2.0 ** -8 - 2.0 ** -40,
                         -(3 + 2.0 ** -7 + 2.0 ** -45), 1 + 3 * 2.0 ** -8], dtype=torch.float64)
    values = torch.cat([base, ties])
    got = round_bf16_rne(values)
    want = torch.tensor([_exact_bf16_rne(float(v)) for v in values], dtype=torch.float64)
    assert torch.equal(got, want)
    assert float(round_bf16_rne(ties[:1])) == 1 + 2.0 ** -7  # double rounding would give 1.0


def test_reachable_bf16_is_exact_inside_one_cell_and_the_gap_across_cells():
    c = torch.tensor([1.0 + 2.0 ** -10, 1.0 + 2.0 ** -8 - 2.0 ** -20, 3.0], dtype=torch.float64)
    b = torch.tensor([2.0 ** -12, 2.0 ** -10, 0.0], dtype=torch.float64)
    expected, bound = reachable_bf16(c, b)
    assert expected.tolist() == [1.0, 1.0, 3.0]
    # first: [c - b, c + b] rounds to 1.0 only -> exact; second straddles the tie at 1 + 2^-8
    assert bound.tolist() == [0.0, 2.0 ** -7, 0.0]
    widened = widen_for_rounded(torch.zeros(1, dtype=torch.float64), torch.tensor([1.0]))
    assert widened.tolist() == [2.0 ** -8]


def test_golden_untiled_is_one_tile_of_K_and_bf16_output_is_rne():
    x = make_attn_inputs(AttnCase(seed=5, topk=30, extra=4, pad_prob=0.2))
    K = x.sparse_indices.shape[1]
    untiled = x.call(sparse_attention_trace, recipe=AttnRecipe(tile=None))
    one_tile = x.call(sparse_attention_trace, recipe=AttnRecipe(tile=K))
    assert torch.equal(untiled.o, one_tile.o) and untiled.tile == K
    assert x.call(sparse_attention_trace, recipe=AttnRecipe(tile=10 * K)).tile == K  # min(tile, K)
    o16 = x.call(sparse_attention_golden, recipe=AttnRecipe(out_dtype="bf16"))
    o32 = x.call(sparse_attention_golden, recipe=AttnRecipe())
    assert o16.dtype == torch.bfloat16 and torch.equal(o16, o32.to(torch.bfloat16))


@pytest.mark.parametrize("recipe", [AttnRecipe(out_dtype="bf16"), AttnRecipe(tile=None),
                                    AttnRecipe(tile=None, out_dtype="bf16", p_dtype="fp32")],
                         ids=["bf16-out", "untiled", "untiled-bf16-fp32p"])
def test_bundled_kernel_writes_bf16_and_runs_untiled_within_p1(recipe):
    impl = make_impl("sparse_attention")
    for seed in range(3):
        x = make_attn_inputs(AttnCase(seed=seed, heads=3, head_dim=24, topk=20, pad_prob=0.2))
        outcome = R.p1({"inputs": x}, impl, R.recipe_params(recipe))
        assert outcome.actual.dtype == (torch.bfloat16 if recipe.out_dtype == "bf16" else torch.float32)
        assert not check_outcome(outcome).failing, check_outcome(outcome).line()


def test_bf16_output_declared_as_fp32_fails_p1_with_the_grid_hint():
    """Shrunk by ci: P1 on tests/planted/attention_undeclared_bf16.py."""
    impl = _planted("attention_undeclared_bf16")
    x = make_attn_inputs(TINY2)
    outcome = R.p1({"inputs": x}, impl, R.recipe_params(impl.recipe))
    assert check_outcome(outcome).failing
    truth, _ = derived_truth({"inputs": x}, outcome)
    assert hints.evidence_hints("P1", outcome, truth, {"inputs": x}, impl.recipe, kind=impl.kind)[0] == explain_attention.BF16_GRID
    # declared truthfully (the reference itself) it passes on the same input
    ref = make_impl("sparse_attention", "impls/flat_slot_reference.py:sparse_decode_attention")
    assert not check_outcome(R.p1({"inputs": x}, ref, R.recipe_params(ref.recipe))).failing


def test_more_exact_than_declared_gets_the_recipe_hint():
    impl = _planted("attention_exact_fp32")
    x = make_attn_inputs(AttnCase(seed=0))
    outcome = R.p1({"inputs": x}, impl, R.recipe_params(impl.recipe))
    truth, _ = derived_truth({"inputs": x}, outcome)
    assert check_outcome(outcome).failing
    hint = hints.closer_to_truth_hint(impl.recipe)
    assert hints.evidence_hints("P1", outcome, truth, {"inputs": x}, impl.recipe, kind=impl.kind) == [hint]
    assert hint.startswith(hints.CLOSER_TO_TRUTH.split("{")[0]) and "AttnRecipe: tile, " in hint
    # the same tensors in a check whose expected side is not the golden get no such hint
    relational = dataclasses.replace(outcome, golden_expected=False)
    assert hints.evidence_hints("P1", relational, truth, {"inputs": x}, impl.recipe, kind=impl.kind) == []


def test_pos_inf_sink_giving_tiny_output_is_named():
    """Shrunk by ci: P1 on tests/planted/attention_sink_clamped.py (+inf sink, o ~ e^-88 o)."""
    impl = _planted("attention_sink_clamped")
    x = make_attn_inputs(TINY2.replace(sink="pos_inf"))
    outcome = R.p1({"inputs": x}, impl, R.recipe_params(impl.recipe))
    verdict = check_outcome(outcome)
    assert verdict.failing and verdict.expected == 0 and 0 < abs(verdict.actual) < 1e-37
    assert hints.evidence_hints("P1", outcome, None, {"inputs": x}, impl.recipe, kind=impl.kind)[0] == explain_attention.POS_INF_SINK


# %% P6 and P10 regressions

def test_p6_nan_from_the_implementation_is_a_violation_not_a_nan_bound():
    """Shrunk by ci: P6 sink scaling on tests/planted/attention_nan_without_sink.py raised
    'bound must be >= 0 (and not NaN)' before; now a violation with a reason."""
    impl = _planted("attention_nan_without_sink")
    x = make_attn_inputs(TINY).replace(attn_sink=torch.zeros(1))
    outcome = R.p6_sink_scaling_impl({"inputs": x}, impl, R.recipe_params(AttnRecipe()))
    assert not torch.isnan(outcome.bound).any()
    verdict = check_outcome(outcome)
    assert verdict.failing and "o(sink=-inf) has 1 non-finite" in outcome.bound_doc


def test_p10_does_not_blame_unread_rows_for_nan_that_occurs_without_them():
    """Shrunk by ci: P10 on tests/planted/attention_nan_token0.py (token 0 always NaN)."""
    impl = _planted("attention_nan_token0")
    x = make_attn_inputs(TINY)
    x_b = x.replace(ori_kv=torch.nan_to_num(x.ori_kv), cmp_kv=torch.nan_to_num(x.cmp_kv))
    outcome = R.p10_unread_rows({"inputs": x, "inputs_b": x_b}, impl, R.recipe_params(AttnRecipe()))
    assert check_outcome(outcome).failing
    assert outcome.bound_doc.startswith("1 output element(s) are non-finite also with finite garbage")
    assert outcome.metrics["nonfinite_without_nan_rows"] == 1
    # a reader of unread rows is still named as one
    diagnosis = R.p10_diagnosis({"nonfinite_with_nan_rows": 3, "nonfinite_without_nan_rows": 0,
                                 "nonfinite_in_both": 0})
    assert "reads pool rows no valid index reaches" in diagnosis


# %% declarations

def test_declarations_are_read_and_checked():
    chunked = make_impl("sparse_attention", "impls/chunked_reference.py:sparse_decode_attention")
    assert chunked.accepts_recipe == ("tile",) and chunked.validates_inputs is False
    assert chunked.varies("tile") and not chunked.varies("p_dtype")
    assert chunked.supports(chunked.recipe.replace(tile=7))
    assert not chunked.supports(chunked.recipe.replace(p_dtype="bf16"))
    with pytest.raises(ValueError, match="accepts_recipe"):
        chunked(recipe=chunked.recipe.replace(rounding="rtz"))
    assert "validates_inputs=False" in chunked.declared()
    bundled = make_impl("sparse_attention")
    assert bundled.accepts_recipe == UNSPLIT_FIELDS and bundled.validates_inputs and bundled.domain is None


def test_bad_declarations_and_paths_give_one_clear_error(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def fn(*a, **k):\n    pass\nfn.accepts_recipe = ('tilee',)\nfn.validates_inputs = 1\n"
                   "def gn(*a, **k):\n    pass\ngn.domain = 'D=512'\n")
    with pytest.raises(ValueError, match="accepts_recipe must be"):
        make_impl("sparse_attention", f"{bad}:fn")
    with pytest.raises(ValueError, match="must be a AttnDomain"):
        make_impl("sparse_attention", f"{bad}:gn")
    with pytest.raises(ValueError) as err:
        check_targets({"sparse_attention": "missing.py:fn", "rms_norm": f"{bad}:nope"})
    assert "missing.py" in str(err.value) and "nope" in str(err.value)


def test_wrong_impl_path_is_one_usage_error():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "KERNELPROP_"))}
    env["PYTHONPATH"] = str(ROOT)
    run = subprocess.run([sys.executable, "-m", "pytest", "properties", "-p", "no:cacheprovider",
                          "-p", "no:xdist", "--co", "-q", "--impl",
                          "sparse_attention=no_such_kernel.py:fn"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    out = run.stdout + run.stderr
    assert run.returncode == 4, out[-2000:]  # pytest's usage-error exit code
    errors = [line for line in out.splitlines() if "ERROR" in line or "error" in line.lower()]
    assert len(errors) == 1 and "does not exist" in errors[0], out[-2000:]


def test_domains_fit_cases_and_describe_themselves():
    dom = AttnDomain(sinks=("finite", "neg_inf"), head_dims=(24, 40), max_tokens_per_batch=1,
                     max_indices=10)
    for seed, sink in enumerate(("pos_inf", "large", "zero", "finite")):
        case = dom.fit(AttnCase(seed=seed, head_dim=17, tokens_per_batch=3, sink=sink, window=8,
                                topk=9, extra=3))
        assert case.head_dim in (24, 40) and case.tokens_per_batch == 1
        assert case.sink in ("finite", "neg_inf") and case.num_indices <= 10
    assert dom.allows_sink_value(3.0) and not dom.allows_sink_value(math.inf)
    assert "head_dims=(24, 40)" in dom.describe() and AttnDomain().describe() == "any input"
    norm = NormDomain(dims=(64,), dtypes=("bf16",), weight=True)
    fitted = norm.fit(NormCase(seed=1, dim=17, dtype="fp32", weight=False))
    assert (fitted.dim, fitted.dtype, fitted.weight) == (64, "bf16", True)
    with pytest.raises(ValueError, match="sinks"):
        AttnDomain(sinks=("tiny",))


# %% flat slot ids

def test_flat_slot_ids_name_the_rows_the_golden_gathers():
    for seed in range(6):
        x = make_attn_inputs(AttnCase(seed=seed, pad_prob=0.2, oob_prob=0.2, dup_prob=0.2,
                                      shuffle=True, extra=4, page_size=5))
        slots = flat_slot_ids(x.ori_block_table, x.cmp_block_table, x.sparse_indices, x.seqused_kv,
                              window=x.window, tokens_per_batch=x.tokens_per_batch,
                              page_size=x.ori_kv.shape[1], ori_pages=x.ori_kv.shape[0],
                              cmp_pages=x.cmp_kv.shape[0])
        kv = gather_kv(x.ori_kv, x.ori_block_table, x.cmp_kv, x.cmp_block_table, x.sparse_indices,
                       x.seqused_kv, window=x.window, tokens_per_batch=x.tokens_per_batch)
        assert torch.equal(slots.valid, kv.valid)
        assert not ((slots.ori >= 0) & (slots.cmp >= 0)).any()
        assert torch.equal(slots.rows(x.ori_kv, x.cmp_kv), kv.rows)  # NaN rows are never named


def test_flat_slot_ids_reject_a_page_outside_the_pool():
    x = make_attn_inputs(AttnCase(seed=2, min_used=3))
    table = torch.full_like(x.ori_block_table, x.ori_kv.shape[0] + 5)
    with pytest.raises(ValueError, match="ori_block_table"):
        flat_slot_ids(table, x.cmp_block_table, x.sparse_indices, x.seqused_kv, window=x.window,
                      tokens_per_batch=x.tokens_per_batch, page_size=x.ori_kv.shape[1],
                      ori_pages=x.ori_kv.shape[0], cmp_pages=x.cmp_kv.shape[0])


def test_kernelprop_exports_what_an_adapter_needs():
    import kernelprop

    for name in ("AttnRecipe", "NormRecipe", "AttnDomain", "NormDomain", "check_attention_args",
                 "check_norm_args", "flat_slot_ids"):
        assert callable(getattr(kernelprop, name)), name
    assert kernelprop.AttnRecipe is AttnRecipe


def test_session_hint_only_when_every_failure_is_p13():
    assert hints.session_hint([["P13"], ["P13"]]) == hints.ONLY_P13
    assert hints.session_hint([["P13"], ["P1"]]) is None and hints.session_hint([]) is None


def test_bf16_tensor_declared_as_fp32_gets_the_grid_hint(tmp_path):
    """The reference as shipped (a bfloat16 tensor) with no declaration at all: P1 fails and the
    report's first hint says to declare out_dtype."""
    adapter = tmp_path / "undeclared.py"
    adapter.write_text("from kernelprop.impls.flat_slot_reference import sparse_decode_attention as _ref\n"
                       "def fn(*args, **kwargs):\n    return _ref(*args, **kwargs)\n")
    impl = make_impl("sparse_attention", f"{adapter}:fn")
    x = make_attn_inputs(AttnCase(seed=1))
    outcome = R.p1({"inputs": x}, impl, R.recipe_params(impl.recipe))
    assert outcome.actual.dtype == torch.bfloat16 and check_outcome(outcome).failing
    assert hints.evidence_hints("P1", outcome, None, {"inputs": x}, impl.recipe, kind=impl.kind)[0] == explain_attention.BF16_GRID


def test_an_untiled_implementation_skips_the_multi_tile_class():
    """An implementation declaring tile=None, which the suite may not retile, has no example of
    the multi-tile class: the class is skipped with the reason (it failed hypothesis' filter
    health check on impls/flat_slot_reference.py before, in ci and nightly)."""
    from hypothesis import given, settings, strategies as st
    from kernelprop.properties.attention_strategies import draw_attn

    ref = make_impl("sparse_attention", "impls/flat_slot_reference.py:sparse_decode_attention")
    chunked = make_impl("sparse_attention", "impls/chunked_reference.py:sparse_decode_attention")
    drawn = []

    def draw(impl):
        @settings(max_examples=1, database=None, deadline=None)
        @given(st.data())
        def one(data):
            drawn.append(draw_attn(data, "multi_tile", impl=impl))
        one()

    with pytest.raises(pytest.skip.Exception, match="untiled recipe"):
        draw(ref)
    draw(chunked)   # tiled, tile free: drawn as before
    assert [d.shape_class for d in drawn] == ["multi_tile"]
