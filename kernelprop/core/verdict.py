"""The verdict of one comparison, as data: shared by properties.checks (the assertion), the
counterexample report (kernelprop.commands.report, which only writes) and `python -m kernelprop replay`.

  Outcome        |actual - expected| <= bound elementwise (bound None: bitwise), with the bound's
                 one-line derivation, an optional fp64 truth and extra metrics
  check_outcome  Outcome -> Verdict (failing?, worst element, counts)
  derived_truth  the op's fp64 truth on the example's inputs (the Inputs object's own truth())
  comparison     golden.metrics.compare of actual, expected and truth
No hypothesis import here.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Optional

import torch

from kernelprop.golden.output_rounding import ExpectedMargin

try:
    from builtins import BaseExceptionGroup
except ImportError:  # python 3.10: hypothesis' own dependency provides it
    from exceptiongroup import BaseExceptionGroup


STEERING_LABEL = "error/bound (steering)"  # target() label of Verdict.steering

@dataclass
class Outcome:
    """One comparison: |actual - expected| <= bound elementwise (bound None: bitwise equality)."""

    actual: torch.Tensor
    expected: torch.Tensor
    bound: Optional[torch.Tensor]
    bound_doc: str                       # the bound's derivation in one line
    truth: Optional[torch.Tensor] = None  # fp64 truth where the property has one
    metrics: dict = field(default_factory=dict)  # extra numbers for the report (P4 ratios, ...)
    # the share of `bound` made of discrete, exactly known alternatives (bf16 rounding flips of P
    # or of a bf16 output), 0 <= discrete <= bound; None: the bound has no such share
    discrete: Optional[torch.Tensor] = None
    # how the margin is measured where `discrete` is given (golden.output_rounding: ExpectedMargin,
    # or a bf16 output's CellMargin, from the golden's fp32 value to the output's rounding cell,
    # docs/bounds-output-rounding.md#margin); set by the output dtype's rule, never chosen here
    margin_rule: object = field(default_factory=ExpectedMargin)
    # `expected` is the op's golden on the same inputs under the recipe the replay params name (P1):
    # only then can the report compare both with the fp64 truth or try the op's alternative recipes
    golden_expected: bool = False


def _g(x) -> str:
    return "None" if x is None else f"{x:.9g}"


def _val(x: torch.Tensor, index) -> Optional[float]:
    return None if index is None else float(x[index].item())


@dataclass
class Verdict:
    """Did the outcome violate its check, and where worst (the same rule as properties.checks)."""

    failing: bool
    kind: str                    # "bound" | "bitwise" | "exception"
    worst: float                 # max |a - e| / bound, or the count of differing elements
    violations: int              # elements over the bound / differing bitwise
    total: int
    index: Optional[tuple] = None
    actual: Optional[float] = None
    expected: Optional[float] = None
    bound: Optional[float] = None
    bound_doc: str = ""
    error: Optional[str] = None  # the exception, for kind "exception"
    truth: Optional[float] = None  # fp64 truth at `index`, where one is known
    # where the outcome names its bound's discrete share: the worst margin_ratio (distance of the
    # actual value outside expected +- the flips, over the bound's continuous part; > 1 exactly
    # where the bound is exceeded), its element, and the discrete share at `index`
    margin: Optional[float] = None
    margin_index: Optional[tuple] = None
    discrete: Optional[float] = None
    margin_fp32: bool = False    # the margin was measured in the fp32 domain of a bf16 output
    margin_doc: str = ""         # what the margin ratio measures (the margin rule's doc)

    @property
    def score(self) -> float:
        """The number the nightly steers toward (hypothesis target()) and plots: > 1 exactly where
        the check fails. The margin ratio where the bound has a discrete share (0 for a legitimate
        bf16 flip, so targeting climbs toward errors beyond the flips, not toward flips), else the
        worst |a - e| / bound, or for a bitwise check the count of differing elements."""
        return self.worst if self.margin is None else self.margin

    @property
    def steering(self) -> Optional[float]:
        """A second number hypothesis climbs (target() label ending STEERING_LABEL), where `score`
        is the margin: the worst error/bound, which still rises with an error that stays inside
        the flips, where the margin is 0 on most examples and leaves nothing to climb
        (docs/measurements.md, "Nightly: large offsets and fuzz rounds"). Not plotted."""
        return None if self.margin is None else self.worst

    @property
    def score_label(self) -> str:
        """What `score` measures: "margin", "error/bound" or "differing elements"."""
        if self.kind == "bitwise":
            return "differing elements"
        return "error/bound" if self.margin is None else "margin"

    def add_truth(self, truth: Optional[torch.Tensor]) -> "Verdict":
        if truth is not None and self.index is not None and len(self.index) == truth.dim():
            self.truth = float(truth[self.index].item())
        return self

    def line(self) -> str:
        if self.kind == "exception":
            return f"raised {self.error}"
        if self.kind == "bitwise":
            s = f"{self.violations}/{self.total} elements differ bitwise (expected bit-equality)"
            if self.index is not None:
                s += f"; first at {self.index}: actual {_g(self.actual)}, expected {_g(self.expected)}"
            return s
        s = (f"{self.violations}/{self.total} elements exceed |actual - expected| <= bound; "
             f"worst |a - e| / bound = {self.worst:.4g}")
        if self.index is not None:
            s += (f" at {self.index}: actual (kernel) {_g(self.actual)}, expected {_g(self.expected)}"
                  f", bound {_g(self.bound)}")
            if self.discrete is not None:
                s += f" (of which bf16 flips {_g(self.discrete)})"
            if self.truth is not None:
                s += f", fp64 truth {_g(self.truth)}"
        if self.margin is not None:
            s += f"; margin ratio {self.margin:.4g} at {self.margin_index}: {self.margin_doc}"
        return s

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def check_outcome(outcome) -> Verdict:
    """The check properties.checks.assert_outcome makes, as data: bitwise when bound is None,
    else |actual - expected| <= bound elementwise (golden.metrics.bound_ratio <= 1)."""
    from kernelprop.golden.metrics import bound_ratio, same_bits

    a, e = outcome.actual, outcome.expected
    if outcome.bound is None:
        differ = ~same_bits(a, e)
        count = int(differ.sum())
        index = tuple(int(i) for i in differ.nonzero()[0]) if count else None
        return Verdict(count > 0, "bitwise", float(count), count, differ.numel(), index,
                       _val(a, index), _val(e, index), 0.0 if count else None, outcome.bound_doc)
    ratio = bound_ratio(a, e, outcome.bound)
    count = int((ratio > 1).sum())
    worst, index = 0.0, None
    if ratio.numel():
        flat = int(torch.argmax(ratio.reshape(-1)))
        index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), ratio.shape))
        worst = float(ratio[index])
    bound = torch.as_tensor(outcome.bound).double().expand(a.shape) if ratio.numel() else None
    verdict = Verdict(count > 0, "bound", worst, count, ratio.numel(), index, _val(a, index),
                      _val(e, index), None if bound is None else _val(bound, index),
                      outcome.bound_doc)
    if outcome.discrete is not None and ratio.numel():
        verdict = _with_margin(verdict, outcome, ratio > 1)
    return verdict


def _with_margin(verdict: Verdict, outcome, failing: torch.Tensor) -> Verdict:
    """The verdict plus the worst margin ratio (same pass/fail per element), measured by the
    outcome's margin rule (golden.output_rounding)."""
    a = outcome.actual
    rule = outcome.margin_rule
    margin = rule.margin(a, outcome.expected, outcome.bound, outcome.discrete, failing)
    flat = int(torch.argmax(margin.reshape(-1)))
    where = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), margin.shape))
    discrete = torch.as_tensor(outcome.discrete).double().expand(a.shape)
    return dataclasses.replace(verdict, margin=float(margin[where]), margin_index=where,
                               discrete=_val(discrete, verdict.index), margin_fp32=rule.in_fp32,
                               margin_doc=rule.doc)


def failing_mask(outcome) -> torch.Tensor:
    """Elementwise: which elements break the outcome's check (the rule of check_outcome)."""
    from kernelprop.golden.metrics import bound_ratio, same_bits

    if outcome.bound is None:
        return ~same_bits(outcome.actual, outcome.expected)
    return bound_ratio(outcome.actual, outcome.expected, outcome.bound) > 1


def raised_leaves(err: Optional[BaseException]) -> list[BaseException]:
    """The exceptions inside `err`: itself, or every leaf of an exception group (hypothesis'
    multiple distinct failures), depth first, in order."""
    if err is None:
        return []
    if isinstance(err, BaseExceptionGroup):
        return [leaf for e in err.exceptions for leaf in raised_leaves(e)]
    return [err]


def exception_text(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}".strip()[:2000]


def kernel_raised(err: Optional[BaseException]) -> list[str]:
    """The messages of the exceptions in `err` that are not a property's own assertion (a kernel or
    a replay that raised), group leaves included."""
    return [exception_text(e) for e in raised_leaves(err) if not isinstance(e, AssertionError)]


def exception_verdict(err: BaseException, bound_doc: str = "") -> Verdict:
    """A failure that raised: the message is the raised exception's own (for a group, the first
    leaf that is not an assertion, else the first leaf), never only the group's summary."""
    leaves = raised_leaves(err) or [err]
    chosen = next((e for e in leaves if not isinstance(e, AssertionError)), leaves[0])
    text = exception_text(chosen)
    if chosen is not err:
        text = f"{text} (one of {len(leaves)} failures in {type(err).__name__}: {err})"[:2000]
    return Verdict(True, "exception", math.inf, 0, 0, bound_doc=bound_doc, error=text)


def comparison(outcome, truth: Optional[torch.Tensor] = None) -> dict:
    """golden.metrics.compare of the outcome as {"text": str, "metrics": to_dict()}."""
    from kernelprop.golden.metrics import compare

    truth = outcome.truth if outcome.truth is not None else truth
    a, e = outcome.actual, outcome.expected
    if truth is not None and tuple(truth.shape) != tuple(a.shape):
        truth = None
    result = compare(a.float() if a.dtype != torch.float64 else a,
                     e.float() if e.dtype != torch.float64 else e,
                     truth=None if truth is None else truth.to(a.device))
    return {"text": str(result), "metrics": result.to_dict()}


def derived_truth(inputs: dict, outcome) -> tuple[Optional[torch.Tensor], Optional[str]]:
    """An fp64 truth of the op on the example's inputs, where the outcome has none and its shape
    is the op's output shape (so compare() can show kernel, golden and truth at the worst element)."""
    if outcome is None or outcome.truth is not None or not inputs:
        return None, None
    name = "inputs" if "inputs" in inputs else (next(iter(inputs)) if len(inputs) == 1 else None)
    if name is None:
        return None, None
    x = inputs[name]
    try:
        truth, how = x.truth(), f"{type(x).__name__}.truth() of inputs[{name!r}]"
    except Exception:  # noqa: BLE001 (bad-input properties: no truth exists)
        return None, None
    if tuple(truth.shape) != tuple(outcome.actual.shape):
        return None, None
    return truth, how
