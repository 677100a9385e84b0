"""Declarations a third-party attention kernel needs (SPEC section 6): `AttnDomain(min_valid_keys)`
(no drawn token is below it, P7 is skipped with the reason) and a shape-dependent `recipe` (a
callable of the drawn shape, resolved per example by draws, calls and replays)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings, strategies as st

from kernelprop.golden.attention_inputs import (AttnCase, AttnDomain, AttnRecipe, AttnShape,
                                                make_attn_inputs)
from kernelprop.golden.attention import valid_index_mask
from kernelprop.core.impl import make_impl
from kernelprop.properties.attention_strategies import attn_cases, draw_attn

ROOT = Path(__file__).resolve().parents[1]
ONE_HEAD_TILE, MANY_HEADS_TILE = 5, 64


def _valid_per_token(case: AttnCase) -> torch.Tensor:
    x = make_attn_inputs(case)
    return valid_index_mask(x.sparse_indices, x.seqused_kv, window=x.window,
                            tokens_per_batch=x.tokens_per_batch).sum(1)


def test_the_plain_strategy_draws_empty_tokens_without_the_domain():
    """The control: the same cases unfitted do contain tokens with no valid key."""
    empty = [AttnCase(seed=s, min_used=0, pad_prob=0.6, oob_prob=0.6, max_cmp_len=4)
             for s in range(20)]
    assert any(bool((_valid_per_token(c) == 0).any()) for c in empty)


@pytest.mark.parametrize("n", [1, 3])
@settings(max_examples=150, deadline=None)
@given(case=attn_cases(pads=True))
def test_min_valid_keys_every_fitted_token_has_that_many_valid_keys(n, case):
    fitted = AttnDomain(min_valid_keys=n).fit(case)
    assert int(_valid_per_token(fitted).min()) >= n, fitted


def test_min_valid_keys_repairs_rows_the_corruptions_emptied():
    """Every index a pad, an out-of-range value or a duplicate: the repair still gives each token
    one valid key, and leaves rows that already had one unchanged."""
    case = AttnCase(seed=3, min_used=0, pad_prob=0.95, oob_prob=0.6, dup_prob=0.2, shuffle=True)
    raw = make_attn_inputs(case).sparse_indices
    fitted = AttnDomain(min_valid_keys=1).fit(case)
    assert fitted.min_used >= fitted.tokens_per_batch and fitted.min_valid_keys == 1
    x = make_attn_inputs(fitted)
    valid = valid_index_mask(x.sparse_indices, x.seqused_kv, window=x.window,
                             tokens_per_batch=x.tokens_per_batch)
    assert bool(valid.any(1).all())
    assert not torch.equal(x.sparse_indices, raw)  # the repair did act on this case


def test_min_valid_keys_rejects_what_no_token_can_hold():
    with pytest.raises(ValueError, match="min_valid_keys"):
        AttnDomain(min_valid_keys=10, max_indices=4)
    with pytest.raises(ValueError, match="min_valid_keys"):
        AttnDomain(min_valid_keys=0)
    with pytest.raises(ValueError, match="min_valid_keys"):
        AttnCase(min_valid_keys=1, min_used=0)


def test_draw_attn_fits_cases_into_an_implementations_min_valid_keys(tmp_path):
    path = _impl_file(tmp_path, "fn.domain = AttnDomain(min_valid_keys=1)\n")
    impl = make_impl("sparse_attention", f"{path}:fn")

    @settings(max_examples=60, deadline=None)
    @given(data=st.data(), shape_class=st.sampled_from(["plain", "multi_tile", "mtp_depth"]))
    def check(data, shape_class):
        drawn = draw_attn(data, shape_class, impl=impl)
        assert int(_valid_per_token(drawn.case).min()) >= 1

    check()


def test_p7_is_skipped_with_the_domain_reason(tmp_path):
    path = _impl_file(tmp_path, "fn.domain = AttnDomain(min_valid_keys=1)\n")
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "properties/test_attention_semantics.py", "-p", "no:xdist",
         "-q", "-rs", "--hypothesis-profile=ci", "-k", "test_p7 and plain",
         "--impl", f"sparse_attention={path}:fn", "-p", "no:cacheprovider"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert "1 skipped" in out.stdout, out.stdout[-3000:]
    assert "min_valid_keys=1" in out.stdout and "(P7) lie outside" in out.stdout, out.stdout[-3000:]


# %% shape-dependent recipes

def one_head_recipe(shape: AttnShape) -> AttnRecipe:
    """Another code path at one head (as SGLang's and vLLM's decode kernels take)."""
    return AttnRecipe(tile=ONE_HEAD_TILE if shape.heads == 1 else MANY_HEADS_TILE)


def _impl_file(tmp_path: Path, declarations: str) -> Path:
    """A plug-in file (a fresh name each time: --impl caches modules by path)."""
    path = tmp_path / f"impl_under_test_{len(list(tmp_path.glob('*.py')))}.py"
    path.write_text(
        "from kernelprop.golden.attention_inputs import AttnDomain, AttnRecipe\n"
        "from kernelprop.impls.torch_reference import sparse_decode_attention as _ref\n\n"
        "def fn(*args, recipe=None, **kwargs):\n"
        "    return _ref(*args, recipe=recipe, **kwargs)\n\n"
        "def one_head_recipe(shape):\n"
        f"    return AttnRecipe(tile={ONE_HEAD_TILE} if shape.heads == 1 else {MANY_HEADS_TILE})\n\n"
        "fn.accepts_recipe = ('rounding',)\n" + declarations)
    return path


def test_a_callable_recipe_is_resolved_on_each_examples_shape(tmp_path):
    impl = make_impl("sparse_attention",
                     f"{_impl_file(tmp_path, 'fn.recipe = one_head_recipe')}:fn")
    assert impl.shape_dependent and "shape-dependent" in impl.declared()
    one, many = AttnCase(heads=1), AttnCase(heads=3)
    assert impl.recipe_for(one).tile == ONE_HEAD_TILE
    assert impl.recipe_for(make_attn_inputs(many)).tile == MANY_HEADS_TILE
    # a varied field is taken from the drawn recipe, the rest from the shape's declared one
    drawn = AttnRecipe(tile=7, rounding="rtz")
    assert impl.example_recipe(drawn, one) == AttnRecipe(tile=ONE_HEAD_TILE, rounding="rtz")
    # a call checks the recipe against the one declared for ITS inputs' shape
    x1, x3 = make_attn_inputs(one), make_attn_inputs(many)
    x1.call(impl, recipe=AttnRecipe(tile=ONE_HEAD_TILE))
    with pytest.raises(ValueError, match="shape-dependent"):
        x3.call(impl, recipe=AttnRecipe(tile=ONE_HEAD_TILE))
    with pytest.raises(ValueError, match="needs the example's shape"):
        impl.recipe_for(None)


def test_draw_attn_gives_each_example_its_shapes_recipe(tmp_path):
    impl = make_impl("sparse_attention",
                     f"{_impl_file(tmp_path, 'fn.recipe = one_head_recipe')}:fn")
    seen = set()

    @settings(max_examples=80, deadline=None)
    @given(data=st.data())
    def check(data):
        drawn = draw_attn(data, "plain", impl=impl)
        assert drawn.recipe.tile == one_head_recipe(drawn.case.shape()).tile
        seen.add(drawn.case.heads == 1)

    check()
    assert seen == {True, False}  # both sides of the switch were drawn


def test_a_callable_recipe_must_return_the_ops_recipe_type(tmp_path):
    impl = make_impl("sparse_attention",
                     f"{_impl_file(tmp_path, 'fn.recipe = lambda shape: 64')}:fn")
    with pytest.raises(TypeError, match="AttnRecipe"):
        impl.recipe_for(AttnCase())
    path = _impl_file(tmp_path, "fn.recipe = 'tile 64'\n")
    with pytest.raises(ValueError, match="callable of the shape"):
        make_impl("sparse_attention", f"{path}:fn")


def test_replay_resolves_a_callable_recipe_on_the_stored_inputs(tmp_path):
    from kernelprop.commands.replay import ReplayError, check_replay_recipe

    impl = make_impl("sparse_attention",
                     f"{_impl_file(tmp_path, 'fn.recipe = one_head_recipe')}:fn")
    stored = {"inputs": make_attn_inputs(AttnCase(heads=1))}
    data = {"recipe": {**vars(AttnRecipe(tile=ONE_HEAD_TILE))}, "recipe_type": "AttnRecipe"}
    check_replay_recipe(impl, data, stored)
    data["recipe"]["tile"] = MANY_HEADS_TILE
    with pytest.raises(ReplayError, match="shape-dependent"):
        check_replay_recipe(impl, data, stored)


def test_report_and_replay_of_a_shape_dependent_recipe(tmp_path):
    """A P1 failure of a kernel with a callable recipe: the report records the recipe of the
    drawn shape, and `kernelprop replay` resolves the callable on the stored inputs and
    reproduces the failure."""
    path = tmp_path / "rtz_one_head.py"
    path.write_text(
        "from kernelprop.golden.attention_inputs import AttnRecipe\n"
        "from kernelprop.impls.torch_reference import sparse_decode_attention as _ref\n\n"
        "def one_head_recipe(shape):\n"
        f"    return AttnRecipe(tile={ONE_HEAD_TILE} if shape.heads == 1 else {MANY_HEADS_TILE})\n\n"
        "def fn(q, *args, recipe=None, **kwargs):\n"
        "    recipe = recipe or one_head_recipe(type('S', (), {'heads': q.shape[1]}))\n"
        "    return _ref(q, *args, recipe=recipe.replace(rounding='rtz'), **kwargs)\n\n"
        "fn.recipe = one_head_recipe\nfn.accepts_recipe = ('rounding',)\n")
    reports = tmp_path / "reports"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "properties/test_attention_p1.py", "-p", "no:xdist", "-q",
         "--hypothesis-profile=ci", "-k", "plain", "-x", "--impl", f"sparse_attention={path}:fn",
         "--reports-dir", str(reports), "-p", "no:cacheprovider"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert "1 failed" in run.stdout, run.stdout[-3000:]
    report = next(reports.rglob("report.json"))
    data = json.loads(report.read_text())
    heads = AttnCase(**{k: v for k, v in data["case"].items()}).heads
    assert data["recipe"]["tile"] == (ONE_HEAD_TILE if heads == 1 else MANY_HEADS_TILE)
    assert "shape-dependent" in json.dumps(data)
    replay = subprocess.run([sys.executable, "-m", "kernelprop", "replay", str(report)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert replay.returncode == 1, replay.stdout[-2000:] + replay.stderr[-2000:]


def test_max_pool_elements_keeps_large_offsets_out_of_the_domain():
    """An implementation that holds its pools whole (SGLang's adapter copies them into one buffer)
    declares max_pool_elements: the large_offsets class (pools past 2^31 elements, lazily
    allocated) is then skipped with the reason, and a drawn case is fitted out of it."""
    from kernelprop.golden.attention_inputs import AttnCase, AttnDomain

    small = AttnDomain(max_pool_elements=2 ** 28)
    assert not small.admits("large_offsets") and small.admits("multi_tile")
    assert AttnDomain().admits("large_offsets") and AttnDomain(max_pool_elements=2 ** 33).admits("large_offsets")
    assert small.fit(AttnCase(large_offsets=True)).large_offsets is False
    assert AttnDomain().fit(AttnCase(large_offsets=True)).large_offsets is True
