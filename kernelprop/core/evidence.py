"""What a property saw on its latest example, kept for the counterexample report and replay.

Every property computes its comparison through a *replay function*: a plain function (in a module
that does not import hypothesis) `fn(inputs: dict[str, inputs object], impl: Impl, params: dict)
-> Outcome`. The test calls it on generated inputs; `python -m kernelprop replay` calls the same
function on the saved tensors, so a replay recomputes exactly what the test checked.

Hypothesis replays the shrunk failing example last, so when a test fails the latest `record()`
holds the minimal counterexample; kernelprop.commands.report turns it into reports/<run>/<test>/.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from kernelprop.core.verdict import Outcome  # noqa: F401 (re-exported: properties import it here)


@dataclass
class Evidence:
    property_id: str                    # "P1", ...
    check: str                          # what was compared, one line
    outcome: Optional[Outcome]          # None while (or if) the replay function has not returned
    impl: Optional[str] = None          # the implementation under test (its --impl spec)
    impl_kind: Optional[str] = None     # a kernelprop.core.registry kind
    recipe: Any = None                  # the op's recipe used
    case: Any = None                    # the op's Case (compact description, with seed)
    inputs: dict = field(default_factory=dict)  # name -> the op's Inputs
    replay_fn: Optional[str] = None     # "module:function" of the replay function
    replay_params: dict = field(default_factory=dict)  # its params (recipes as objects)


def resolve(name: str) -> Callable:
    module, _, attr = name.partition(":")
    return getattr(importlib.import_module(module), attr)


_state: dict = {"last": None, "examples": 0}


def begin() -> None:
    """A new test starts: no evidence yet, no checks run."""
    _state["last"], _state["examples"] = None, 0


def record(evidence: Evidence) -> Evidence:
    _state["last"] = evidence
    _state["examples"] += 1
    return evidence


def examples_run() -> int:
    """Checks the current test has run (every run_property call counts one; a test may check
    several relations per hypothesis example)."""
    return _state["examples"]


def latest() -> Optional[Evidence]:
    return _state["last"]
