"""Time to first failure of hypothesis-targeted vs untargeted fuzzing on the catalogue's subtlest
attention mutants (small errors: P kept in fp32, L from the unrounded exp, bf16 merge factors).

    python benchmarks/fuzz_targeting.py [--mutants p_fp32 l_unrounded ...] [--seeds 1 2 3]
        [--modes untargeted error_bound margin] [--examples 200] [--timeout 170] [--class plain]

Each run is one pytest process of P1 (`test_p1_kernel_matches_golden[<class>]`, the nightly
profile, --sizes small, a forced --hypothesis-seed so the database plays no part) against one
mutant, with kernelprop.commands.fuzz_plugin's stats (the example index and seconds of the first failing
example) and benchmarks/fuzz_targeting_plugin.py choosing the target() score by mode:
untargeted (no target() call), error_bound (the former score) or margin (the suite's score).
Runs are interleaved (seed, mutant, mode in turn) so a shared machine's load hits every mode
alike. Printed: per mutant and mode the examples to first failure per seed ("-" none within
--examples) and their median, and the seconds; the phase the failure came in.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTANTS = ("p_fp32", "l_unrounded", "fixed64_rescale_bf16")
MODES = ("untargeted", "error_bound", "margin", "both")


def one_run(mutant: str, mode: str, seed: int, examples: int, shape_class: str,
            timeout: float, classes: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, KP_TARGET_SCORE=mode, KERNELPROP_FUZZ_STATS=tmp,
                   KERNELPROP_NIGHTLY_EXAMPLES=str(examples * classes),
                   KERNELPROP_PROFILE="nightly",
                   PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        cmd = [sys.executable, "-m", "pytest", "properties/test_attention_p1.py",
               "-k", f"test_p1_kernel_matches_golden and {shape_class}",
               "-p", "kernelprop.commands.fuzz_plugin", "-p", "benchmarks.fuzz_targeting_plugin",
               "-p", "no:cacheprovider", "-p", "no:xdist", "--hypothesis-profile=nightly",
               f"--hypothesis-seed={seed}", "--sizes", "small", "-q", "--no-header",
               f"--impl=sparse_attention=impls/mutants/attention.py:{mutant}",
               "--reports-dir", str(Path(tmp) / "reports")]
        began = time.monotonic()
        try:
            subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
        wall = time.monotonic() - began
        tests = [json.loads(line) for p in Path(tmp).glob("*.jsonl")
                 for line in p.read_text().splitlines() if '"type": "test"' in line]
    test = tests[0] if tests else {}
    first = test.get("first_failure")
    return {"mutant": mutant, "mode": mode, "seed": seed, "wall_s": round(wall, 1),
            "timed_out": timed_out, "examples": test.get("examples"),
            "first_example": first and first["example"], "first_phase": first and first["phase"],
            "first_s": first and first["call_seconds"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mutants", nargs="+", default=list(MUTANTS))
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--examples", type=int, default=200, help="max_examples of the one class")
    p.add_argument("--class", dest="shape_class", default="plain")
    p.add_argument("--timeout", type=float, default=170.0, help="seconds per run")
    p.add_argument("--json", default=None, help="write every run's record here")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from kernelprop.properties.strategies import classes_for_run

    classes = 1 + len(classes_for_run("attn"))  # "plain" and each class share max_examples
    runs = []
    for seed in args.seeds:
        for mutant in args.mutants:
            for mode in args.modes:
                r = one_run(mutant, mode, seed, args.examples, args.shape_class, args.timeout,
                            classes)
                runs.append(r)
                print(json.dumps(r), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1) + "\n")
    print(f"\n| mutant | mode | examples to first failure (seeds {args.seeds}) | median | "
          f"seconds to first failure | phase |\n|---|---|---|---:|---|---|")
    for mutant in args.mutants:
        for mode in args.modes:
            rs = [r for r in runs if r["mutant"] == mutant and r["mode"] == mode]
            found = [r["first_example"] for r in rs if r["first_example"]]
            med = statistics.median(found) if len(found) == len(rs) else "-"
            print(f"| `{mutant}` | {mode} | "
                  f"{', '.join(str(r['first_example'] or '-') for r in rs)} | {med} | "
                  f"{', '.join(str(r['first_s'] if r['first_s'] is not None else '-') for r in rs)}"
                  f" | {', '.join(str(r['first_phase'] or '-') for r in rs)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
