"""A faithful CPU backend: triton's interpreter computing what an NVIDIA GPU computes (SPEC 8).

    with kernelprop.faithful_interpreter():
        y = my_triton_kernel_wrapper(x)          # bf16 rounds like cvt.rn, dots accumulate in fp32

One module per concern: casts.py (conversions, stores, constants, float arguments), arith.py
(bf16/fp16 arithmetic, comparisons, reductions, fma), dot.py (tl.dot), libdevice.py (extern
functions), autotune.py (@triton.autotune without a driver). The suite enters it itself on the cpu
backend (`enter_for_backend`); KERNELPROP_RAW_INTERPRETER=1 keeps the raw interpreter there, and
KERNELPROP_AUTOTUNE_CONFIG=i makes a whole run verify declared autotune config i.
Importing this package imports neither torch nor triton; entering the context imports triton.
docs/faithful-interpreter.md has the conformance table.
"""
from __future__ import annotations

import atexit
import contextlib

from kernelprop.core import knobs
from kernelprop.faithful.errors import CannotCheckOnBackend, UnsupportedTritonVersion

__all__ = ["faithful_interpreter", "raw_interpreter", "CannotCheckOnBackend", "UnsupportedTritonVersion",
           "enter_for_backend", "raw_interpreter_requested", "session_autotune_config", "autotune_config", "last_autotune_config",
           "autotune_choices"]

_ACTIVE: list = []  # the Patcher of the active faithful interpreter (at most one)
_SESSION = contextlib.ExitStack()


def raw_interpreter_requested() -> bool:
    return knobs.raw_interpreter.get()


def _cannot_check_cause(error: BaseException) -> CannotCheckOnBackend | None:
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, CannotCheckOnBackend):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _install(patcher) -> None:
    from triton.runtime import interpreter as _interp

    from kernelprop.faithful import arith, autotune, casts, dot, libdevice, memory

    memory.install(patcher)
    casts.install(patcher)
    arith.install(patcher)
    dot.install(patcher)
    libdevice.install(patcher)
    autotune.install(patcher)
    raw_run = _interp.InterpretedFunction.run

    def run(self, *args, **kwargs):
        try:
            return raw_run(self, *args, **kwargs)
        except Exception as error:  # the interpreter wraps every kernel error in InterpreterError
            cause = _cannot_check_cause(error)
            if cause is not None and cause is not error:
                raise CannotCheckOnBackend(cause.operation) from error
            raise

    patcher.set_attr(_interp.InterpretedFunction, "run", run)


@contextlib.contextmanager
def faithful_interpreter(autotune_config: int = 0):
    """Patch triton 3.6.0's interpreter to compute as an NVIDIA GPU does; undone on exit.

    autotune_config: which declared config every @triton.autotune kernel runs (default 0; see
    `autotune_config()` to change it inside the block, `last_autotune_config()` for what ran).
    Re-entering while active only changes the autotune choice. Raises UnsupportedTritonVersion on
    a triton other than the pinned one."""
    from kernelprop.faithful.autotune import autotune_config as choose

    with choose(autotune_config):
        if _ACTIVE:
            yield
            return
        _activate()
        try:
            yield
        finally:
            _deactivate()


@contextlib.contextmanager
def raw_interpreter():
    """The raw interpreter inside the block, even where the faithful one is active (comparisons)."""
    if not _ACTIVE:
        yield
        return
    _deactivate()
    try:
        yield
    finally:
        _activate()


def _activate() -> None:
    from kernelprop.faithful.patcher import Patcher, check_triton_version

    check_triton_version()
    patcher = Patcher()
    try:
        _install(patcher)
    except BaseException:
        patcher.restore()
        raise
    _ACTIVE.append(patcher)


def _deactivate() -> None:
    _ACTIVE.pop().restore()


def session_autotune_config() -> int:
    """KERNELPROP_AUTOTUNE_CONFIG: the declared autotune config a whole run verifies (default 0)."""
    return knobs.autotune_config.get()


def enter_for_backend(backend: str) -> bool:
    """Enter the faithful interpreter for the rest of the process on the cpu backend (unless
    KERNELPROP_RAW_INTERPRETER=1), running autotune config KERNELPROP_AUTOTUNE_CONFIG (default
    0). Returns whether it is active."""
    if backend != "cpu" or raw_interpreter_requested():
        return False
    if not _ACTIVE:
        _SESSION.enter_context(faithful_interpreter(autotune_config=session_autotune_config()))
        atexit.register(_SESSION.close)  # before interpreter teardown clears this module
    return True


def __getattr__(name: str):
    if name in ("autotune_config", "last_autotune_config", "autotune_choices"):
        from kernelprop.faithful import autotune

        return getattr(autotune, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
