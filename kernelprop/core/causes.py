"""Root causes: one computed signature per failing example, and the run's failures grouped by it.

A signature is a sentence the evidence proves (the failing example's actual, expected and inputs),
never a guess from a test's name, with the declaration or fix that would settle it. Where the
knowledge is the op's own (which tokens have no valid key, which recipe fields a kernel may have
got wrong) it comes from the op's `explain` module, named by its registry record
(kernelprop.core.registry.Op.explain), as an `Explain` value:

  candidates  causes in the order tried; each is either
                EvidenceCause: a predicate over the failing example (`Evidence`, the outcome and its
                               elementwise failing mask)
                AlternativeRecipe: changes to the recipe under test; it holds when the same check,
                               re-run with the recorded output against the golden of the changed
                               recipe, passes (only where `expected` is the golden: Outcome's
                               `golden_expected`)
  with_recipe the replay params of the same check under another recipe
  preflight_case  a small valid Case on a device (kernelprop.commands.preflight)
  hints       (property id, outcome, inputs, recipe) -> the op's own report hints for a failing
              outcome, most specific first (kernelprop.commands.hints adds the shared ones)

Shared here: a kernel that raises the same exception (numbers aside) on every example is one cause.

`group(reports)` makes the run-level section: reports with the same cause id form one root cause,
with one primary report (the smallest example) and the others linked to it;
`write_root_causes(run_dir, paths)` writes root-causes.md / root-causes.json and links every
secondary report to its primary. No hypothesis import.
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from kernelprop.core.verdict import check_outcome, failing_mask

SCHEMA = "kernelprop-root-causes/1"


@dataclass(frozen=True)
class Cause:
    """A signature: its stable id, the sentence the evidence proves, and what settles it."""

    id: str
    statement: str
    settle: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Failing:
    """What a candidate may read: the recorded evidence (kernelprop.core.evidence.Evidence), its outcome
    and which of the outcome's elements break the check."""

    evidence: Any
    outcome: Any
    failing: torch.Tensor


@dataclass(frozen=True)
class EvidenceCause:
    cause: Cause
    holds: Callable[[Failing], bool]


@dataclass(frozen=True)
class AlternativeRecipe:
    cause: Cause
    changes: dict   # recipe field -> the value the kernel may actually compute with


def no_hints(property_id: str, outcome, inputs: dict, recipe) -> list[str]:
    """An op without hints of its own."""
    return []


@dataclass(frozen=True)
class Explain:
    """An op's knowledge for reports: its candidate causes, how its replay params name a recipe,
    a small valid case for the pre-flight call, and its own report hints."""

    candidates: tuple = ()
    with_recipe: Optional[Callable[[dict, Any], dict]] = None
    preflight_case: Optional[Callable[[str], Any]] = None
    hints: Callable[[str, Any, dict, Any], list] = no_hints


def explain_of(kind: Optional[str]) -> Optional[Explain]:
    """The op's Explain value (its registry record's `explain` reference), None if it has none."""
    from kernelprop.core.registry import BY_KIND
    from kernelprop.core.evidence import resolve

    record = BY_KIND.get(kind) if kind else None
    if record is None or not record.explain:
        return None
    return resolve(record.explain)


# %% the signature of one failing example

_NUMBER = re.compile(r"(?<![A-Za-z_])[-+]?\d+(\.\d+)?([eE][-+]?\d+)?")


def raised_cause(messages: list[str]) -> Optional[Cause]:
    """The kernel raised: the same exception type and message (numbers aside) is one cause."""
    if not messages:
        return None
    text = messages[0]
    key = _NUMBER.sub("N", text)[:200]
    return Cause(id=f"raises: {key}", statement=f"the implementation raises {text[:300]}",
                 settle="fix the kernel where it raises, or declare the inputs it supports "
                        "(its `domain`) if it never sees these; the linked reports hold each input")


class _Recorded:
    """Stands for the implementation: returns the output recorded on the failing example (the
    replay of a golden-expected check calls its implementation once)."""

    def __init__(self, actual: torch.Tensor):
        self.actual, self.calls = actual, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError("the recorded output answers one call")
        return self.actual


def alternative_holds(alt: AlternativeRecipe, ev, outcome, explain: Explain) -> bool:
    if ev.recipe is None or not ev.replay_fn or explain.with_recipe is None:
        return False
    try:
        recipe = ev.recipe.replace(**alt.changes)
    except (TypeError, ValueError):  # a field this recipe type does not have (yet), or a bad value
        return False
    if recipe == ev.recipe:
        return False
    from kernelprop.core.evidence import resolve

    try:
        again = resolve(ev.replay_fn)(ev.inputs, _Recorded(outcome.actual),
                                      explain.with_recipe(ev.replay_params, recipe))
        return not check_outcome(again).failing
    except Exception:  # noqa: BLE001 (an alternative that cannot be evaluated explains nothing)
        return False


def autotune_api():
    """(autotune_choices, autotune_config) of kernelprop's faithful CPU backend, where this version
    has it: which declared config each @triton.autotune kernel last ran, and a context that runs
    another; None otherwise."""
    try:
        import kernelprop.faithful as faithful

        return faithful.autotune_choices, faithful.autotune_config
    except (ImportError, AttributeError):
        return None


def autotune_ran() -> dict:
    """{kernel: the autotune config it last ran, described} (for the report's environment)."""
    api = autotune_api()
    if api is None:
        return {}
    try:
        return {name: choice.describe() for name, choice in api[0]().items()}
    except Exception:  # noqa: BLE001
        return {}


def autotune_cause(ev) -> Optional[Cause]:
    """The example fails only on the autotune config that ran: re-run under every other declared
    config of that kernel, the same check passes."""
    api = autotune_api()
    if api is None or ev is None or not ev.replay_fn or not ev.impl_kind or not ev.impl:
        return None
    choices, run_config = api
    from kernelprop.core.evidence import resolve
    from kernelprop.core.impl import make_impl

    for name, choice in dict(choices()).items():
        if choice.count < 2:
            continue
        impl = make_impl(ev.impl_kind, ev.impl)
        try:
            for other in range(choice.count):
                if other == choice.index:
                    continue
                with run_config(other):
                    again = resolve(ev.replay_fn)(ev.inputs, impl, ev.replay_params)
                if check_outcome(again).failing:
                    break
            else:
                return Cause(id=f"autotune: {name} config {choice.index}",
                             statement=f"fails only on {choice.describe()}: every other declared "
                                       f"config of {name} passes the same example",
                             settle=f"fix or drop autotune config {choice.index} of {name} "
                                    f"({choice.config}); the others are correct here")
        except Exception:  # noqa: BLE001 (a config that raises is not a passing one)
            continue
    return None


def signature(ev, outcome, raised: list[str]) -> Optional[Cause]:
    """The first cause the failing example proves: the op's evidence causes, then one autotune
    config alone failing, then (where the expected side is the golden) the op's alternative
    recipes, then a raised exception; None if none."""
    explain = explain_of(getattr(ev, "impl_kind", None)) if ev is not None else None
    if outcome is not None and explain is not None:
        try:
            failing = Failing(ev, outcome, failing_mask(outcome))
        except Exception:  # noqa: BLE001 (an outcome the mask cannot read)
            failing = None
        for candidate in explain.candidates:
            if isinstance(candidate, EvidenceCause) and failing is not None:
                try:
                    if candidate.holds(failing):
                        return candidate.cause
                except Exception:  # noqa: BLE001 (a candidate must never cost the report)
                    continue
    if outcome is not None:
        cause = autotune_cause(ev)
        if cause is not None:
            return cause
    if outcome is not None and explain is not None and outcome.golden_expected:
        for candidate in explain.candidates:
            if isinstance(candidate, AlternativeRecipe) and \
                    alternative_holds(candidate, ev, outcome, explain):
                return candidate.cause
    return raised_cause(raised)


# %% the run's root causes

@dataclass
class RootCause:
    cause: Cause
    primary: str                     # the report directory a reader opens
    linked: list = field(default_factory=list)  # the other reports of the same cause
    titles: list = field(default_factory=list)  # the distinct report titles it covers

    def to_dict(self) -> dict:
        return {**self.cause.to_dict(), "primary": self.primary, "linked": self.linked,
                "reports": 1 + len(self.linked), "titles": self.titles}


def _title(data: dict) -> str:
    return f"{data.get('property_id')} failed: {data.get('check')}"


def group(reports: list[tuple[str, dict]]) -> tuple[list[RootCause], list[str]]:
    """(root causes, report paths without a cause) of (path, report.json data) pairs. The primary
    report of a cause is its smallest example (fewest compared elements), then the first by path."""
    by_id: dict[str, list[tuple[str, dict]]] = {}
    unexplained = []
    for path, data in reports:
        cause = data.get("root_cause")
        if cause:
            by_id.setdefault(cause["id"], []).append((path, data))
        else:
            unexplained.append(path)
    causes = []
    for members in by_id.values():
        members.sort(key=lambda m: (m[1].get("failure", {}).get("total") or 0, m[0]))
        c = members[0][1]["root_cause"]
        causes.append(RootCause(Cause(c["id"], c["statement"], c["settle"]), members[0][0],
                                [p for p, _ in members[1:]],
                                list(dict.fromkeys(_title(d) for _, d in members))))
    causes.sort(key=lambda r: (-1 - len(r.linked), r.primary))
    return causes, unexplained


def render(causes: list[RootCause], unexplained: list[str]) -> str:
    lines = ["# Root causes", "",
             f"{sum(1 + len(r.linked) for r in causes)} failure reports come from {len(causes)} "
             f"root cause(s); {len(unexplained)} report(s) have no computed cause.", ""]
    for n, r in enumerate(causes, 1):
        lines += [f"## {n}. {r.cause.statement}", "",
                  f"- settle it: {r.cause.settle}",
                  f"- report: `{r.primary}/report.md`",
                  f"- covers {1 + len(r.linked)} report(s) under {len(r.titles)} title(s): "
                  + "; ".join(r.titles)]
        lines += [f"  - linked: `{p}/report.md`" for p in r.linked]
        lines.append("")
    if unexplained:
        lines += ["## Reports without a computed cause", ""]
        lines += [f"- `{p}/report.md`" for p in unexplained]
        lines.append("")
    return "\n".join(lines)


def _link(path: str, root: RootCause) -> None:
    """Mark a secondary report as linked to its cause's primary (report.json and report.md)."""
    report_json = Path(path) / "report.json"
    data = json.loads(report_json.read_text())
    data["root_cause"] = {**data["root_cause"], "primary": root.primary}
    report_json.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    md = Path(path) / "report.md"
    if md.exists():
        text = md.read_text().split("\n")
        line = (f"{_LINKED}`{root.primary}/report.md`: {root.cause.statement} (settle it: "
                f"{root.cause.settle}). Read that report first.")
        at = [n for n, ln in enumerate(text) if ln.startswith(_LINKED)]
        if at:
            text[at[0]] = line
        else:
            text[1:1] = ["", line]
        md.write_text("\n".join(text))


_LINKED = "> Same root cause as "


def write_root_causes(run_dir: Path, paths: list[str]) -> tuple[list[RootCause], list[str]]:
    """Group the run's reports (the directories given, and any report already in `run_dir`: the
    fuzz command's rounds share one run), write <run_dir>/root-causes.{md,json} when some report
    has a cause, and link every secondary report to its primary (idempotent)."""
    earlier = [str(p.parent) for p in sorted(run_dir.glob("*/report.json"))]
    reports = []
    for path in dict.fromkeys([*paths, *earlier]):
        try:
            reports.append((path, json.loads((Path(path) / "report.json").read_text())))
        except (OSError, ValueError):
            continue
    causes, unexplained = group(reports)
    if not causes:
        return causes, unexplained
    for root in causes:
        for path in root.linked:
            _link(path, root)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "root-causes.json").write_text(json.dumps(
        {"schema": SCHEMA, "root_causes": [r.to_dict() for r in causes],
         "unexplained": unexplained}, indent=2) + "\n")
    (run_dir / "root-causes.md").write_text(render(causes, unexplained))
    return causes, unexplained
