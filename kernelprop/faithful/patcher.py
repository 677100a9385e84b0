"""Attribute and dict-entry swaps that are undone in reverse order, checked against triton."""
from __future__ import annotations

from kernelprop.faithful.errors import UnsupportedTritonVersion

PINNED_TRITON = "3.6.0"
_MISSING = object()


def check_triton_version() -> None:
    import triton

    if triton.__version__ != PINNED_TRITON:
        raise UnsupportedTritonVersion(
            f"kernelprop's faithful interpreter patches triton {PINNED_TRITON}'s interpreter "
            f"(triton/runtime/interpreter.py) and found triton {triton.__version__}: install "
            f"triton=={PINNED_TRITON}, or set KERNELPROP_RAW_INTERPRETER=1 to run the raw "
            "interpreter (its bf16 numerics differ from the GPU's: SPEC section 5)")


class Patcher:
    def __init__(self) -> None:
        self._undo: list[tuple] = []

    def set_attr(self, obj, name: str, value) -> None:
        if not hasattr(obj, name) and not name.startswith("get_"):
            raise UnsupportedTritonVersion(
                f"faithful interpreter: {getattr(obj, '__name__', obj)}.{name} is missing from "
                f"this triton; the patches were written for triton {PINNED_TRITON}")
        self._undo.append((setattr, obj, name, getattr(obj, name, _MISSING)))
        setattr(obj, name, value)

    def set_item(self, mapping: dict, key, value) -> None:
        self._undo.append((dict.__setitem__, mapping, key, mapping.get(key, _MISSING)))
        mapping[key] = value

    def restore(self) -> None:
        while self._undo:
            setter, target, key, original = self._undo.pop()
            if original is _MISSING:
                (delattr if setter is setattr else dict.pop)(target, key)
            else:
                setter(target, key, original)
