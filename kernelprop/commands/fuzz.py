"""python -m kernelprop fuzz --minutes N [--workers W] [--impl KIND=TARGET ...] [--database DB]
                          [--local-database DIR] [--fleet STORE] [--worker NAME]
                          [-k EXPR] [--examples E] [--seed S] [PATHS ...] [-- PYTEST_ARGS ...]
python -m kernelprop fuzz report [--fleet STORE ...] [--out DIR]   the fleet dashboard

Nightly fuzzing: runs the `nightly` hypothesis profile over the whole catalogue (properties/ by
default) in rounds until N minutes are up, each round a pytest run (hypothesis draws a fresh
random seed each time; --seed forces one, which turns the database off), with a persistent
example database shared by all rounds and nights: DB is a directory (default
.hypothesis/examples) or a redis:// URL shared by a fleet of workers, multiplexed with the local
--local-database (kernelprop.commands.database; needs the `redis` extra). The database is opened before the
first round: one that cannot be opened stops the run (exit 2) with the cause. A Redis that dies
later only warns: rounds go on with the local database. Failing and target-maximizing examples
found one night, on any worker, are replayed first the next.

Fleet: with --fleet STORE (default: the --database Redis, if any) the run's record is appended to
STORE (kernelprop.commands.fleet) for `fuzz report`; --worker names this machine (default the host name).

Rounds: the first runs --examples examples per test (default 10, so every test is reached); later
rounds scale that so a round takes about a third of the time left (at most the nightly profile's
2000 examples and 4x the last round's) unless --fixed-examples, and run the tests with the fewest
examples so far first; a test that failed is deselected afterwards (its report exists). Every
round runs in --workers long-lived processes (kernelprop.commands.fuzz_worker: one in-process pytest
session per round, worker i on shard i of the tests), so Python, torch, triton and the suite are
imported once per run, not once per round. --process-per-round starts a pytest process per round
instead (xdist for --workers); its rounds last at least 20 times their restart (pytest start and
imports), so restarts cost <= 5% of the run. At the deadline the running round is
interrupted (SIGINT, then SIGKILL): tests that completed, and the examples the interrupted one
ran, count. A test cut off while it shrank a failure counts as failed, and one short run under
the `replay` profile (database reuse, no shrinking; --report-grace seconds at most) writes its
report from the failing example the database kept.

While it runs it prints a progress line every --progress seconds. At the end it writes
  <history>/runs/<run-id>/summary.md, summary.json, round-<r>.log, stats/ (per-example scores)
  <history>/history.jsonl   one JSON line per run appended (trends)
  <history>/latest.html     error distribution per property, worst error over past runs (SVG)
  <history>/latest.md       the summary of this run
and counterexample reports under <reports>/<run-id>/ (kernelprop.commands.report).
Exit status: 1 if any property failed or a test errored (collection included), 0 otherwise,
2 on bad arguments or a database that cannot be opened.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from kernelprop.core import knobs

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_EXAMPLES = 10         # first round: a few examples of every test, then scaled to the time left
MAX_EXAMPLES = 2000        # the nightly profile's own max_examples
MIN_EXAMPLES = 10
MIN_ROUND_S = 20.0         # no new round starts with less time than this left (but round 0 does)
RESTART_SHARE = 0.05       # a round lasts >= 1/RESTART_SHARE x its restart (pytest start, imports)
GRACE_S = 20.0             # after SIGINT at the deadline, before SIGKILL


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m kernelprop fuzz",
                                description="Nightly fuzzing of the property catalogue.")
    p.add_argument("paths", nargs="*", help="test paths (default: the repo's properties/)")
    p.add_argument("--minutes", type=float, required=True, help="time budget, in minutes")
    p.add_argument("--workers", type=int, default=1,
                   help="long-lived pytest worker processes, each fuzzing its shard of the tests "
                        "(with --process-per-round: pytest-xdist workers, -n)")
    p.add_argument("--process-per-round", action="store_true",
                   help="start a new pytest process for every round (the former rounds) instead "
                        "of long-lived workers that run every round in-process")
    p.add_argument("--impl", action="append", default=[], metavar="KIND=PATH_OR_MODULE:CALLABLE",
                   help="implementation under test (as pytest --impl; repeatable)")
    p.add_argument("--database", default=None, metavar="PATH_OR_REDIS_URL",
                   help="hypothesis example database: a directory, or redis://HOST:PORT/N shared "
                        "by a fleet (default $KERNELPROP_DATABASE or .hypothesis/examples)")
    p.add_argument("--local-database", default=None, metavar="DIR",
                   help="the local directory multiplexed with a redis --database (default "
                        "$KERNELPROP_LOCAL_DATABASE or .hypothesis/examples)")
    p.add_argument("--fleet", default=None, metavar="REDIS_URL_OR_DIR",
                   help="fleet history store this run's record is appended to (default: the "
                        "--database Redis; 'none' for no record)")
    p.add_argument("--worker", default=None,
                   help="this worker's name in the fleet history (default $KERNELPROP_WORKER or "
                        "the host name)")
    p.add_argument("-k", "--select", default=None, metavar="EXPR",
                   help="only tests matching this pytest -k expression")
    p.add_argument("--examples", type=int, default=None,
                   help=f"max_examples per test in the first round (default {DEFAULT_EXAMPLES})")
    p.add_argument("--fixed-examples", action="store_true",
                   help="keep --examples in every round instead of scaling it to the time left")
    p.add_argument("--seed", type=int, default=None,
                   help="first round's --hypothesis-seed (later rounds +1). Note: hypothesis "
                        "neither reads nor saves the example database under a forced seed")
    p.add_argument("--backend", default=None, choices=["auto", "cpu", "cuda"])
    p.add_argument("--sizes", default=None, choices=["small", "reference", "large"],
                   help="example sizes (kernelprop/core/sizes.py; default: reference, the nightly's)")
    p.add_argument("--reports-dir", default=knobs.reports.get())
    p.add_argument("--history-dir", default="fuzz-history")
    p.add_argument("--progress", type=float, default=15.0, help="seconds between progress lines")
    p.add_argument("--report-grace", type=float, default=60.0,
                   help="seconds after the deadline to replay failures it cut off mid-shrink, "
                        "so they get a report (0: none)")
    return p


# %% reading the plugin's stats

def read_stats(directory: Path) -> list[dict]:
    records = []
    for path in sorted(directory.glob("**/*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line being written right now
    return records


def _merge_max(into: dict, new: dict) -> None:
    for label, value in (new or {}).items():
        into[label] = max(into.get(label, -math.inf), value)


def aggregate(rounds: list[dict], reports: dict[str, list[str]]) -> dict:
    """Per test over all rounds: examples, failures, the worst target score, all scores."""
    props: dict = {}
    errors: list[dict] = []
    outages = [o for rnd in rounds for rec in rnd["records"] if rec.get("type") == "database"
               for o in rec.get("outages", [])]
    for rnd in rounds:
        if rnd.get("kind") == "replay":
            continue  # replays of failures already counted; their reports are found on disk
        for rec in rnd["records"]:
            if rec.get("type") == "collect_error":
                if rec["nodeid"] not in {e["nodeid"] for e in errors}:
                    errors.append({"nodeid": rec["nodeid"], "message": rec.get("message", "")})
                continue
            if rec.get("type") != "test":
                continue
            p = props.setdefault(rec["nodeid"], {
                "nodeid": rec["nodeid"], "spec": rec.get("spec", []), "rounds": 0,
                "examples": 0, "failing_examples": 0, "gave_up": 0, "failures": 0, "errors": 0,
                "skipped": 0, "interrupted": 0, "max": {}, "scores": {}, "phases": {},
                "seconds": 0.0, "reports": [], "first_failure": None})
            p["rounds"] += 1
            p["examples"] += rec.get("examples", 0)
            p["failing_examples"] += rec.get("failed", 0)
            p["gave_up"] += rec.get("gave_up", 0)
            p["seconds"] += rec.get("seconds", 0.0)
            outcome = rec.get("outcome")
            # a test cut off by the deadline after it found a failing example failed too
            p["failures"] += outcome == "failed" or (outcome == "interrupted"
                                                    and rec.get("failed", 0) > 0)
            p["errors"] += outcome == "error"
            p["skipped"] += outcome == "skipped"
            p["interrupted"] += bool(rec.get("interrupted"))
            _merge_max(p["max"], rec.get("max"))
            if p["first_failure"] is None and rec.get("first_failure"):
                p["first_failure"] = dict(rec["first_failure"], round=rnd["round"])
            for label, values in (rec.get("scores") or {}).items():
                p["scores"].setdefault(label, []).extend(values)
            for phase, n in (rec.get("phases") or {}).items():
                p["phases"][phase] = p["phases"].get(phase, 0) + n
    for nodeid, paths in reports.items():
        props.setdefault(nodeid, {"nodeid": nodeid, "spec": [], "rounds": 0, "examples": 0,
                                  "failing_examples": 0, "gave_up": 0, "failures": 1,
                                  "errors": 0, "skipped": 0, "interrupted": 0, "max": {},
                                  "scores": {}, "phases": {}, "seconds": 0.0, "reports": [],
                                  "first_failure": None})
        props[nodeid]["reports"] = paths
    for p in props.values():
        p["worst"] = max(p["max"].values()) if p["max"] else None
        p["worst_label"] = max(p["max"], key=p["max"].get) if p["max"] else None
    collected = sorted({n for rnd in rounds if rnd.get("kind") != "replay"
                        for rec in rnd["records"]
                        if rec.get("type") == "collected" for n in rec.get("nodeids", [])})
    return {"properties": dict(sorted(props.items())), "collect_errors": errors,
            "not_reached": [n for n in collected if n not in props],
            "groups": group_by_test(props), "database_outages": outages}


def group_by_test(props: dict) -> dict:
    """Parametrized cases of one test function summed into one row (test id without [...])."""
    groups: dict = {}
    for nodeid, p in props.items():
        base = nodeid.split("[", 1)[0]
        g = groups.setdefault(base, {"nodeid": base, "spec": [], "cases": 0, "examples": 0,
                                     "failing_examples": 0, "failures": 0, "errors": 0,
                                     "interrupted": 0, "max": {}, "scores": {}, "reports": [],
                                     "seconds": 0.0, "first_failure": None})
        g["cases"] += 1
        for key in ("examples", "failing_examples", "failures", "errors", "interrupted",
                    "seconds"):
            g[key] += p[key]
        g["first_failure"] = g["first_failure"] or p.get("first_failure")
        g["spec"] = sorted(set(g["spec"]) | set(p["spec"]))
        _merge_max(g["max"], p["max"])
        for label, values in p["scores"].items():
            g["scores"].setdefault(label, []).extend(values)
        g["reports"] += p["reports"]
    for g in groups.values():
        g["worst"] = max(g["max"].values()) if g["max"] else None
    return dict(sorted(groups.items()))


def find_reports(reports_dir: Path, run_id: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in sorted((reports_dir / run_id).glob("*/report.json")):
        try:
            nodeid = json.loads(path.read_text())["nodeid"]
        except (OSError, ValueError, KeyError):
            continue
        out.setdefault(nodeid, []).append(str(path.parent))
    return out


# %% running rounds

def _pytest_command(args, paths: list[str], seed: int, extra: list[str], deselect=(),
                    profile: str = "nightly", shard: str | None = None) -> list[str]:
    """The round's pytest command line; with `shard` ("i/W") the arguments of one in-process
    shard (kernelprop.commands.fuzz_worker) instead: no interpreter prefix, no xdist."""
    prefix = [] if shard else [sys.executable, "-m", "pytest"]
    cmd = [*prefix, *paths, "-p", "kernelprop.commands.fuzz_plugin",
           f"--hypothesis-profile={profile}",
           "--reports-dir", str(Path(args.reports_dir).resolve()),
           "--continue-on-collection-errors", "-p", "no:cacheprovider", "-q", "-rfE"]
    if seed is not None:  # hypothesis ignores the example database under a forced seed
        cmd.append(f"--hypothesis-seed={seed}")
    if shard:
        # no:unraisableexception: its session end runs gc.collect() 5 times, ~2.5 s a round with
        # torch and triton loaded (measured), for warnings about __del__ errors a fuzz run ignores
        cmd += ["-p", "no:xdist", "-p", "no:unraisableexception", f"--fuzz-shard={shard}"]
    elif args.workers > 1 and profile == "nightly":
        cmd += ["-n", str(args.workers)]
    if args.select and profile == "nightly":
        cmd += ["-k", args.select]
    if args.backend:
        cmd += ["--backend", args.backend]
    for value in args.impl:
        cmd += ["--impl", value]
    for nodeid in deselect:
        cmd += ["--deselect", nodeid]
    return cmd + extra


def _interrupt(proc: subprocess.Popen) -> None:
    """SIGINT to the round's process group (pytest and its xdist workers), then SIGKILL."""
    for sig, wait in ((signal.SIGINT, GRACE_S), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def _progress_line(elapsed, budget, rnd, examples, records) -> str:
    done = [r for r in records if r.get("type") == "test"]
    running: dict = {}
    for r in records:
        if r.get("type") == "progress":
            running[r["nodeid"]] = r
    for r in done:
        running.pop(r["nodeid"], None)
    n_examples = sum(r.get("examples", 0) for r in done) + \
        sum(r.get("examples", 0) for r in running.values())
    failures = sum(r.get("outcome") == "failed" for r in done)
    worst: dict = {}
    for r in list(done) + list(running.values()):
        key = "/".join(r.get("spec") or []) or r["nodeid"].split("::")[-1]
        for value in (r.get("max") or {}).values():
            worst[key] = max(worst.get(key, -math.inf), value)
    worst_text = ", ".join(f"{k} {_fmt(v)}" for k, v in sorted(worst.items())) or "-"
    return (f"[{_clock(elapsed)}/{_clock(budget)}] round {rnd} ({examples} examples/test): "
            f"{len(done)} tests done, {len(running)} running, {n_examples} examples, "
            f"{failures} failed; worst score {worst_text}")


def run_round(args, rnd: int, seed: int, examples: int, paths, extra, work: Path, env: dict,
              start: float, deadline: float, deselect=(), seen=None,
              profile: str = "nightly", pool=None) -> dict:
    """One round: a pytest process of its own, or with `pool` (a kernelprop.commands.fuzz_worker.WorkerPool)
    one in-process pytest session per long-lived worker, each on its shard of the tests."""
    stats = work / "stats" / f"round-{rnd}"
    log = work / f"round-{rnd}.log"
    priority = work / f"priority-{rnd}.json"
    priority.write_text(json.dumps(seen or {}))
    knob_env = knobs.env(nightly_examples=examples, fuzz_stats=stats, fuzz_priority=priority,
                         profile=profile)
    if pool is not None:
        return _run_pool_round(args, rnd, seed, examples, paths, extra, work, knob_env, start,
                               deadline, deselect, pool, stats, log)
    env = dict(env, **knob_env)
    cmd = _pytest_command(args, paths, seed, extra, deselect, profile)
    began = time.monotonic()
    with open(log, "w") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        interrupted = _watch_round(args, rnd, examples, stats, start, deadline,
                                   busy=lambda: proc.poll() is None,
                                   wait=time.sleep, interrupt=lambda: _interrupt(proc))
    return _round_result(rnd, profile, seed, examples, proc.wait(), interrupted, began, log, stats)


def _run_pool_round(args, rnd, seed, examples, paths, extra, work, knob_env, start, deadline,
                    deselect, pool, stats: Path, log: Path) -> dict:
    from kernelprop.commands.fuzz_worker import round_rc

    shards = pool.count
    logs = [log] if shards == 1 else [work / f"round-{rnd}.shard{i}.log" for i in range(shards)]
    commands = [{"argv": _pytest_command(args, paths, seed, extra, deselect,
                                         shard=f"{i}/{shards}"),
                 "env": knob_env, "log": str(logs[i])} for i in range(shards)]
    began = time.monotonic()
    pool.start_round(commands)
    interrupted = _watch_round(args, rnd, examples, stats, start, deadline, busy=pool.busy,
                               wait=pool.wait, interrupt=lambda: pool.interrupt(GRACE_S))
    rc = round_rc([w.rc for w in pool.workers[:shards]])
    if shards > 1:
        log.write_text("".join(f"=== shard {i}/{shards}: {p.name}\n"
                               + (p.read_text() if p.exists() else "") for i, p in enumerate(logs)))
    return _round_result(rnd, "nightly", seed, examples, rc, interrupted, began, log, stats)


def _watch_round(args, rnd, examples, stats: Path, start, deadline, *, busy, wait, interrupt) -> bool:
    """Wait for a round (`busy()` until it ends, `wait(s)` between looks), printing progress every
    args.progress seconds; `interrupt()` it at the deadline or on Ctrl-C (re-raised). Returns
    whether the deadline interrupted it."""
    next_progress = time.monotonic() + args.progress
    try:
        while busy():
            wait(0.5)
            now = time.monotonic()
            if now >= deadline and busy():
                print(f"[{_clock(now - start)}] deadline: interrupting round {rnd}", flush=True)
                interrupt()
                return True
            if now >= next_progress:
                next_progress = now + args.progress
                print(_progress_line(now - start, deadline - start, rnd, examples,
                                     read_stats(stats)), flush=True)
    except KeyboardInterrupt:
        interrupt()
        raise
    return False


def _round_result(rnd, kind, seed, examples, rc, interrupted, began, log: Path, stats: Path) -> dict:
    return {"round": rnd, "kind": kind, "seed": seed, "examples_per_test": examples, "rc": rc,
            "interrupted": interrupted, "seconds": round(time.monotonic() - began, 1),
            "log": str(log), "records": read_stats(stats)}


def _replay_unreported(args, rounds, extra, work, env, start, seed) -> None:
    """Tests the deadline cut off while they shrank a failure have no report yet. The example
    database holds their failing example (hypothesis saves each one it finds), so one short run
    under the `replay` profile (database reuse only, no shrinking) writes the report."""
    pending = sorted({rec["nodeid"] for r in rounds for rec in r["records"]
                      if rec.get("type") == "test" and rec.get("outcome") == "interrupted"
                      and rec.get("failed", 0) > 0})
    if not pending or args.report_grace <= 0:
        return
    now = time.monotonic()
    print(f"[{_clock(now - start)}] replaying {len(pending)} failure(s) the deadline cut off "
          f"while shrinking, to write their reports (at most {args.report_grace:g} s)", flush=True)
    rootdir = Path(args.rootdir)
    targets = [str(rootdir / n) if not Path(n.split("::")[0]).exists() else n for n in pending]
    rounds.append(run_round(args, len(rounds), seed, 1, targets, extra, work, env, start,
                            now + args.report_grace, profile="replay"))


def next_examples(examples: int, seconds: float, remaining: float, interrupted: bool,
                   test_seconds: float | None = None, restarts: bool = True) -> int:
    """max_examples of the next round, so that it takes about a third of the time left.
    seconds: the last round's wall time; test_seconds: the part of it spent in tests (per worker).
    The rest (pytest start, torch and triton imports: ~10 s a round, measured) does not grow
    with the examples, so only the test part is scaled (before, a short run with a ~10 s start
    and 0.5 s of examples scaled as if examples took 10 s, and stayed at tiny rounds).
    A round restarts pytest; where that restart would cost more than RESTART_SHARE of a third of
    the time left, the round is lengthened to 1/RESTART_SHARE restarts (up to all the time left:
    one pytest process then runs to the deadline, interrupted there like any round).
    restarts=False: rounds run in long-lived workers (kernelprop.commands.fuzz_worker), which pay the start
    once; their overhead (collection, session setup) is still subtracted, never lengthened for."""
    if interrupted or seconds <= 0:
        return examples
    target = max(remaining / 3, MIN_ROUND_S)
    if test_seconds is not None and 0 < test_seconds < seconds:
        overhead = seconds - test_seconds
        if restarts and overhead > RESTART_SHARE * target:
            target = max(target, min(remaining, overhead / RESTART_SHARE))
        scaled = int(examples * max(target - overhead, test_seconds) / max(test_seconds, 0.1))
    else:
        scaled = int(examples * target / max(seconds, 1.0))
    return max(MIN_EXAMPLES, min(MAX_EXAMPLES, scaled, examples * 4))


# %% the summary

def _versions() -> dict:
    from kernelprop.commands.report import versions

    return versions()


INF_SCORE = 1e300  # what properties.checks passes to target() for an infinite ratio


def _fmt(x) -> str:
    if x is None:
        return "-"
    return "inf" if x >= INF_SCORE else f"{x:.4g}"


def markdown(summary: dict) -> str:
    lines = [f"# kernelprop fuzz {summary['run_id']}: "
             + ("FAILED" if summary["exit_code"] else "passed"), "",
             f"{summary['started']} to {summary['finished']}: {summary['minutes']} min budget, "
             f"{len(summary['rounds'])} rounds, {summary['workers']} worker(s), backend "
             f"{summary['backend']} ({summary['device']}), database `{summary['database']}`, "
             f"impl {', '.join(summary['impl']) or 'bundled'}", "",
             "| property | test (cases) | examples | failing runs | failing examples | "
             "worst score (target max) | reports |",
             "|---|---|---:|---:|---:|---:|---|"]
    for nodeid, p in summary["groups"].items():
        spec = "/".join(p["spec"]) or "-"
        cases = f" ({p['cases']} cases)" if p["cases"] > 1 else ""
        flag = " (interrupted)" if p["interrupted"] else ""
        reports = "<br>".join(f"`{r}`" for r in p["reports"]) or "-"
        failing = p["failures"] + p["errors"]
        lines.append(f"| {spec} | `{nodeid}`{cases}{flag} | {p['examples']} | {failing} | "
                     f"{p['failing_examples']} | {_fmt(p['worst'])} | {reports} |")
    if summary.get("database_outages"):
        lines += ["", f"**Shared database outages ({len(summary['database_outages'])})**: the "
                  "rounds went on with the local database; everything found is in it and in the "
                  "reports. " + "; ".join(f"{o.get('database', '?')}: {o['error']}"
                                          for o in summary["database_outages"][:5])]
    if summary["not_reached"]:
        lines += ["", f"Not reached before the deadline ({len(summary['not_reached'])}): "
                  + ", ".join(f"`{n}`" for n in summary["not_reached"])]
    if summary["collect_errors"]:
        lines += ["", "## Collection errors", ""]
        lines += [f"- `{e['nodeid']}`" for e in summary["collect_errors"]]
    lines += ["", "## Rounds", "",
              "| round | profile | seed | examples/test | seconds | pytest exit | log |",
              "|---:|---|---:|---:|---:|---:|---|"]
    for r in summary["rounds"]:
        seed = "random" if r["seed"] is None else r["seed"]
        lines.append(f"| {r['round']} | {r.get('kind', 'nightly')} | {seed} | "
                     f"{r['examples_per_test']} | {r['seconds']} | "
                     f"{r['rc']}{' (deadline)' if r['interrupted'] else ''} | `{r['log']}` |")
    lines += ["", "worst score: the largest hypothesis `target()` score of the property "
              "(kernelprop.core.verdict.Verdict.score: the margin ratio where the bound has a discrete "
              "share of bf16 flips, 0 for a legitimate flip; else max |actual - expected| / bound;"
              " for bitwise checks the count of differing elements); above 1 fails. Failing runs: rounds in which the test failed or errored."
              " Replay a report: `python -m kernelprop replay <report>/report.json`.", ""]
    return "\n".join(lines)


def _quantiles(values: list[float]) -> dict:
    if not values:
        return {}
    v = sorted(values)

    def q(f):
        return v[min(len(v) - 1, int(f * (len(v) - 1) + 0.5))]
    return {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": v[-1], "n": len(v)}


def history_line(summary: dict) -> dict:
    """One line of history.jsonl: per test function (parametrized cases summed) the counts, the
    worst score and score quantiles per target label; no per-example scores, no per-case rows."""
    line = {k: v for k, v in summary.items() if k not in ("properties", "rounds", "groups")}
    line["rounds"] = [{k: v for k, v in r.items() if k != "records"} for r in summary["rounds"]]
    line["groups"] = {}
    for base, g in summary["groups"].items():
        entry = {k: g[k] for k in ("spec", "cases", "examples", "failing_examples", "failures",
                                   "errors", "interrupted", "max", "worst", "reports")}
        entry["quantiles"] = {label: _quantiles(vals) for label, vals in g["scores"].items()}
        line["groups"][base] = entry
    line["not_reached"] = len(summary.get("not_reached") or [])
    return line


def read_history(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def write_outputs(summary: dict, history_dir: Path, work: Path) -> dict[str, Path]:
    from kernelprop.commands.fuzz_html import render

    from kernelprop.commands.report import plain

    history_dir.mkdir(parents=True, exist_ok=True)
    md = markdown(summary)
    (work / "summary.md").write_text(md)
    (history_dir / "latest.md").write_text(md)
    full = plain({**{k: v for k, v in summary.items() if k != "groups"},
                  "rounds": [{k: v for k, v in r.items() if k != "records"}
                             for r in summary["rounds"]]})
    (work / "summary.json").write_text(json.dumps(full, indent=1, allow_nan=False) + "\n")
    hist = history_dir / "history.jsonl"
    with open(hist, "a") as f:
        f.write(json.dumps(plain(history_line(summary)), allow_nan=False) + "\n")
    html = render(summary, read_history(hist))
    (work / "report.html").write_text(html)
    (history_dir / "latest.html").write_text(html)
    return {"markdown": work / "summary.md", "json": work / "summary.json", "history": hist,
            "html": history_dir / "latest.html"}


# %% main

def main(argv: list[str]) -> int:
    if argv[:1] == ["report"]:
        from kernelprop.commands.fleet_cli import main as report_main

        return report_main(argv[1:])
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    parser = _parser()
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.workers < 1 or (args.examples is not None and args.examples < 1):
        parser.error("--minutes must be > 0, --workers and --examples >= 1")
    from kernelprop.core.impl import parse_impl_option
    from kernelprop.commands.report import new_run_id

    for value in args.impl:
        try:
            parse_impl_option(value)
        except ValueError as err:
            parser.error(str(err))
    if args.backend == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--backend cuda was asked for but torch sees no CUDA device")
    paths = args.paths or [str(ROOT / "properties")]
    args.rootdir = str(ROOT)
    from kernelprop.commands.database import DatabaseUnavailable, open_database, parse_database

    try:  # strict: a database that cannot be opened stops the run here, with the cause
        spec = parse_database(args.database, args.local_database)
        spec = type(spec)(local=str(Path(spec.local).resolve()), shared=spec.shared)
        open_database(spec, on_error="stop")
    except DatabaseUnavailable as err:
        print(f"kernelprop fuzz: {err}", file=sys.stderr, flush=True)
        return 2
    database = spec.describe()
    fleet = args.fleet if args.fleet is not None else spec.shared
    fleet = None if fleet in (None, "", "none") else fleet
    run_id = f"fuzz-{new_run_id()}"
    history_dir = Path(args.history_dir).resolve()
    work = history_dir / "runs" / run_id
    work.mkdir(parents=True, exist_ok=True)
    # rounds open the database fail-soft: it answered just now; a later outage only warns
    env = dict(os.environ, **knobs.env(profile="nightly", database=spec.shared or spec.local,
                                       local_database=spec.local, database_on_error="warn",
                                       run_id=run_id, backend=args.backend or None,
                                       sizes=args.sizes or None),
               PYTHONPATH=os.pathsep.join([str(ROOT)] + ([os.environ["PYTHONPATH"]]
                                                         if os.environ.get("PYTHONPATH") else [])))
    seed = args.seed
    examples = args.examples or DEFAULT_EXAMPLES

    started = _dt.datetime.now(_dt.timezone.utc)
    start = time.monotonic()
    deadline = start + args.minutes * 60
    print(f"kernelprop fuzz {run_id}: {args.minutes:g} min, {args.workers} worker(s), database "
          f"{database}, paths {' '.join(paths)}; logs and stats in {work}", flush=True)
    rounds: list[dict] = []
    failed_tests: list[str] = []  # reported once; later rounds spend their time on the others
    rnd = 0
    pool = None
    if not args.process_per_round:
        from kernelprop.commands.fuzz_worker import WorkerPool

        pool = WorkerPool(args.workers, env, work / "workers.log")
    try:
        while True:
            remaining = deadline - time.monotonic()
            if rounds and remaining < MIN_ROUND_S:
                break
            round_seed = None if seed is None else seed + rnd
            print(f"[{_clock(time.monotonic() - start)}] round {rnd}: "
                  + ("" if seed is None else f"seed {round_seed}, ")
                  + f"{examples} examples per test", flush=True)
            seen: dict = {}
            for r in rounds:
                for rec in r["records"]:
                    if rec.get("type") == "test":
                        seen[rec["nodeid"]] = seen.get(rec["nodeid"], 0) + rec.get("examples", 0) + 1
            result = run_round(args, rnd, round_seed, examples, paths, extra, work, env, start,
                               deadline, failed_tests, seen, pool=pool)
            rounds.append(result)
            done = [r for r in result["records"] if r.get("type") == "test"]
            failed_tests += [r["nodeid"] for r in done if r.get("outcome") in ("failed", "error")]
            collected = {n for rec in result["records"] if rec.get("type") == "collected"
                         for n in rec.get("nodeids", [])}
            if (result["rc"] == 5 and failed_tests) or (
                    result["rc"] == 1 and collected and collected <= set(failed_tests)):
                result["nothing_left"] = True
                print("every selected test has failed; nothing left to fuzz", flush=True)
                break
            print(f"[{_clock(time.monotonic() - start)}] round {rnd} ended (pytest exit "
                  f"{result['rc']}{', deadline' if result['interrupted'] else ''}) after "
                  f"{result['seconds']} s: {len(done)} tests, "
                  f"{sum(r.get('examples', 0) for r in done)} examples, "
                  f"{sum(r.get('outcome') == 'failed' for r in done)} failed", flush=True)
            if result["rc"] in (3, 4, 5) or (result["rc"] == 2 and not result["interrupted"]
                                             and not done):
                print(f"pytest could not run the suite (exit {result['rc']}); see "
                      f"{result['log']}:\n" + _tail(Path(result["log"])), flush=True)
                break
            if result["interrupted"]:
                break
            if not args.fixed_examples:
                test_seconds = sum(r.get("seconds", 0.0) for r in done) / args.workers
                examples = next_examples(examples, result["seconds"],
                                          deadline - time.monotonic(), False, test_seconds,
                                          restarts=pool is None)
            rnd += 1
    except KeyboardInterrupt:
        print("fuzz: interrupted; summarizing what ran", flush=True)
        interrupted_by_user = True
    else:
        interrupted_by_user = False
    finally:
        if pool is not None:
            pool.close()
    if not interrupted_by_user:
        _replay_unreported(args, rounds, extra, work, env, start, seed)

    agg = aggregate(rounds, find_reports(Path(args.reports_dir).resolve(), run_id))
    failed = any(p["failures"] or p["errors"] for p in agg["properties"].values())
    broken = bool(agg["collect_errors"]) or any(
        not r.get("nothing_left") and (r["rc"] in (3, 4, 5) or (r["rc"] not in (0, 1)
                                                                 and not r["interrupted"]))
        for r in rounds)
    where = next((rec for r in rounds for rec in r["records"] if rec.get("type") == "collected"),
                 {})
    backend = where.get("backend") or args.backend or "auto"
    summary = {
        "run_id": run_id, "started": started.isoformat(timespec="seconds"),
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "minutes": args.minutes, "workers": args.workers, "impl": args.impl,
        "select": args.select, "paths": paths, "database": database, "seed": seed,
        "backend": backend, "device": where.get("device", "unknown (no test collected)"),
        "versions": _versions(),
        "reports_dir": str(Path(args.reports_dir).resolve() / run_id),
        "exit_code": 1 if (failed or broken) else 0,
        "rounds": rounds, **agg,
    }
    outputs = write_outputs(summary, history_dir, work)
    print()
    print(markdown(summary))
    print("summary: " + ", ".join(f"{k} {v}" for k, v in outputs.items()), flush=True)
    if fleet:
        from kernelprop.commands.fleet import push, run_record, worker_name

        record = run_record(summary, worker_name(args.worker))
        (work / "fleet-record.json").write_text(json.dumps(record, indent=1) + "\n")
        print(push(fleet, record, history_dir / "fleet-pending")[1], flush=True)
    return summary["exit_code"]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text().splitlines()[-lines:])
    except OSError:
        return ""


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
