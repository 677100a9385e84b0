"""Hints for counterexample reports: a sentence that explains, where the evidence says so.

Each hint is derived from the failing example's tensors, never guessed from the property's name:
  - every actual value lies on the bf16 grid while the recipe under test says out_dtype "fp32"
  - the implementation is closer to the fp64 truth than the golden (a wrong declared recipe)
  - o is non-zero on a head whose sink is +inf (a +inf sink must give exact zeros)
  - the outcome is P13 (bad input): its expected-vs-got sentence, and how to declare no checks
`session_hint` looks at a whole run: an implementation that fails only P13.
No hypothesis import (the replay command uses this too).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

import torch

BF16_GRID = ("every actual value lies on the bf16 grid: does the kernel round its output? "
             "declare out_dtype (AttnRecipe(out_dtype=\"bf16\"))")
CLOSER_TO_TRUTH = ("the implementation is closer to the fp64 truth than the golden: is the declared "
                   "recipe right? ({recipe}: {fields})")
POS_INF_SINK = ("o is non-zero on a head whose sink is +inf: a +inf sink must give exact zeros "
                "(does the kernel clamp the sink or drop it from the denominator?)")
ONLY_P13 = ("fails only P13 (bad input): declare validates_inputs = False or validate "
            "(kernelprop exports the bundled kernels' input checks, docs/plugins.md)")
P13_DECLARE = ("if the kernel does no argument checks by design, declare validates_inputs = False "
               "(P13 is then skipped with that reason) or call the op's input check that "
               "kernelprop exports (docs/plugins.md) in the adapter")


def _on_bf16_grid(actual: torch.Tensor, expected: torch.Tensor) -> bool:
    """Every finite non-zero actual value is a bf16 value, while some expected value at those
    places is not (a random fp32 value lies on the bf16 grid with probability 2^-16, so one such
    element is already strong evidence; the expected values rule out outputs that are simple)."""
    from kernelprop.golden.rounding import round_to_bf16

    if actual.dtype != torch.float32 or expected.shape != actual.shape:
        return False
    where = torch.isfinite(actual) & (actual != 0)
    if not bool(where.any()):
        return False
    a = actual[where].contiguous()
    e = expected[where].float().contiguous()
    return bool((round_to_bf16(a, "rne") == a).all()) and bool((round_to_bf16(e, "rne") != e).any())


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


def _pos_inf_sink_nonzero(outcome, inputs: dict) -> bool:
    x = inputs.get("inputs")
    if not hasattr(x, "attn_sink") or outcome.actual.dim() != 3:
        return False
    sink = x.attn_sink.detach().cpu()
    a = outcome.actual.detach().cpu()
    if a.shape[1] != sink.shape[0]:
        return False
    pos = sink == math.inf
    return bool(pos.any()) and bool(((a[:, pos] != 0) & ~torch.isnan(a[:, pos])).any())


def evidence_hints(property_id: str, outcome, truth: Optional[torch.Tensor], inputs: dict,
                   recipe) -> list[str]:
    """Hints for one failing outcome (see the module docstring), most specific first."""
    if outcome is None:
        return []
    if property_id == "P13":
        return [outcome.bound_doc, P13_DECLARE] if outcome.bound_doc else [P13_DECLARE]
    hints = []
    if _pos_inf_sink_nonzero(outcome, inputs):
        hints.append(POS_INF_SINK)
    if getattr(recipe, "out_dtype", None) == "fp32" and hasattr(recipe, "tiling") and (
            outcome.actual.dtype == torch.bfloat16 or _on_bf16_grid(outcome.actual, outcome.expected)):
        hints.append(BF16_GRID)
    if _closer_to_truth(outcome, truth):
        hints.append(closer_to_truth_hint(recipe))
    return hints


def session_hint(failed_spec_ids: list[list[str]]) -> Optional[str]:
    """ONLY_P13 when every failed test of the run is a P13 test."""
    if failed_spec_ids and all(ids and set(ids) == {"P13"} for ids in failed_spec_ids):
        return ONLY_P13
    return None
