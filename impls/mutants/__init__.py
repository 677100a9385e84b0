"""The planted-bug catalogue: implementations with one realistic kernel bug each, and the controls.
Here: the shared `Mutant` / `Control` types; every op's entries are in its own module, named by its
registry record's `catalogue` (e.g. impls/mutants/attention.py).

Each `Mutant` names a module-level callable (`--impl KIND=TARGET`), the bug in one line and the
SPEC section 4 properties expected to catch it. `python -m kernelprop mutants` runs the suite
against every entry and prints the kill matrix (docs/mutants.md). Controls are correct
implementations: every property must pass on them (a failure is a false alarm of the suite).

`expected_killers=()` marks a mutant that no sound property can tell from a correct kernel
(`equivalent` says why); it is reported but its survival does not fail the run.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    name: str
    kind: str                      # the --impl KIND (an op's registry kind)
    target: str                    # PATH:CALLABLE, PATH relative to the repository root
    description: str               # the bug, one line
    expected_killers: tuple = ()   # SPEC P ids expected to fail on it
    equivalent: str = ""           # why no sound property can catch it (expected_killers empty)


@dataclass(frozen=True)
class Control:
    name: str
    kind: str
    target: str
    description: str
    exempt: tuple = ()             # ((P id, why it may fail there), ...): known, not a false alarm


NO_ARG_CHECKS = ("impls/torch_reference.py is a numerics reference without the wrappers' argument "
                 "checks, so P13 (clear errors on bad input) rightly fails on it")


def entries() -> list:
    """Every mutant and control: every registered op's catalogue (its record's `catalogue`: a
    module with MUTANTS and CONTROLS), in registry order."""
    import importlib

    from kernelprop.core.registry import OPS

    modules = [importlib.import_module(o.catalogue) for o in OPS if o.catalogue]
    return [e for m in modules for e in m.MUTANTS + m.CONTROLS]


def by_name(name: str):
    """The mutant or control called `name` in an op's catalogue (KeyError naming the known ones
    otherwise)."""
    known = entries()
    for entry in known:
        if entry.name == name:
            return entry
    raise KeyError(f"no mutant or control {name!r}; known: {[e.name for e in known]}")
