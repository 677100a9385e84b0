"""The bug zoo: kernel bugs that shipped in public projects, each reproduced on our own code.

/work/shared/reviews/real-bugs-survey.md lists 30 correctness bugs of this kernel family with their
threads. Every area module of this package (attention.py, indexer.py, ...) holds a list `ZOO` of
`ZooEntry`: for a bug inside the contract, an implementation (a module-level callable, the
`--impl` target) that reproduces that bug's *mechanism* on a correct torch implementation of the
contract, written from the thread's description; for a bug outside it, the reason and what the
suite would need to reach it (no target). `python -m kernelprop mutants --zoo` runs the in-scope
entries like the mutant catalogue and adds the column "killed by (property, shape class)";
docs/zoo.md is the table.

Areas are discovered: a new `impls/zoo/<area>.py` with a `ZOO` list (and optionally `CONTROLS`,
correct bases of its entries that must pass everything) joins the zoo without editing this file.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass

SURVEY = "/work/shared/reviews/real-bugs-survey.md"


@dataclass(frozen=True)
class ZooEntry:
    name: str                      # kill-matrix row name (zoo_<project>_<number>_<what>)
    bug: int                       # the bug's number in the survey (1-30; 0: a "see also" entry)
    threads: tuple                 # the issue / PR URLs the mechanism is taken from
    kind: str                      # registry op kind (the --impl KIND)
    mechanism: str                 # the bug, one line, as reproduced here
    target: str = ""               # PATH:CALLABLE relative to the repository root ("" out of scope)
    in_scope: bool = True
    out_of_scope: str = ""         # why not reproducible here, and what the suite would need
    trigger: str = ""              # the inputs that expose it (shape class, data, recipe)
    expected_killers: tuple = ()   # SPEC property ids expected to fail on it
    survives: str = ""             # in scope but no sound property can see it here: why

    @property
    def description(self) -> str:  # what the kill matrix prints (kernelprop.commands.mutants.run_entry)
        return self.mechanism

    @property
    def equivalent(self) -> str:   # a documented survivor does not fail the run
        return self.survives

    def __post_init__(self) -> None:
        if self.in_scope and not self.target:
            raise ValueError(f"zoo entry {self.name}: an in-scope entry needs a target")
        if not self.in_scope and not self.out_of_scope:
            raise ValueError(f"zoo entry {self.name}: an out-of-scope entry needs its reason")
        if not self.threads:
            raise ValueError(f"zoo entry {self.name}: name the thread(s) it reproduces")


@dataclass(frozen=True)
class ZooControl:
    """A correct base of zoo entries: every property must pass on it (else a false alarm)."""

    name: str
    kind: str
    target: str
    description: str
    exempt: tuple = ()


def areas() -> list:
    """The area modules of the zoo, in name order."""
    return [importlib.import_module(f"{__name__}.{m.name}")
            for m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name)
            if not m.name.startswith("_")]


def _collect(attr: str) -> list:
    entries = [e for module in areas() for e in getattr(module, attr, [])]
    names = [e.name for e in entries]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"zoo names must be unique, repeated: {dup}")
    return entries


def zoo() -> list:
    """Every entry (in scope or not), by bug number."""
    return sorted(_collect("ZOO"), key=lambda e: (e.bug or 99, e.name))


def in_scope() -> list:
    return [e for e in zoo() if e.in_scope]


def controls() -> list:
    return _collect("CONTROLS")
