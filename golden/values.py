"""Shared methods of the suite's frozen values: cases (a seed and sizes) and inputs (an op's
arguments). Mixins for frozen dataclasses; they hold no fields."""
from __future__ import annotations

from dataclasses import asdict, replace


class CaseValue:
    """A frozen case: `.replace(**changes)` and `.to_dict()`."""

    def replace(self, **changes):
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)


class TensorArgs:
    """A frozen inputs value whose tensor arguments are named by `TENSORS` (in call order) and whose
    keyword arguments come from `kwargs()`: `.args()`, `.call(fn, **extra)`, `.replace()`,
    `.state_dict()` (tensors on the CPU plus the keywords: what a report saves)."""

    TENSORS: tuple = ()

    def kwargs(self) -> dict:
        raise NotImplementedError

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
