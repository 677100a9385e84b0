"""The pre-flight call: before any property of an op runs, its implementation is called once on a
small valid case (the op's `Explain.preflight_case`, fitted into the declared domain).

  it returns                  the properties run
  it cannot run here          a usage error naming the --impl target, once, instead of one failure
                              per property: an import error (a missing package, a module the kernel
                              imports lazily) or a device/driver error (no GPU, no active driver)
  CannotCheckOnBackend        (kernelprop's, where this version has it) every property of the op is
                              skipped with its message ("cannot be checked on this backend: ..."),
                              reported once; never a failure
  anything else               the properties run and report it with its message (a kernel that
                              raises on some inputs is a finding, not a usage error)
No hypothesis import.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from kernelprop.core.causes import explain_of

CANNOT_CHECK = "cannot be checked on this backend"

# raised by torch / triton when the device or its driver is missing, whatever the kernel does
_DEVICE = re.compile(r"\b(CUDA|cuda|HIP|hip|device|driver|drivers|GPU|gpu|NVIDIA|nvrtc|ptxas)\b")


@dataclass(frozen=True)
class Preflight:
    """What the pre-flight call found: ok, usage (a usage error's message) or skip (the reason
    every property of the op is skipped with)."""

    kind: str
    status: str                 # "ok" | "usage" | "skip" | "raised"
    message: str = ""


def cannot_check_types() -> tuple:
    """kernelprop's CannotCheckOnBackend where this version has it (the faithful CPU backend
    raises it for an operation it cannot run), else no type."""
    import importlib

    for module in ("kernelprop", "kernelprop.faithful"):
        try:
            return (getattr(importlib.import_module(module), "CannotCheckOnBackend"),)
        except (ImportError, AttributeError):
            continue
    return ()


def _in_chain(err: Optional[BaseException], types: tuple) -> Optional[BaseException]:
    """The first exception of `types` in err's cause/context chain (an adapter may wrap it)."""
    seen = set()
    while types and err is not None and id(err) not in seen:
        if isinstance(err, types):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def _is_device_error(err: BaseException) -> bool:
    return isinstance(err, (RuntimeError, AssertionError, OSError)) and \
        bool(_DEVICE.search(str(err)))


def classify(kind: str, target: str, err: BaseException) -> Preflight:
    """The pre-flight verdict of an exception the implementation raised on the small case."""
    text = f"{type(err).__name__}: {err}".strip()
    cannot = _in_chain(err, cannot_check_types())
    if cannot is not None:
        message = str(cannot) if CANNOT_CHECK in str(cannot) else f"{CANNOT_CHECK}: {cannot}"
        return Preflight(kind, "skip", f"--impl {kind}={target}: {message}")
    if isinstance(err, ImportError) or _is_device_error(err):
        return Preflight(kind, "usage",
                         f"--impl {kind}={target} cannot run here: its pre-flight call on a small "
                         f"valid case raised {text[:1000]} (fix the environment or the target; no "
                         f"property of {kind} was run)")
    return Preflight(kind, "raised", text[:1000])


def preflight(impl, device: str) -> Preflight:
    """Call `impl` (a kernelprop.core.impl.Impl) once on its op's small valid case on `device`."""
    explain = explain_of(impl.kind)
    if explain is None or explain.preflight_case is None:
        return Preflight(impl.kind, "ok")
    case = explain.preflight_case(device)
    if impl.domain is not None:
        case = impl.domain.fit(case)
    try:
        _make_inputs(impl.kind, case).call(impl)
    except BaseException as err:  # noqa: BLE001 (classified; KeyboardInterrupt passes on)
        if isinstance(err, (KeyboardInterrupt, SystemExit)):
            raise
        return classify(impl.kind, impl.spec, err)
    return Preflight(impl.kind, "ok")


def _make_inputs(kind: str, case):
    from kernelprop.core.registry import op
    from kernelprop.core.evidence import resolve

    return resolve(op(kind).make_inputs)(case)


def skip_reason(result: Optional[Preflight]) -> Optional[str]:
    return result.message if result is not None and result.status == "skip" else None
