"""The suite's power, in CI: four planted bugs must die on P1, and correct implementations must not.

A fast slice of `python -m kernelprop mutants` (docs/mutants.md): each mutant runs against the P1
test of its kind (ci profile, -x) in a pytest subprocess, as does the torch reference, which must
pass the same tests. A change that weakens P1 (a looser bound, a strategy that stops drawing pads,
sinks or bf16 P) or drops the test fails here. About 30 s on 2 cores.
"""
import concurrent.futures

import pytest

from impls.mutants import by_name
from kernelprop.mutants import run_entry

MUST_DIE = ("p_rtz", "sink_ignored", "pads_row0", "rsqrt_12bit")
CONTROLS = ("torch_reference_attention", "torch_reference_rms_norm")
TIMEOUT_S = 120


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("mutants")
    jobs = [(name, "mutant", ("-x",)) for name in MUST_DIE] + \
        [(name, "control", ()) for name in CONTROLS]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(run_entry, by_name(name), role=role, profile="ci",
                                     workdir=workdir, specs=("P1",), extra_args=extra,
                                     timeout=TIMEOUT_S, threads=1)
                   for name, role, extra in jobs}
        return {name: future.result() for name, future in futures.items()}


def _explain(run) -> str:
    tests = "\n".join(f"  {t.nodeid}: {t.outcome} {t.message}" for t in run.tests) or "  (none)"
    return f"{run.name} ({run.target}):\n{tests}\n--- output tail ---\n{run.output_tail[-2000:]}"


@pytest.mark.parametrize("name", MUST_DIE)
def test_planted_bug_is_killed_by_p1(runs, name):
    run = runs[name]
    assert not run.timed_out, f"timed out after {TIMEOUT_S}s\n{_explain(run)}"
    assert run.tests, f"no P1 test of kind {run.kind} ran\n{_explain(run)}"
    assert run.cell("P1") == "K", f"P1 no longer catches {name}: {run.description}\n{_explain(run)}"


@pytest.mark.parametrize("name", CONTROLS)
def test_correct_implementation_passes_p1(runs, name):
    run = runs[name]
    assert not run.timed_out, f"timed out after {TIMEOUT_S}s\n{_explain(run)}"
    assert run.tests, f"no P1 test of kind {run.kind} ran\n{_explain(run)}"
    assert run.verdict == "passed" and run.cell("P1") == ".", f"false alarm\n{_explain(run)}"
