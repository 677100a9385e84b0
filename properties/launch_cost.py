"""The grid an implementation launches on the Triton interpreter, found without running it, and
whether the grid_rows shape class (more than 65535 rows: golden.rmsnorm_inputs.GRID_AXIS_LIMIT)
is affordable there.

The interpreter runs a launch's programs one after another in Python, so its time is the number
of programs times the cost of one: the bundled RMSNorm launches ~1030 programs of 64 rows for
65536-70000 rows of <= 64 columns, ~27 s an example on the shared 2-core machine (load ~9,
docs/measurements.md); a kernel with one program per row launches 65536+ (~30 min at that
rate). So on the cpu backend the class runs an implementation whose first launch has at most
INTERPRETER_MAX_PROGRAMS programs, or that launches no Triton kernel (torch); others skip it
with the measured grid as the reason. On CUDA it always runs.

Before that, on the interpreter every grid_rows example checks the first launch's grid against
CUDA's limits (`grid_within_limits`, a P1 check with a report): a kernel that puts the rows on
grid axis 1 or 2 launches fine on the interpreter and fails on a GPU past 65535 programs there.
"""
from __future__ import annotations

from typing import Callable, Optional

INTERPRETER_MAX_PROGRAMS = 2048
PROBE_COLUMNS = 8


class _Stop(Exception):
    """Raised at the first launch's grid: nothing runs."""


def first_interpreter_grid(call: Callable[[], object]) -> Optional[tuple]:
    """The grid (3 axes) of the first Triton launch `call()` makes on the interpreter, stopped
    before any program runs; None if it makes none before it returns (a torch implementation).
    An exception other than the stop propagates."""
    from triton.runtime import interpreter

    builder = interpreter.interpreter_builder
    seen: list = []

    def record(x, y, z):
        seen.append((x, y, z))
        raise _Stop

    builder.set_grid_dim = record
    try:
        call()
    except _Stop:
        pass
    except Exception as exc:  # noqa: BLE001 (a wrapper may wrap the stop in its own error)
        if not seen:
            raise
        del exc
    finally:
        del builder.set_grid_dim   # the class's method again
    return seen[0] if seen else None


_verdicts: dict = {}


def grid_rows_skip_reason(impl, backend: str, rows: int) -> Optional[str]:
    """None if the grid_rows class can run `impl` (an kernelprop.core.impl.Impl of rms_norm) at
    `rows` rows on `backend`; else why not (its first launch's programs on the interpreter)."""
    if backend != "cpu":
        return None
    key = (impl.spec, rows)
    if key not in _verdicts:
        import torch

        x = torch.zeros((rows, PROBE_COLUMNS), dtype=torch.bfloat16)
        grid = first_interpreter_grid(lambda: impl(x, None, eps=1e-6))
        programs = 0 if grid is None else grid[0] * grid[1] * grid[2]
        _verdicts[key] = None if programs <= INTERPRETER_MAX_PROGRAMS else (
            f"grid_rows: {impl.label} launches {programs} programs (grid {grid}) for {rows} rows "
            f"of {PROBE_COLUMNS} columns; the Triton interpreter runs them one by one (~25 ms "
            f"each measured, load ~9), so the class runs on CUDA or for implementations "
            f"launching at most {INTERPRETER_MAX_PROGRAMS}")
    return _verdicts[key]


GRID_DOC = ("the programs per grid axis of the first launch (read on the Triton interpreter before any "
            "program runs) within CUDA's limits, kernels/_launch.GRID_LIMITS: axis 0 <= 2^31 - 1, "
            "axes 1-2 <= 65535; a larger axis does not launch on a GPU")


def grid_within_limits(inputs: dict, impl, params: dict):
    """Replay: the grid of `impl`'s first launch on inputs["inputs"] (1, 1, 1 without a Triton
    launch) vs that grid clamped to CUDA's limits, bitwise."""
    import torch

    from kernelprop.kernels._launch import GRID_LIMITS
    from kernelprop.core.verdict import Outcome

    grid = first_interpreter_grid(lambda: inputs["inputs"].call(impl)) or (1, 1, 1)
    actual = torch.tensor(grid, dtype=torch.float64)
    expected = torch.minimum(actual, torch.tensor(GRID_LIMITS, dtype=torch.float64))
    return Outcome(actual, expected, None, GRID_DOC, metrics={"grid": list(grid)})


def check_grid_rows(impl, backend: str, case) -> None:
    """For a grid_rows example: on the interpreter, P1's grid check (fails on a grid CUDA cannot
    launch); then skip the class where running it is unaffordable (grid_rows_skip_reason)."""
    if backend != "cpu":
        return
    import pytest

    from kernelprop.golden.rmsnorm_inputs import make_norm_inputs
    from kernelprop.properties.checks import run_property

    run_property("P1", "first launch's grid within CUDA's limits",
                 "kernelprop.properties.launch_cost:grid_within_limits",
                 inputs={"inputs": make_norm_inputs(case)}, impl=impl, params={}, case=case)
    reason = grid_rows_skip_reason(impl, backend, case.rows)
    if reason:
        pytest.skip(reason=reason)
