"""Hints for counterexample reports: a sentence that explains, where the evidence says so.

Each hint is derived from the failing example's tensors, never guessed from the property's name:
  - the op's own hints, most specific first (its registry record's `explain`: Explain.hints)
  - the implementation is closer to the fp64 truth than the golden (a wrong declared recipe)
  - the outcome is P13 (bad input): its expected-vs-got sentence, and how to declare no checks
`session_hint` looks at a whole run: an implementation that fails only P13.
No hypothesis import (the replay command uses this too).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import torch

from kernelprop.core.impl import input_checks

CLOSER_TO_TRUTH = ("the implementation is closer to the fp64 truth than the golden: is the declared "
                   "recipe right? ({recipe}: {fields})")


ONLY_P13 = ("fails only P13 (bad input): declare validates_inputs = False or validate "
            f"({input_checks()})")
P13_DECLARE = ("if the kernel does no argument checks by design, declare validates_inputs = False "
               f"(P13 is then skipped with that reason) or call {input_checks()} in the adapter")


def closer_to_truth_hint(recipe) -> str:
    """CLOSER_TO_TRUTH naming the recipe type's own fields."""
    names = ", ".join(f.name for f in dataclasses.fields(recipe)) if recipe is not None else "-"
    return CLOSER_TO_TRUTH.format(recipe=type(recipe).__name__, fields=names)


def _closer_to_truth(outcome, truth: Optional[torch.Tensor]) -> bool:
    """The implementation's error to the truth is under half the golden's, and the golden's is
    not 0; only where `expected` is the golden of the same inputs (Outcome.golden_expected: P1),
    never for bitwise or relational checks."""
    if not outcome.golden_expected or truth is None or truth.shape != outcome.actual.shape:
        return False
    t = truth.double()
    ok = torch.isfinite(t) & torch.isfinite(outcome.actual.double()) & \
        torch.isfinite(outcome.expected.double())
    if not bool(ok.any()):
        return False
    err_impl = float((outcome.actual.double() - t)[ok].abs().max())
    err_golden = float((outcome.expected.double() - t)[ok].abs().max())
    return err_golden > 0 and err_impl < 0.5 * err_golden


def evidence_hints(property_id: str, outcome, truth: Optional[torch.Tensor], inputs: dict,
                   recipe, kind: Optional[str] = None) -> list[str]:
    """Hints for one failing outcome of the op `kind` (see the module docstring), most specific
    first."""
    from kernelprop.core.causes import explain_of

    if outcome is None:
        return []
    if property_id == "P13":
        return [outcome.bound_doc, P13_DECLARE] if outcome.bound_doc else [P13_DECLARE]
    explain = explain_of(kind)
    hints = list(explain.hints(property_id, outcome, inputs, recipe)) if explain is not None else []
    if _closer_to_truth(outcome, truth):
        hints.append(closer_to_truth_hint(recipe))
    return hints


def session_hint(failed_spec_ids: list[list[str]]) -> Optional[str]:
    """ONLY_P13 when every failed test of the run is a P13 test."""
    if failed_spec_ids and all(ids and set(ids) == {"P13"} for ids in failed_spec_ids):
        return ONLY_P13
    return None
