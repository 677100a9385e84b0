"""Examples per minute of `kp fuzz` (rounds of pytest runs) against one uninterrupted nightly
pytest run of the same tests, interleaved on one machine (so a shared machine's load hits both).

    python benchmarks/fuzz_throughput.py [--minutes 3] [--examples 300] [--pairs 2]
        [--process-rounds N] [-k test_p1_kernel_matches_golden] [PATHS ...]

fuzz: `python -m kernelprop fuzz --minutes M PATHS -k EXPR --sizes small`, with a fresh database;
examples: the sum over its stats records (kernelprop.commands.fuzz_plugin) of every test's examples.
Per fuzz run also each round's restart: its wall time less the time its tests ran (the fuzz
plugin's per-test seconds, setup included), i.e. what starting the round cost (process start and
imports, or an in-process session's collection and setup). --process-rounds N adds N runs of
`fuzz --process-per-round` (a pytest process per round, the former rounds) after the pairs.
pytest: `python -m pytest PATHS -k EXPR --hypothesis-profile=nightly --sizes small` with
KERNELPROP_NIGHTLY_EXAMPLES=E and kernelprop.commands.fuzz_plugin's stats, a fresh database; its wall time
includes its one start. Printed per run: wall seconds, examples, examples per minute; then the
ratio fuzz / pytest of the summed examples per summed minute.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _examples(stats_root: Path) -> int:
    total = 0
    for path in stats_root.rglob("*.jsonl"):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("type") == "test":
                total += int(rec.get("examples", 0))
    return total


def _restarts(history: Path) -> list[float]:
    """Per round of a fuzz run: wall seconds less the seconds its tests ran."""
    out = []
    for summary in history.glob("runs/*/summary.json"):
        for rnd in json.loads(summary.read_text())["rounds"]:
            tests = [0.0]
            for path in (summary.parent / "stats" / f"round-{rnd['round']}").glob("*.jsonl"):
                tests += [json.loads(line).get("seconds", 0.0) for line in
                          path.read_text().splitlines() if '"type": "test"' in line]
            out.append(round(rnd["seconds"] - sum(tests), 2))
    return out


def run(kind: str, args, tmp: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    if kind in ("fuzz", "fuzz-process"):
        cmd = [sys.executable, "-m", "kernelprop", "fuzz", "--minutes", str(args.minutes),
               *args.paths, "-k", args.select, "--sizes", "small", "--database", str(tmp / "db"),
               "--history-dir", str(tmp / "history"), "--reports-dir", str(tmp / "reports")]
        cmd += ["--process-per-round"] if kind == "fuzz-process" else []
        stats = tmp / "history"
    else:
        env.update(KERNELPROP_NIGHTLY_EXAMPLES=str(args.examples), KERNELPROP_FUZZ_STATS=str(tmp / "stats"),
                   KERNELPROP_DATABASE=str(tmp / "db"), KERNELPROP_PROFILE="nightly")
        cmd = [sys.executable, "-m", "pytest", *args.paths, "-k", args.select, "-p",
               "kernelprop.commands.fuzz_plugin", "-p", "no:cacheprovider", "-p", "no:xdist",
               "--hypothesis-profile=nightly", "--sizes", "small", "-q",
               "--reports-dir", str(tmp / "reports")]
        stats = tmp / "stats"
    began = time.monotonic()
    subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True)
    wall = time.monotonic() - began
    n = _examples(stats)
    out = {"kind": kind, "wall_s": round(wall, 1), "examples": n,
           "per_min": round(n / (wall / 60), 1)}
    if kind != "pytest":
        out["restart_s_per_round"] = _restarts(stats)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("paths", nargs="*", default=["properties/test_attention_p1.py"])
    p.add_argument("-k", dest="select", default="test_p1_kernel_matches_golden")
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--examples", type=int, default=300, help="the pytest run's nightly examples")
    p.add_argument("--pairs", type=int, default=2)
    p.add_argument("--process-rounds", type=int, default=0,
                   help="runs of `fuzz --process-per-round` after the pairs")
    args = p.parse_args(argv)
    runs = []
    order = [k for i in range(args.pairs)
             for k in (("fuzz", "pytest") if i % 2 == 0 else ("pytest", "fuzz"))]
    for kinds in [[k] for k in order] + [["fuzz-process"]] * args.process_rounds:
        for kind in kinds:
            with tempfile.TemporaryDirectory() as tmp:
                r = run(kind, args, Path(tmp))
            runs.append(r)
            print(json.dumps(r), flush=True)
    kinds = [k for k in ("fuzz", "pytest", "fuzz-process") if any(r["kind"] == k for r in runs)]
    rate = {k: sum(r["examples"] for r in runs if r["kind"] == k)
            / (sum(r["wall_s"] for r in runs if r["kind"] == k) / 60) for k in kinds}
    print("examples per minute: " + ", ".join(f"{k} {v:.1f}" for k, v in rate.items())
          + (f", ratio fuzz / pytest {rate['fuzz'] / rate['pytest']:.2f}"
             if "fuzz" in rate and "pytest" in rate else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
