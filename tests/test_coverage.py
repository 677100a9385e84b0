"""Every property test reaches every shape class that applies to it (SPEC 4, "Power at real shapes").

Two checks, both cheap (no kernel runs):
1. Structure: every hypothesis property test in properties/ is parametrized over all shape classes
   of its kind this run draws (properties.strategies.over_shape_classes), except classes it
   declares not applicable with a reason; the few that draw no case of their own are listed here
   with the reason.
2. Reach: each parametrization runs under the active profile (ci in `./kp test`; the reference
   class with its own example count, properties.strategies.class_examples) with
   run_property replaced by a stub that only classifies the inputs (kernelprop.core.coverage), and at
   least one example must fall in its class, for the bundled kernels (free recipe) and for the
   implementations of tests/reach_<op>.py (e.g. a fixed tile and no recipe keyword).
"""
import importlib
import inspect
import pkgutil
from collections import defaultdict
from pathlib import Path

import pytest
import torch
from hypothesis import Phase

from kernelprop import properties
from kernelprop.core import coverage
from kernelprop.core.evidence import Outcome
from kernelprop.core.impl import make_impl
from kernelprop.core.registry import OPS
from kernelprop.properties.strategies import class_examples, classes_for_run, opt_in_classes

# hypothesis property tests that draw no case through the shape classes, and why
NO_SHAPE_CLASSES = {
    "test_p4c_modelled_low_precision_rsqrt_violates":
        "a fixed per-head shape (Dh = 512) where the modelled rsqrt must fail",
    "test_p13_bad_input": "bad input on a small valid example (shape is not the point)",
    "test_p9_batch_invariance": "its shapes are row counts on both sides of launch thresholds "
                                "(1-63, 64-511, 512-4096 rows): the class is the property",
    "test_f4_batch_invariance": "its shapes are row counts on both sides of launch thresholds "
                                "(1-63, 64-511, 512-4096 rows): the class is the property",
    "test_p1_every_autotune_config": "one example per declared autotune config: the configs, not "
                                     "the shapes, are what it varies",
}


def _reach_impls() -> dict:
    """The implementations the reach check runs, {name: {op kind: --impl target}} (ops not named:
    bundled): "bundled" and every tests/reach_<op>.py's REACH_IMPLS (an op's own file, found by
    name, so removing the op removes its entries); a test none of whose op fixtures an entry
    names runs under "bundled" only."""
    impls = {"bundled": {}}
    for path in sorted(Path(__file__).parent.glob("reach_*.py")):
        impls.update(importlib.import_module(f"tests.{path.stem}").REACH_IMPLS)
    return impls


IMPLS = _reach_impls()


def _property_tests():
    """(module, name, function) of every hypothesis test in properties/."""
    found = []
    for info in pkgutil.iter_modules(properties.__path__):
        if not info.name.startswith("test_"):
            continue
        module = importlib.import_module(f"properties.{info.name}")
        for name, fn in vars(module).items():
            if name.startswith("test_") and hasattr(fn, "hypothesis"):
                found.append((module, name, fn))
    return found


def _marker(fn):
    return next((m for m in getattr(fn, "pytestmark", []) if m.name == "shape_classes"), None)


def _params(fn):
    mark = next((m for m in getattr(fn, "pytestmark", []) if m.name == "parametrize"
                 and m.args[0] == "shape_class"), None)
    return tuple(mark.args[1]) if mark else ()


def test_every_property_test_is_parametrized_over_its_shape_classes():
    problems = []
    without = {o.fixture for o in OPS if not o.shape_classes}  # ops with no shape classes
    for _, name, fn in _property_tests():
        mark = _marker(fn)
        if mark is None:
            if name not in NO_SHAPE_CLASSES and not without & set(inspect.signature(fn).parameters):
                problems.append(f"{name}: no over_shape_classes and no reason in NO_SHAPE_CLASSES")
            continue
        kind, skipped = mark.kwargs["kind"], mark.kwargs["not_applicable"]
        run = classes_for_run(kind)
        also = mark.kwargs.get("also", ())
        problems += [f"{name}: opts in to {c}, which is no opt-in class" for c in also
                     if c not in opt_in_classes(kind)]
        want = ("plain", *(c for c in run + tuple(also) if c not in skipped))
        if _params(fn) != want:
            problems.append(f"{name}: parametrized over {_params(fn)}, expected {want}")
        problems += [f"{name}: {c} not applicable without a reason" for c, why in skipped.items()
                     if not why.strip()]
    assert not problems, "\n".join(problems)


def _stub(pid, check, replay_fn, *, inputs, impl=None, params=None, recipe=None, case=None):
    coverage.observe(case, inputs, recipe)
    empty = torch.empty(0)
    return Outcome(actual=empty, expected=empty, bound=None, bound_doc="coverage stub",
                   metrics=defaultdict(int))


def _op_fixtures(fn) -> dict:
    """{op kind: fixture name} of the registered ops whose fixture `fn` takes."""
    argnames = fn.hypothesis.inner_test.__code__.co_varnames
    return {o.kind: o.fixture for o in OPS if o.fixture in argnames}


def _reach(module, fn, shape_class, targets, monkeypatch) -> dict:
    monkeypatch.setattr(module, "run_property", _stub)
    coverage.begin(f"{fn.__name__}[{shape_class}]")
    kwargs = {"backend": "cpu", "device": "cpu", "shape_class": shape_class}
    kwargs.update({fixture: make_impl(kind, targets.get(kind)) for kind, fixture in _op_fixtures(fn).items()})
    try:
        fn(**kwargs)
    except pytest.skip.Exception:
        return {}
    return coverage.snapshot() or {}


@pytest.mark.parametrize("impl_name", sorted(IMPLS))
def test_ci_profile_reaches_every_class_of_every_property(impl_name, monkeypatch):
    missed, reached, classes = [], 0, set()
    try:
        for module, name, fn in _property_tests():
            if _marker(fn) is None:
                continue
            if impl_name != "bundled" and not set(IMPLS[impl_name]) & set(_op_fixtures(fn)):
                continue
            for shape_class in _params(fn):
                if shape_class == "plain":
                    continue
                snap = _reach(module, fn, shape_class, IMPLS[impl_name], monkeypatch)
                if snap and not snap["counts"].get(shape_class):
                    missed.append(f"{name}[{shape_class}]: 0 of {snap['examples']} examples "
                                  f"reached it ({snap['counts']})")
                if snap and class_examples(shape_class) and snap["examples"] > class_examples(shape_class):
                    missed.append(f"{name}[{shape_class}]: {snap['examples']} examples, its class "
                                  f"runs {class_examples(shape_class)}")
                reached += bool(snap)
                classes |= {c for c, n in (snap.get("counts") or {}).items() if n}
    finally:
        coverage.begin("")  # this test's own stub counts are not a property's coverage
    assert reached, "no property test ran (all skipped?)"
    assert not missed, "\n".join(missed)
    assert "reference" in classes, "the reference decode shape is not reached in this profile"
    # issue 23's classes (serving-engine block tables, NaN / inf rows) of the ops this entry runs
    nightly = {"engine_tables", "large_offsets"} | ({"nonfinite_rows"} if impl_name == "bundled" else set())
    assert nightly <= classes, f"not reached in this profile: {sorted(nightly - classes)}"


@pytest.mark.parametrize("sizes, examples", [("small", 1), ("reference", None)])
def test_reference_class_examples_by_sizes(sizes, examples, monkeypatch):
    """At small sizes the reference parametrization runs class_examples = 1 example, unshrunk, under
    its own settings; at reference sizes it runs under the test's shared settings (its share)."""
    monkeypatch.setenv("KERNELPROP_SIZES", sizes)
    _, name, fn = next(t for t in _property_tests() if "reference" in _params(t[2]))
    assert class_examples("reference") == examples and class_examples("plain") is None
    shared, own = fn.class_settings("plain"), fn.class_settings("reference")
    assert Phase.shrink in shared.phases and shared.max_examples >= 2, name
    if examples is None:
        assert own is shared, name
    else:
        assert own.max_examples == examples and Phase.shrink not in own.phases, name
        assert fn.class_settings("reference") is own, name   # built once per class and count


def test_nightly_reference_class_runs_an_eighth_of_the_share(monkeypatch):
    """The nightly's stated time split (strategies.NIGHTLY_CLASS_FRACTION): at reference sizes
    the reference class runs 1/8 of the test's share (at least 1), the other classes the share."""
    from hypothesis import settings as hypothesis_settings

    monkeypatch.setenv("KERNELPROP_SIZES", "reference")
    profile = hypothesis_settings.get_current_profile_name()
    try:
        hypothesis_settings.load_profile("nightly")
        assert class_examples("reference", 200) == 25 and class_examples("reference", 3) == 1
        assert class_examples("plain", 200) is None and class_examples("multi_tile", 200) is None
        hypothesis_settings.load_profile("ci")
        assert class_examples("reference", 200) is None
    finally:
        hypothesis_settings.load_profile(profile)
