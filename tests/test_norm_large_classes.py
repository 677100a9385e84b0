"""RMSNorm's P1-only shape classes: large_offsets (rows of x spread over a lazily allocated buffer,
the last starting past 2^31 elements) and grid_rows (more than 65535 rows). The buffer's untouched
pages stay unallocated through input generation, golden, classifier, report state and the
bundled kernel on the interpreter; each class's mutant is wrong only inside its class; the
interpreter-cost gate finds the launched grid without running it."""
import re

import pytest
import torch

from kernelprop.core import coverage
from kernelprop.golden.sampling import LARGE_OFFSET
from kernelprop.golden.rmsnorm import rms_norm_golden
from kernelprop.golden.rmsnorm_inputs import (GRID_AXIS_LIMIT, NormCase, NormInputs, NormRecipe,
                                             last_row_start, make_norm_inputs)
from kernelprop.core.impl import make_impl
from kernelprop.impls.mutants.rmsnorm import grid_capped_rows, int32_row_offset, reference
from kernelprop.properties.launch_cost import (INTERPRETER_MAX_PROGRAMS, first_interpreter_grid,
                                              grid_rows_skip_reason)
from kernelprop.core.scratch import poisoned_allocations

SPREAD = NormCase(seed=5, rows=6, dim=40, dtype="fp32", large_offsets=True)


def _rss_mib() -> int:
    return int(re.search(r"VmRSS:\s+(\d+)", open("/proc/self/status").read()).group(1)) // 1024


def test_spread_rows_stay_unallocated_and_read_only_their_rows():
    before = _rss_mib()
    x = make_norm_inputs(SPREAD)
    packed = make_norm_inputs(SPREAD.replace(large_offsets=False))
    assert last_row_start(x.x) >= LARGE_OFFSET > last_row_start(packed.x)
    assert x.x.untyped_storage().nbytes() >= LARGE_OFFSET * 4      # an 8 GiB fp32 buffer
    assert torch.equal(x.x, packed.x)
    golden = x.call(rms_norm_golden, recipe=NormRecipe())
    assert torch.equal(golden, packed.call(rms_norm_golden, recipe=NormRecipe()))
    assert "large_offsets" in x.shape_classes() and "large_offsets" not in packed.shape_classes()
    assert "large_offsets" in coverage.classify(x)
    state = x.state_dict()
    assert state["x"].untyped_storage().nbytes() == 6 * 40 * 4     # the rows, not the buffer
    back = NormInputs.from_state_dict(state)
    assert back.x.stride() == x.x.stride() and torch.equal(back.x, x.x)
    x.describe()
    assert _rss_mib() - before < 256


def test_int32_row_offset_is_wrong_only_past_2_31():
    x = make_norm_inputs(SPREAD)
    packed = make_norm_inputs(SPREAD.replace(large_offsets=False))
    assert torch.equal(packed.call(int32_row_offset), packed.call(reference))
    assert not torch.equal(x.call(int32_row_offset), x.call(reference))
    # the rows below 2^31 are right; the last is read from a wrapped offset
    assert torch.equal(x.call(int32_row_offset)[:-1], x.call(reference)[:-1])


def test_bundled_kernel_reads_spread_rows_without_touching_the_buffer():
    from kernelprop.kernels.rms_norm import rms_norm

    before = _rss_mib()
    x = make_norm_inputs(SPREAD.replace(rows=3, dim=8))
    y = x.call(rms_norm)
    assert torch.equal(y, make_norm_inputs(SPREAD.replace(rows=3, dim=8, large_offsets=False))
                       .call(rms_norm))
    assert _rss_mib() - before < 256


def test_grid_capped_rows_is_wrong_only_past_65535_rows():
    small = make_norm_inputs(NormCase(seed=2, rows=GRID_AXIS_LIMIT, dim=4))
    big = make_norm_inputs(NormCase(seed=2, rows=GRID_AXIS_LIMIT + 3, dim=4))
    assert "grid_rows" in big.shape_classes() and "grid_rows" not in small.shape_classes()
    with poisoned_allocations():
        assert torch.equal(small.call(grid_capped_rows), small.call(reference))
        wrong = big.call(grid_capped_rows)
    right = big.call(reference)
    differ = (wrong != right).any(-1).nonzero().flatten().tolist()
    assert differ == [GRID_AXIS_LIMIT]


def test_interpreter_grid_is_found_without_running_a_program():
    from kernelprop.kernels.rms_norm import rms_norm

    x = torch.zeros((GRID_AXIS_LIMIT + 1, 8), dtype=torch.bfloat16)
    grid = first_interpreter_grid(lambda: rms_norm(x, None))
    assert grid == (-(-(GRID_AXIS_LIMIT + 1) // 64), 1, 1)
    assert first_interpreter_grid(lambda: reference(x, None)) is None


@pytest.mark.parametrize("target, runs", [
    ("kernelprop.kernels.rms_norm:rms_norm", True),
    ("impls/torch_reference.py:rms_norm", True),
    ("tests/planted/rms_norm_one_program_per_row.py:rms_norm", False),
])
def test_grid_rows_runs_where_the_interpreter_affords_it(target, runs):
    impl = make_impl("rms_norm", target)
    reason = grid_rows_skip_reason(impl, "cpu", GRID_AXIS_LIMIT + 1)
    assert (reason is None) == runs, reason
    if not runs:
        assert f"launches {GRID_AXIS_LIMIT + 1} programs" in reason
        assert str(INTERPRETER_MAX_PROGRAMS) in reason
    assert grid_rows_skip_reason(impl, "cuda", GRID_AXIS_LIMIT + 1) is None


def test_out_of_bounds_load_fails_the_call():
    """A Triton kernel forming row * stride in int32 on spread rows: the faithful interpreter
    raises at the wrapped load (a GPU's illegal address) instead of reading host memory."""
    from triton.runtime.errors import InterpreterError

    from kernelprop.faithful.memory import IllegalAddress
    from kernelprop.impls.zoo.stack import zoo_fla_1077_grid_axis

    x = make_norm_inputs(SPREAD.replace(rows=3, dim=8, dtype="bf16"))
    with pytest.raises(InterpreterError) as raised:
        x.call(zoo_fla_1077_grid_axis)
    assert isinstance(raised.value.__cause__, IllegalAddress)
    packed = make_norm_inputs(SPREAD.replace(rows=3, dim=8, dtype="bf16", large_offsets=False))
    packed.call(zoo_fla_1077_grid_axis)   # in bounds: runs


def test_grid_check_fails_rows_on_grid_axis_1():
    """grid_rows' P1 grid check: rows on grid axis 1 (the zoo's flash-linear-attention #1077) is a
    grid CUDA cannot launch past 65535 row blocks; the bundled kernel's grid is on axis 0."""
    from kernelprop.impls.zoo.stack import zoo_fla_1077_grid_axis
    from kernelprop.kernels.rms_norm import rms_norm
    from kernelprop.properties.launch_cost import grid_within_limits
    from kernelprop.core.verdict import check_outcome

    x = {"inputs": make_norm_inputs(NormCase(seed=1, rows=GRID_AXIS_LIMIT + 1, dim=4))}
    bad = grid_within_limits(x, zoo_fla_1077_grid_axis, {})
    assert check_outcome(bad).failing and bad.metrics["grid"][1] > GRID_AXIS_LIMIT
    assert not check_outcome(grid_within_limits(x, rms_norm, {})).failing
    assert not check_outcome(grid_within_limits(x, reference, {})).failing


def test_fused_spread_rows_round_trip_and_int32_mutant():
    from kernelprop.golden.fused_add_norm import FusedCase, FusedInputs, make_fused_inputs
    from kernelprop.impls.mutants.fused import fused_int32_row_offset
    from kernelprop.impls.mutants.fused import reference as fused_reference
    from kernelprop.properties.replays_fused import clone_keeping_strides

    before = _rss_mib()
    case = FusedCase(seed=4, rows=4, dim=24, dtype="fp32", large_offsets=True)
    x, packed = make_fused_inputs(case), make_fused_inputs(case.replace(large_offsets=False))
    assert "large_offsets" in x.shape_classes() and "large_offsets" not in packed.shape_classes()
    assert clone_keeping_strides(x.x).stride() == x.x.stride()          # in-place runs keep the layout
    state = x.state_dict()
    assert state["x"].untyped_storage().nbytes() == 4 * 24 * 4
    back = FusedInputs.from_state_dict(state)
    assert back.residual.stride() == x.residual.stride() and torch.equal(back.residual, x.residual)
    for a, b in zip(packed.call(fused_int32_row_offset), packed.call(fused_reference)):
        assert torch.equal(a, b)
    assert not torch.equal(x.call(fused_int32_row_offset)[1], x.call(fused_reference)[1])
    assert _rss_mib() - before < 256
