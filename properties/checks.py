"""The assertion every property ends in: run a replay function, record evidence, steer, check.

`run_property` calls the property's replay function (see kernelprop.evidence) on the example's
inputs, records what it saw (the counterexample report's content), calls hypothesis' `target()`
with the worst error/bound ratio so the targeted phase climbs toward the worst case, `note()`s the
metrics of golden/ when it fails, and asserts: |actual - expected| <= bound elementwise, or bitwise
equality when the outcome's bound is None.
"""
from __future__ import annotations

import math

import torch
from hypothesis import currently_in_test_context, note, target

from golden.metrics import assert_within, bound_ratio, compare
from kernelprop.evidence import Evidence, Outcome, record, resolve


def same_bits(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Elementwise bit equality (NaN payloads and signed zeros count)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        raise ValueError(f"same_bits needs equal dtype and shape, got {a.dtype}{tuple(a.shape)} "
                         f"and {b.dtype}{tuple(b.shape)}")
    ints = {torch.float32: torch.int32, torch.bfloat16: torch.int16, torch.float16: torch.int16,
            torch.float64: torch.int64}
    return a.contiguous().view(ints[a.dtype]) == b.contiguous().view(ints[b.dtype])


def worst_ratio(outcome: Outcome) -> float:
    """max |actual - expected| / bound (bitwise outcomes: the count of differing elements)."""
    if outcome.bound is None:
        return float((~same_bits(outcome.actual, outcome.expected)).sum())
    ratio = bound_ratio(outcome.actual, outcome.expected, outcome.bound)
    return float(ratio.max()) if ratio.numel() else 0.0


def assert_outcome(pid: str, check: str, outcome: Outcome) -> None:
    __tracebackhide__ = True
    a, e = outcome.actual, outcome.expected
    if outcome.bound is None:
        equal = same_bits(a, e)
        if not bool(equal.all()):
            first = tuple(int(i) for i in (~equal).nonzero()[0])
            raise AssertionError(f"{pid} {check}: {int((~equal).sum())}/{equal.numel()} elements "
                                 f"differ bitwise; first at {first}: {float(a[first])!r} vs "
                                 f"{float(e[first])!r}")
        return
    assert_within(a, e, outcome.bound, what=f"{pid} {check} [{outcome.bound_doc}]")


def run_property(pid: str, check: str, replay_fn: str, *, inputs: dict, impl=None,
                 params: dict | None = None, recipe=None, case=None) -> Outcome:
    """Compute the property through `replay_fn` ("module:function"), record, target, assert."""
    __tracebackhide__ = True
    params = params or {}
    evidence = record(Evidence(property_id=pid, check=check, outcome=None,
                               impl=getattr(impl, "label", None),
                               impl_kind=getattr(impl, "kind", None), recipe=recipe, case=case,
                               inputs=inputs, replay_fn=replay_fn, replay_params=params))
    # recorded before the call: an implementation that raises still leaves its inputs for the report
    outcome = resolve(replay_fn)(inputs, impl, params)
    evidence.outcome = outcome
    worst = worst_ratio(outcome)
    label = "differing elements" if outcome.bound is None else "error/bound"
    in_hypothesis = currently_in_test_context()  # plain (non-@given) checks run this too
    if in_hypothesis:
        target(worst if math.isfinite(worst) else 1e300, label=f"{pid} {check} {label}")
    if in_hypothesis and worst > (0.0 if outcome.bound is None else 1.0):
        note(f"{pid} {check}: worst {label} = {worst:.4g}; {outcome.bound_doc}\n"
             f"{compare(outcome.actual.float(), outcome.expected.float(), truth=outcome.truth)}")
    assert_outcome(pid, check, outcome)
    return outcome
