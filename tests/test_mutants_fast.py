"""The suite's power, in CI: four planted bugs must die on P1, and correct implementations must not.

A fast slice of `python -m kernelprop mutants` (docs/mutants.md): each mutant runs against the P1
test of its kind (ci profile, -x) in a pytest subprocess, as does the torch reference, which must
pass the same tests. A change that weakens P1 (a looser bound, a strategy that stops drawing pads,
sinks or bf16 P) or drops the test fails here. About 30 s on 2 cores.
"""
import concurrent.futures

from kernelprop.impls.mutants import by_name
from kernelprop.commands.mutants import run_entry

MUST_DIE = ("p_rtz", "sink_ignored", "pads_row0", "rsqrt_12bit")
CONTROLS = ("torch_reference_attention", "torch_reference_rms_norm")
TIMEOUT_S = 120
# the ci profile's 50 examples, split evenly over at most 10 shape classes (floor division loses
# fewer than 10): a P1 that silently stops drawing shows up as a control with too few examples
CI_EXAMPLES_AT_LEAST = 41


def _explain(run) -> str:
    tests = "\n".join(f"    {t.nodeid}: {t.outcome} {t.message}" for t in run.tests) or "    (none)"
    return f"  {run.name} ({run.target}):\n{tests}\n    output tail: {run.output_tail[-1500:]}"


def _problem(run, role) -> str:
    """Why this run breaks the suite's promise, or '' if it keeps it."""
    if run.timed_out:
        return f"timed out after {TIMEOUT_S}s"
    if not run.tests:
        return f"no P1 test of kind {run.kind} ran"
    if role == "mutant" and run.cell("P1") != "K":
        return f"P1 no longer catches: {run.description}"
    if role == "control" and (run.verdict != "passed" or run.cell("P1") != "."):
        return "false alarm on a correct implementation"
    if role == "control" and (run.fewest_examples() or ("", 0))[1] < CI_EXAMPLES_AT_LEAST:
        return f"its P1 test ran {run.examples_per_test()} examples, fewer than {CI_EXAMPLES_AT_LEAST}"
    return ""


def test_planted_bugs_die_and_correct_implementations_pass(tmp_path):
    # One test, not one per entry: under pytest-xdist a shared fixture would rerun every
    # subprocess on each worker.
    jobs = [(name, "mutant", ("-x",)) for name in MUST_DIE] + \
        [(name, "control", ()) for name in CONTROLS]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = [(role, pool.submit(run_entry, by_name(name), role=role, profile="ci",
                                      workdir=tmp_path, specs=("P1",), extra_args=extra,
                                      timeout=TIMEOUT_S, threads=1))
                   for name, role, extra in jobs]
        runs = [(role, future.result()) for role, future in futures]
    problems = [f"{run.name}: {why}\n{_explain(run)}" for role, run in runs
                if (why := _problem(run, role))]
    assert not problems, "\n".join(problems)


def test_a_controls_examples_are_summed_over_its_shape_classes():
    from kernelprop.commands.mutants import RunResult, TestResult, examples_ran, summarize, summary_line

    stats = {"reuse-phase": {"test-cases": [{"status": "valid"}]},
             "generate-phase": {"test-cases": [{"status": "valid"}] * 5 + [{"status": "invalid"}]},
             "shrink-phase": {"test-cases": [{"status": "interesting"}] * 9},
             "stopped-because": "settings.max_examples=6"}
    assert examples_ran(stats) == 6 and examples_ran(None) is None
    run = RunResult(name="c", role="control", kind="rms_norm", target="t", description="d", returncode=0)
    p1 = "properties/test_rmsnorm.py::test_p1_norm_matches_golden"
    run.tests = [TestResult(f"{p1}[plain]", ["P1"], "passed", 1.0, 1.0, examples=750),
                 TestResult(f"{p1}[eps0_tiny]", ["P1"], "passed", 1.0, 1.0, examples=750),
                 TestResult("properties/test_rmsnorm.py::test_p9[plain]", ["P9"], "passed", 1.0, 1.0,
                            examples=1400),
                 TestResult("properties/test_bad_input.py::test_p13_case[x]", ["P13"], "passed", 1.0, 1.0)]
    assert run.examples_per_test() == {p1: 1500, "properties/test_rmsnorm.py::test_p9": 1400}
    assert run.fewest_examples() == ("properties/test_rmsnorm.py::test_p9", 1400)
    assert summary_line(summarize([], [run])).endswith(
        "0 false alarms in 2900 examples, at least 1400 per property test")
