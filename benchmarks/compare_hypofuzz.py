"""Side by side: the project's fuzz scheduler (`python -m kernelprop fuzz`) and HypoFuzz
(`hypothesis fuzz`, PyPI `hypofuzz`, AGPL-3.0: never a dependency) on planted bugs of the kill
matrix, same machine, same time budget, same single test per mutant, one process each, each with
a fresh empty example database.

    pip install --target /tmp/hf/site hypofuzz     # throwaway; then remove hypothesis/pytest
    python benchmarks/compare_hypofuzz.py --hypofuzz-path /tmp/hf/site [--budget 45] [--out DIR]

Per (mutant, engine): found (a failing test case within the budget), time to first failure from
the engine's process launch (startup included: both start pytest and import torch/triton), test
cases run and test cases per second while running (benchmarks/engine_probe.py logs each one;
shrink steps included). Writes DIR/compare.json and prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ATTN_P1 = "properties/test_attention_p1.py::test_p1_kernel_matches_golden"
NORM_P1 = "properties/test_rmsnorm.py::test_p1_norm_matches_golden"
# a slice of impls/mutants/ spanning the kinds of bug: rounding, merge, index semantics,
# NaN edge, RMSNorm eps edge, RMSNorm dtype path (the last two took the most examples in the
# ci-profile kill matrix: 46 and 48)
SLICE = {
    "p_rtz": ("sparse_attention", "impls/mutants/attention.py:p_rtz", ATTN_P1),
    "o_not_rescaled": ("sparse_attention", "impls/mutants/attention.py:o_not_rescaled", ATTN_P1),
    "dups_once": ("sparse_attention", "impls/mutants/attention.py:dups_once", ATTN_P1),
    "empty_tile_nan": ("sparse_attention", "impls/mutants/attention.py:empty_tile_nan", ATTN_P1),
    "eps_dropped": ("rms_norm", "impls/mutants/rmsnorm.py:eps_dropped", NORM_P1),
    "fp32_input_as_bf16": ("rms_norm", "impls/mutants/rmsnorm.py:fp32_input_as_bf16", NORM_P1),
    # correct controls: nothing to find; their rows measure the search's test cases per second
    "control_attention": ("sparse_attention", "impls/torch_reference.py:sparse_decode_attention",
                          ATTN_P1),
    "control_rms_norm": ("rms_norm", "impls/torch_reference.py:rms_norm", NORM_P1),
}


def _env(work: Path, extra_path: str = "") -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "KERNELPROP_", "HYPOTHESIS_"))}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + extra_path if extra_path else "")
    # the nightly profile for both: it sets the CPU size limits (properties.strategies), so both
    # engines draw from the same input space (HypoFuzz ignores the profile's example counts)
    env.update(KERNELPROP_PROBE_DIR=str(work / "probe"), KERNELPROP_DATABASE=str(work / "db"),
               KERNELPROP_BACKEND="cpu", KERNELPROP_PROFILE="nightly")
    return env


def _commands(engine: str, kind: str, target: str, test: str, work: Path, budget: float):
    impl = f"{kind}={target}"
    pytest_args = [test, "--backend", "cpu", "--impl", impl, "-p", "benchmarks.engine_probe",
                   "-p", "no:cacheprovider"]
    if engine == "kp-fuzz":
        return [sys.executable, "-m", "kernelprop", "fuzz", "--minutes", str(budget / 60),
                "--backend", "cpu", "--database", str(work / "db"), "--impl", impl,
                "--history-dir", str(work / "history"), "--reports-dir", str(work / "reports"),
                "--fleet", "none", "--report-grace", "0", test, "--",
                "-p", "benchmarks.engine_probe"]
    return [sys.executable, "-c",
            "import sys, hypofuzz.entrypoint, hypothesis.extra.cli as c; "
            "c.main(['fuzz', '--no-dashboard', '-n', '1', '--', *sys.argv[1:]])", *pytest_args]


def run_one(engine: str, name: str, budget: float, out: Path, hypofuzz_path: str) -> dict:
    kind, target, test = SLICE[name]
    work = out / f"{name}-{engine}"
    work.mkdir(parents=True, exist_ok=True)
    cmd = _commands(engine, kind, target, test, work, budget)
    launched = time.time()
    with open(work / "log.txt", "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(work, hypofuzz_path), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            # kp fuzz stops itself at the budget (+ its SIGINT grace); HypoFuzz runs until every
            # test failed, so it is stopped at the budget
            proc.wait(timeout=budget + 25 if engine == "kp-fuzz" else budget)
        except subprocess.TimeoutExpired:
            pass
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    ended = time.time()
    cases = [json.loads(line) for p in (work / "probe").glob("*.jsonl")
             for line in p.read_text().splitlines() if line.strip()]
    cases.sort(key=lambda c: c["t"])
    failed = [c for c in cases if c["status"] == "failed"]
    running = (cases[-1]["t"] - cases[0]["t"]) if len(cases) > 1 else 0.0
    return {"mutant": name, "engine": engine, "found": bool(failed),
            "first_failure_s": round(failed[0]["t"] - launched, 2) if failed else None,
            "first_case_s": round(cases[0]["t"] - launched, 2) if cases else None,
            "cases_before_failure": (cases.index(failed[0]) + 1) if failed else None,
            "cases": len(cases), "cases_per_s": round(len(cases) / running, 1) if running else None,
            "wall_s": round(ended - launched, 1), "budget_s": budget}


def table(rows: list[dict]) -> str:
    lines = ["| mutant | engine | found | time to first failure (s, from launch) | first test case (s) "
             "| cases before it | cases | cases/s | wall (s) |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['mutant']} | {r['engine']} | {'yes' if r['found'] else 'no'} | "
                     f"{r['first_failure_s'] if r['found'] else '-'} | {r['first_case_s']} | "
                     f"{r['cases_before_failure'] or '-'} | {r['cases']} | {r['cases_per_s']} | "
                     f"{r['wall_s']} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hypofuzz-path", required=True, help="a --target dir holding hypofuzz")
    p.add_argument("--budget", type=float, default=45.0, help="seconds per mutant and engine")
    p.add_argument("--only", nargs="*", default=list(SLICE), choices=list(SLICE))
    p.add_argument("--engines", nargs="*", default=["kp-fuzz", "hypofuzz"])
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="kp-vs-hypofuzz-"))
    rows = []
    for name in args.only:
        for engine in args.engines:
            rows.append(run_one(engine, name, args.budget, out, args.hypofuzz_path))
            print(json.dumps(rows[-1]), flush=True)
    (out / "compare.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(table(rows))
    print(f"logs: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
