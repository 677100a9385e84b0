"""The assertion every property ends in: run a replay function, record evidence, steer, check.

`run_property` calls the property's replay function (see kernelprop.core.evidence) on the example's
inputs, records what it saw (the counterexample report's content), calls hypothesis' `target()`
with the verdict's score (kernelprop.core.verdict.Verdict.score: the margin ratio where the bound has a
discrete share of bf16 flips, which is 0 for a legitimate flip, else the error/bound ratio) so the
targeted phase climbs toward bugs rather than toward harmless roundings, `note()`s the
metrics of golden/ when it fails, counts the example's shape classes (kernelprop.core.coverage), and
asserts: |actual - expected| <= bound elementwise, or bitwise equality when the outcome's bound is
None.
"""
from __future__ import annotations

import math

from hypothesis import currently_in_test_context, note, target

from kernelprop.golden.metrics import assert_within, compare
from kernelprop.core import coverage
from kernelprop.core.evidence import Evidence, Outcome, record, resolve
from kernelprop.core.verdict import STEERING_LABEL, Verdict, check_outcome


def assert_outcome(pid: str, check: str, outcome: Outcome, verdict: Verdict) -> None:
    __tracebackhide__ = True
    if outcome.bound is None:
        if verdict.failing:
            # the sentence that explains first (P13: expected vs got), the numbers after
            raise AssertionError(f"{pid} {check}: {outcome.bound_doc}; {verdict.line()}")
        return
    assert_within(outcome.actual, outcome.expected, outcome.bound,
                  what=f"{pid} {check} [{outcome.bound_doc}]")


def run_property(pid: str, check: str, replay_fn: str, *, inputs: dict, impl=None,
                 params: dict | None = None, recipe=None, case=None) -> Outcome:
    """Compute the property through `replay_fn` ("module:function"), record, target, assert."""
    __tracebackhide__ = True
    params = params or {}
    coverage.observe(case, inputs, recipe)  # once per example: its shape classes (counted, event())
    evidence = record(Evidence(property_id=pid, check=check, outcome=None,
                               impl=getattr(impl, "label", None),
                               impl_kind=getattr(impl, "kind", None), recipe=recipe, case=case,
                               inputs=inputs, replay_fn=replay_fn, replay_params=params))
    # recorded before the call: an implementation that raises still leaves its inputs for the report
    outcome = resolve(replay_fn)(inputs, impl, params)
    evidence.outcome = outcome
    verdict = check_outcome(outcome)  # the same verdict the report and `replay` give
    score, label = verdict.score, verdict.score_label
    in_hypothesis = currently_in_test_context()  # plain (non-@given) checks run this too
    if in_hypothesis:
        target(score if math.isfinite(score) else 1e300, label=f"{pid} {check} {label}")
        if verdict.steering is not None:
            steer = verdict.steering
            target(steer if math.isfinite(steer) else 1e300,
                   label=f"{pid} {check} {STEERING_LABEL}")
    if in_hypothesis and verdict.failing:
        note(f"{pid} {check}: worst {label} = {score:.4g}; {outcome.bound_doc}\n"
             f"{compare(outcome.actual.float(), outcome.expected.float(), truth=outcome.truth)}")
    assert_outcome(pid, check, outcome, verdict)
    return outcome
