"""Shared methods of the suite's frozen values: cases (a seed and sizes) and inputs (an op's
arguments). Mixins for frozen dataclasses; they hold no fields.

They are also the per-op protocol: what shared code (coverage, reports, the kill matrix) may ask
of an op (its report hints are its Explain's, kernelprop.core.causes). Shared code calls these methods;
it never tests an op's type or attribute names (`hasattr`, `isinstance`, key names). `OpCase` / `OpInputs` state the protocol for readers
and type checkers; every registered op's Case and Inputs types satisfy it through these mixins.
"""
from __future__ import annotations

from dataclasses import asdict, fields, replace
from typing import Any, ClassVar, Optional, Protocol, runtime_checkable


class CaseValue:
    """A frozen case: `.replace(**changes)`, `.to_dict()`, `.from_dict(d)` and `.size()`."""

    def replace(self, **changes):
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        """The case of a (shrunk, JSON) dict; keys that are not fields are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def size(self) -> tuple[Optional[int], str]:
        """(one scalar size, a compact shape) for the kill matrix; each op says its own."""
        return None, ""


class TensorArgs:
    """A frozen inputs value whose tensor arguments are named by `TENSORS` (in call order) and whose
    keyword arguments come from `kwargs()`: `.args()`, `.call(fn, **extra)`, `.replace()`,
    `.state_dict()` (tensors on the CPU plus the keywords: what a report saves)."""

    TENSORS: tuple = ()
    SHAPE_CLASSES: ClassVar[tuple] = ()       # the op's shape classes (kernelprop.core.coverage)
    OPT_IN_CLASSES: ClassVar[dict] = {}       # {class: property ids}: classes only they draw
    DESCRIBE_LABELS: ClassVar[dict] = {}      # report labels of describe() keys, {key: label}

    def kwargs(self) -> dict:
        raise NotImplementedError

    def describe(self) -> dict:
        """JSON-able description for reports: {key: value}, tensors as kernelprop.core.plain summaries."""
        raise NotImplementedError

    def truth(self):
        """The op's fp64 result on these inputs (reports' closer-to-truth check)."""
        raise NotImplementedError

    def shape_classes(self, recipe: Any = None) -> frozenset:
        """The classes of SHAPE_CLASSES these inputs fall in (`recipe`: the declared one, if any)."""
        return frozenset()

    def args(self) -> tuple:
        return tuple(getattr(self, name) for name in self.TENSORS)

    def call(self, fn, **extra):
        return fn(*self.args(), **self.kwargs(), **extra)

    def replace(self, **changes):
        return replace(self, **changes)

    def state_dict(self) -> dict:
        out = {n: getattr(self, n).detach().cpu() for n in self.TENSORS}
        out.update(self.kwargs())
        return out


@runtime_checkable
class OpCase(Protocol):
    def replace(self, **changes): ...
    def to_dict(self) -> dict: ...
    @classmethod
    def from_dict(cls, d: dict): ...
    def size(self) -> tuple[Optional[int], str]: ...


@runtime_checkable
class OpInputs(Protocol):
    TENSORS: tuple
    SHAPE_CLASSES: ClassVar[tuple]
    OPT_IN_CLASSES: ClassVar[dict]
    DESCRIBE_LABELS: ClassVar[dict]
    def kwargs(self) -> dict: ...
    def call(self, fn, **extra): ...
    def state_dict(self) -> dict: ...
    def describe(self) -> dict: ...
    def truth(self): ...
    def shape_classes(self, recipe: Any = None) -> frozenset: ...
