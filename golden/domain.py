"""Domains: frozen dataclasses of what an implementation supports (SPEC section 6), every field
None for "no restriction". Each field is made by one of the constructors below, which names the
check that validates and normalizes it when the domain is built (ValueError naming the field)."""
from __future__ import annotations

from dataclasses import field, fields
from typing import Optional


def choice(name: str, value, allowed) -> None:
    """ValueError naming `name` unless `value` is one of `allowed` (a recipe's named choices)."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def check_tuple(name: str, value, allowed=None, kind=int) -> Optional[tuple]:
    """None, or `value` as a non-empty tuple of positive ints / of `kind`s among `allowed`."""
    if value is None:
        return None
    value = tuple(value)
    if not value:
        raise ValueError(f"{name} must be None (any) or a non-empty tuple, got ()")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, kind) or (kind is int and v < 1):
            raise ValueError(f"{name} entries must be positive {kind.__name__}s, got {v!r}")
        if allowed is not None and v not in allowed:
            raise ValueError(f"{name} entries must be among {allowed}, got {v!r}")
    return value


def check_positive(name: str, value) -> Optional[int]:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be None (any) or a positive int, got {value!r}")
    return value


def check_flag(name: str, value) -> Optional[bool]:
    if value not in (None, True, False):
        raise ValueError(f"{name} must be None, True or False, got {value!r}")
    return value


def sizes():
    """A field: None or a non-empty tuple of positive ints."""
    return field(default=None, metadata={"check": check_tuple})


def kinds(allowed: tuple):
    """A field: None or a non-empty tuple of names among `allowed`."""
    return field(default=None, metadata={"check": lambda name, v: check_tuple(name, v, allowed, str)})


def most():
    """A field: None or a positive int (an upper bound)."""
    return field(default=None, metadata={"check": check_positive})


def least():
    """A field: None or a positive int (a lower bound)."""
    return field(default=None, metadata={"check": check_positive})


def flag():
    """A field: None (either), True or False."""
    return field(default=None, metadata={"check": check_flag})


class DomainValue:
    """Mixin of the domain dataclasses: checks every field on construction, `.describe()`."""

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, f.metadata["check"](f.name, getattr(self, f.name)))

    def describe(self) -> str:
        """The restricted fields, e.g. "AttnDomain(head_dims=(512, 576))", or "any input"."""
        parts = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)
                 if getattr(self, f.name) is not None]
        return f"{type(self).__name__}({', '.join(parts)})" if parts else "any input"
