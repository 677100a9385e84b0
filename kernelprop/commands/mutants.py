"""python -m kernelprop mutants: the suite's power, measured on the planted-bug catalogue.

    python -m kernelprop mutants [--profile ci] [--only NAME ...] [--workers W]
                                 [--timeout-per-mutant S] [--json PATH] [--markdown PATH]
                                 [--no-controls] [--keep DIR] [--from-json PATH] [--zoo]
                                 [--sizes small|reference|large]

Runs properties/ (hypothesis profile `--profile`, default ci) once per catalogue entry of
impls/mutants/ through `--impl KIND=TARGET`, as one pytest subprocess per entry, W at a time, with
no -x so every property of the entry's kind gets its chance. Prints the kill matrix: one row per
mutant, one column per SPEC property P1..P13, a cell being
    K killed (a test of that property failed)   . survived (its tests passed)
    x failed on a control where the catalogue says why (Control.exempt): not a false alarm
    s skipped (all its tests skipped)           E error (a test errored in setup)
    - no test of that property exercises this kind's implementation
and, per mutant, the search time and example count hypothesis needed for the first falsifying
example (shrinking excluded) and the size of the shrunk counterexample. Controls (correct
implementations, each catalogue's CONTROLS) run the same way and must pass everything.
Exit status 1 if a mutant that some property should catch survives, or a control fails.

--zoo runs the bug zoo instead (impls/zoo: public bugs reproduced on our code, their correct bases
as controls) and adds, per entry, the (property, shape class) pairs whose tests failed on it.

The same module is the pytest plugin of the subprocesses (`-p kernelprop.commands.mutants`): it keeps the
tests whose fixtures include the entry's implementation (attn_impl / norm_impl), optionally only
those of some properties, and writes one JSON line per test (outcome, duration, message, hypothesis
search statistics, shrunk case) to $KERNELPROP_MUTANT_RESULTS.
"""
from __future__ import annotations

import argparse
import ast
import concurrent.futures
import fnmatch
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Optional

import pytest

from kernelprop.core import knobs
from kernelprop.core.sizes import SIZES
from kernelprop.core.registry import BY_KIND, OPS, PROPERTY_IDS as REGISTRY_PROPERTY_IDS, Op

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROPERTY_IDS = REGISTRY_PROPERTY_IDS   # every registered op's spec ids (kill-matrix columns)
CI_TIMEOUT_S = 1800.0                  # per entry, unless the profile is nightly


# %% running one catalogue entry

@dataclass
class TestResult:
    nodeid: str
    specs: list                     # P ids of the test's spec marker
    outcome: str                    # passed / failed / skipped / error
    duration_s: float               # the test's call (or failing setup) time
    at_s: float                     # seconds since the subprocess's session started, at its end
    message: str = ""               # first line of the failure, or the skip reason
    examples_to_fail: Optional[int] = None   # generated examples up to the first failing one
    search_s: Optional[float] = None         # their run time (shrinking excluded)
    case: Optional[dict] = None     # the shrunk counterexample's case (AttnCase / NormCase fields)
    case_source: str = ""           # report.json / falsifying-example text / evidence
    examples: Optional[int] = None  # examples the test's hypothesis run ran (its search phases,
    #                                 not shrinking); None for a test that is not one (table-driven P13)


@dataclass
class RunResult:
    name: str
    role: str                       # mutant / control
    kind: str
    target: str
    description: str
    expected_killers: tuple = ()
    equivalent: str = ""
    exempt: dict = field(default_factory=dict)   # controls: P id -> why it may fail there
    tests: list = field(default_factory=list)
    wall_s: float = 0.0
    returncode: Optional[int] = None
    timed_out: bool = False
    output_tail: str = ""

    @property
    def killers(self) -> list:
        return [p for p in PROPERTY_IDS if self.cell(p) == "K"]

    def cell(self, pid: str) -> str:
        outcomes = {t.outcome for t in self.tests if pid in t.specs}
        if "failed" in outcomes:
            return "x" if pid in self.exempt else "K"
        if "error" in outcomes:
            return "E"
        if "passed" in outcomes:
            return "."
        return "s" if outcomes else "-"

    @property
    def failures(self) -> list:
        """Failed or errored tests, except those of exempt properties only."""
        return [t for t in self.tests if t.outcome in ("failed", "error")
                and not (t.specs and set(t.specs) <= set(self.exempt))]

    @property
    def verdict(self) -> str:
        if self.role == "control":
            if self.failures:
                return "FALSE ALARM"
            if self.timed_out or self.returncode not in (0, 1) or not self.tests:
                return "no result"  # 1 without failures: only exempt properties failed
            return "passed"
        if any(t.outcome == "failed" for t in self.tests):
            return "killed"
        if self.timed_out:
            return "timeout"
        if self.returncode not in (0, 1) or not self.tests:
            return "no result"
        return "survived"

    def examples_per_test(self) -> dict:
        """{test function: examples its passing hypothesis parametrizations ran together}: what
        a profile's max_examples buys per property (split over its shape classes)."""
        per: dict = {}
        for t in self.tests:
            if t.outcome == "passed" and t.examples is not None:
                function = t.nodeid.partition("[")[0]
                per[function] = per.get(function, 0) + t.examples
        return per

    def fewest_examples(self) -> Optional[tuple[str, int]]:
        """(test function, examples) of the property test that ran the fewest: a control's
        nightly is only as deep as its shallowest test."""
        return min(self.examples_per_test().items(), key=lambda kv: kv[1], default=None)

    def first_kill(self) -> Optional[TestResult]:
        """The killing test whose first falsifying example took the least search time."""
        kills = [t for t in self.tests if t.outcome == "failed"]
        if not kills:
            return None
        return min(kills, key=lambda t: (t.search_s if t.search_s is not None else t.duration_s))


def suite_command(kind: str, target: str, *, profile: str, reports_dir: pathlib.Path,
                  paths=("properties",), extra_args=()) -> list:
    return [sys.executable, "-m", "pytest", *paths, "-p", "no:cacheprovider",
            "-p", "kernelprop.commands.mutants", f"--hypothesis-profile={profile}",
            f"--impl={kind}={target}", f"--reports-dir={reports_dir}", "-q", "--no-header",
            "-p", "no:randomly", *extra_args]


def run_entry(entry, *, role: str, profile: str = "ci", workdir: pathlib.Path,
              paths=("properties",), specs=None, extra_args=(), timeout: Optional[float] = None,
              threads: Optional[int] = None, shrink: bool = True) -> RunResult:
    """Run the suite against one catalogue entry (a Mutant or Control) in a pytest subprocess."""
    out = pathlib.Path(workdir) / entry.name
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    results.unlink(missing_ok=True)
    target = entry.target
    where, _, attr = target.rpartition(":")
    if where.endswith(".py"):
        target = f"{ROOT / where}:{attr}"
    # without shrinking: the profile's "-noshrink" twin (kernelprop.commands.profiles), the same examples
    env = dict(os.environ, **knobs.env(profile=profile if shrink else f"{profile}-noshrink",
                                       mutant_kind=entry.kind, mutant_results=results))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop(knobs.mutant_specs.variable, None)
    if specs:
        env.update(knobs.env(mutant_specs=",".join(specs)))
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
    cmd = suite_command(entry.kind, target, profile=profile, reports_dir=out / "reports",
                        paths=paths, extra_args=extra_args)
    run = RunResult(name=entry.name, role=role, kind=entry.kind, target=entry.target,
                    description=entry.description,
                    expected_killers=tuple(getattr(entry, "expected_killers", ())),
                    equivalent=getattr(entry, "equivalent", ""),
                    exempt=dict(getattr(entry, "exempt", ())))
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)
        run.returncode, text = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as err:
        run.timed_out = True
        text = _text(err.stdout) + _text(err.stderr)
    run.wall_s = time.monotonic() - start
    run.output_tail = text[-4000:]
    if results.exists():
        for line in results.read_text().splitlines():
            if line.strip():
                run.tests.append(TestResult(**json.loads(line)))
    return run


def _text(data) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


# %% the kill matrix

def case_size(case: Optional[dict], kind: str) -> tuple[Optional[int], str]:
    """(a scalar size, a compact shape) of a shrunk case of op `kind`: what its Case type's
    `size()` says (golden/values.py); (None, "") without a case or for one that is not its op's."""
    if not case:
        return None, ""
    try:
        return BY_KIND[kind].case_type.from_dict(case).size()
    except (TypeError, ValueError):
        return None, ""


def shape_class_of(nodeid: str) -> str:
    """The shape class of a test's parametrization ("plain", a kernelprop.core.coverage class), or ""
    for tests not parametrized over classes."""
    from kernelprop.core.coverage import all_classes

    params = nodeid.rpartition("[")[2].rstrip("]").split("-") if nodeid.endswith("]") else []
    known = ("plain", *all_classes())
    return next((p for p in params if p in known), "")


def killed_by(run: RunResult) -> list:
    """[(P id, shape class), ...] of the failing tests of a run, in property order."""
    pairs = {(p, shape_class_of(t.nodeid)) for t in run.tests if t.outcome == "failed"
             for p in t.specs}
    order = {p: i for i, p in enumerate(PROPERTY_IDS)}
    return sorted(pairs, key=lambda pc: (order.get(pc[0], len(order)), pc[1]))


def killed_by_text(run: RunResult) -> str:
    """'P1 (plain, multi_tile); P7 (plain)': each killing property with its shape classes."""
    by_pid: dict = {}
    for pid, shape_class in killed_by(run):
        by_pid.setdefault(pid, []).append(shape_class or "-")
    return "; ".join(f"{pid} ({', '.join(classes)})" for pid, classes in by_pid.items())


def _fmt_s(value: Optional[float]) -> str:
    return "" if value is None else f"{value:.1f}s"


def _kill_columns(run: RunResult) -> tuple[str, str, str]:
    """(first kill 'search time (P ids)', examples to it, shrunk case shape) of a mutant; for a
    control, the fewest examples one of its property tests ran (summed over its shape classes)."""
    if run.role == "control":
        fewest = run.fewest_examples()
        return "", "" if fewest is None else str(fewest[1]), ""
    first = run.first_kill()
    if first is None:
        return "", "", ""
    seconds = first.search_s if first.search_s is not None else first.duration_s
    examples = "" if first.examples_to_fail is None else str(first.examples_to_fail)
    return f"{_fmt_s(seconds)} ({','.join(first.specs)})", examples, case_size(first.case, run.kind)[1]


def matrix_lines(runs: list) -> list:
    name_w = max([len(r.name) for r in runs] + [8])
    head = f"{'mutant':<{name_w}} {'kind':<5} " + " ".join(f"{p:>3}" for p in PROPERTY_IDS)
    head += "  verdict     first kill      examples  shrunk case          missed expected"
    lines = [head, "-" * len(head)]
    for r in runs:
        cells = " ".join(f"{r.cell(p):>3}" for p in PROPERTY_IDS)
        kill, examples, shape = _kill_columns(r)
        missed = ",".join(p for p in r.expected_killers if r.cell(p) != "K")
        verdict = r.verdict + ("*" if r.verdict == "survived" and r.equivalent else "")
        kind = BY_KIND[r.kind].label
        lines.append(f"{r.name:<{name_w}} {kind:<5} {cells}  {verdict:<11} {kill:<15} "
                     f"{examples:>8}  {shape:<20} {missed}")
        if r.role == "mutant" and killed_by(r):
            lines.append(f"{'':<{name_w}}   killed by {killed_by_text(r)}")
    return lines


def markdown_table(runs: list) -> str:
    """The kill matrix as a markdown table (docs/mutants.md)."""
    head = ["entry", "kind", *PROPERTY_IDS, "verdict", "first kill", "examples", "shrunk case"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in runs:
        row = [f"`{r.name}`", BY_KIND[r.kind].label,
               *(r.cell(p) for p in PROPERTY_IDS), r.verdict, *_kill_columns(r)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def zoo_markdown(runs: list, entries: list) -> str:
    """The zoo table (docs/zoo.md, docs/mutants.md "Zoo"): one row per surveyed bug entry, in
    scope or not: its thread, mechanism, verdict and the (property, shape class) that killed it,
    or why it is out of scope / survives."""
    by_name = {r.name: r for r in runs}
    head = ["bug", "entry", "thread", "mechanism", "in scope", "verdict",
            "killed by (property, shape class) / reason"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in entries:
        run = by_name.get(e.name)
        threads = " ".join(f"[{i + 1}]({url})" for i, url in enumerate(e.threads))
        if not e.in_scope:
            verdict, why = "out of scope", e.out_of_scope
        elif run is None:
            verdict, why = "not run", ""
        else:
            verdict = run.verdict
            why = killed_by_text(run) if verdict == "killed" else (e.survives or "")
        lines.append("| " + " | ".join([str(e.bug or "see also"), f"`{e.name}`", threads,
                                        e.mechanism.replace("|", "/"),
                                        "yes" if e.in_scope else "no", verdict,
                                        why.replace("|", "/")]) + " |")
    return "\n".join(lines)


def summarize(mutant_runs: list, control_runs: list) -> dict:
    killed = [r for r in mutant_runs if r.verdict == "killed"]
    survived = [r for r in mutant_runs if r.verdict != "killed"]
    expected = [r for r in survived if r.equivalent and r.verdict == "survived"]
    alarms = [r for r in control_runs if r.verdict != "passed"]
    firsts = [r.first_kill() for r in killed]
    search = [t.search_s if t.search_s is not None else t.duration_s for t in firsts]
    sizes = [s for s in (case_size(t.case, r.kind)[0] for r, t in zip(killed, firsts)) if s is not None]
    fewest = [f[1] for f in (r.fewest_examples() for r in control_runs) if f is not None]
    return dict(mutants=len(mutant_runs), killed=len(killed), survived=len(survived),
                survivors=[r.name for r in survived], expected_survivors=[r.name for r in expected],
                controls=len(control_runs), false_alarms=len(alarms),
                false_alarm_entries=[r.name for r in alarms],
                control_examples=dict(fewest=min(fewest, default=None),
                                      total=sum(t.examples or 0 for r in control_runs for t in r.tests)),
                first_kill_s=[min(search), max(search)] if search else None,
                shrunk_size=[min(sizes), max(sizes)] if sizes else None)


def summary_line(s: dict) -> str:
    extra = f" ({len(s['expected_survivors'])} expected: {', '.join(s['expected_survivors'])})" \
        if s["expected_survivors"] else ""
    controls = f"{s['false_alarms']} false alarms" if s["controls"] else "not run"
    examples = s.get("control_examples") or {}
    if s["controls"] and examples.get("fewest") is not None:
        controls += f" in {examples['total']} examples, at least {examples['fewest']} per property test"
    return (f"{s['mutants']} mutants, {s['killed']} killed, {s['survived']} survived{extra}; "
            f"controls: {controls}")


def select(entries: list, patterns: Optional[list]) -> list:
    if not patterns:
        return list(entries)
    return [e for e in entries if any(fnmatch.fnmatchcase(e.name, p) for p in patterns)]


def run_catalogue(jobs: list, *, profile: str, workers: int, timeout: float,
                  workdir: pathlib.Path, shrink: bool = True) -> dict:
    """Run (entry, role) jobs, `workers` subprocesses at a time; {name: RunResult}."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run_entry, entry, role=role, profile=profile, workdir=workdir,
                               timeout=timeout, threads=threads, shrink=shrink)
                   for entry, role in jobs]
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            run = future.result()
            results[run.name] = run
            print(f"[{done}/{len(jobs)}] {run.role} {run.name}: {run.verdict} (failing "
                  f"properties: {','.join(run.killers) or '-'}) in {run.wall_s:.0f}s",
                  file=sys.stderr, flush=True)
            if run.verdict in ("no result", "FALSE ALARM", "timeout"):
                print(_indent(run.output_tail[-1500:]), file=sys.stderr, flush=True)
    return results


def load_runs(path: str) -> tuple[list, dict]:
    """The runs and header of a --json file (to re-render a measured matrix)."""
    payload = json.loads(pathlib.Path(path).read_text())
    runs = []
    for raw in payload["runs"]:
        fields = {k: v for k, v in raw.items() if k in RunResult.__dataclass_fields__}
        fields["tests"] = [TestResult(**t) for t in fields.get("tests", [])]
        fields["expected_killers"] = tuple(fields.get("expected_killers", ()))
        runs.append(RunResult(**fields))
    return runs, payload


def catalogue() -> tuple:
    """(mutants, controls): every registered op's own catalogue (Op.catalogue), in registry order."""
    import importlib

    mutants, controls = [], []
    for o in OPS:
        if o.catalogue:
            module = importlib.import_module(o.catalogue)
            mutants += module.MUTANTS
            controls += module.CONTROLS
    return mutants, controls


def zoo_catalogue() -> tuple:
    """(in-scope zoo entries, zoo controls, every zoo entry) of impls/zoo."""
    from kernelprop.impls import zoo

    return zoo.in_scope(), zoo.controls(), zoo.zoo()


def main(argv: list) -> int:
    parser = argparse.ArgumentParser(prog="python -m kernelprop mutants",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="ci", help="hypothesis profile (default ci)")
    parser.add_argument("--only", nargs="+", action="extend", metavar="NAME",
                        help="mutants / controls to run (names or globs); controls run only if named")
    parser.add_argument("--workers", type=int, default=2, help="pytest subprocesses at a time")
    parser.add_argument("--timeout-per-mutant", type=float, default=None, metavar="S",
                        help=f"seconds before a subprocess is killed (default {CI_TIMEOUT_S:.0f}, "
                             "none under the nightly profile: the bundled attention's 1500-example "
                             "nightly alone runs over an hour on a CPU)")
    parser.add_argument("--sizes", choices=list(SIZES),
                        help="example sizes of every subprocess (KERNELPROP_SIZES; default: the "
                             "profile's, which is reference for nightly)")
    parser.add_argument("--json", metavar="PATH", help="write the full results as JSON")
    parser.add_argument("--markdown", metavar="PATH", help="write the kill matrix as markdown")
    parser.add_argument("--no-controls", action="store_true", help="skip the controls")
    parser.add_argument("--keep", metavar="DIR",
                        help="keep per-entry reports and results in DIR (default: a temp dir)")
    parser.add_argument("--from-json", metavar="PATH",
                        help="re-render a saved --json run instead of running the suite")
    parser.add_argument("--zoo", action="store_true",
                        help="run the bug zoo (impls/zoo) instead of the mutant catalogue")
    parser.add_argument("--no-shrink", action="store_true",
                        help="the profile without its shrink phase: the same examples and kills, "
                             "the first failing example reported as drawn (default with --zoo)")
    args = parser.parse_args(argv)
    MUTANTS, CONTROLS = zoo_catalogue()[:2] if args.zoo else catalogue()
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    if args.sizes:
        os.environ.update(knobs.env(sizes=args.sizes))
    timeout = args.timeout_per_mutant
    if timeout is None and not args.profile.startswith("nightly"):
        timeout = CI_TIMEOUT_S
    if args.from_json:
        runs, payload = load_runs(args.from_json)
        mutant_runs = [r for r in runs if r.role == "mutant"]
        control_runs = [r for r in runs if r.role == "control"]
        profile, workers = payload.get("profile"), payload.get("workers")
        wall = payload.get("summary", {}).get("wall_s", 0.0)
    else:
        mutants = select(MUTANTS, args.only)
        controls = [] if args.no_controls else select(CONTROLS, args.only)
        if not mutants and not controls:
            parser.error(f"--only {args.only} matches no mutant or control")
        profile, workers = args.profile, args.workers
        jobs = [(c, "control") for c in controls] + [(m, "mutant") for m in mutants]
        start = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="kernelprop-mutants-") as tmp:
            results = run_catalogue(jobs, profile=profile, workers=workers,
                                    timeout=timeout,
                                    workdir=pathlib.Path(args.keep or tmp),
                                    shrink=not (args.no_shrink or args.zoo))
        wall = time.monotonic() - start
        mutant_runs = [results[m.name] for m in mutants]
        control_runs = [results[c.name] for c in controls]
    print("\n".join(matrix_lines(mutant_runs)))
    if control_runs:
        print()
        print("\n".join(matrix_lines(control_runs)).replace("mutant", "control", 1))
    for r in control_runs:
        for t in r.failures:
            print(f"FALSE ALARM {r.name}: {t.nodeid} [{','.join(t.specs)}] {t.message}")
        for pid, why in r.exempt.items():
            if r.cell(pid) == "x":
                print(f"exempt {r.name} {pid}: {why}")
    stats = summarize(mutant_runs, control_runs)
    stats["wall_s"] = wall
    print(f"\nprofile {profile}, {workers} workers, {wall:.0f}s wall; first kill "
          f"{stats['first_kill_s']} s of search; shrunk sizes {stats['shrunk_size']} "
          f"(each op's Case.size()); * = equivalent mutant, survival expected")
    print(summary_line(stats))
    if args.json:
        payload = dict(profile=profile, workers=workers, summary=stats,
                       runs=[dict(asdict(r), verdict=r.verdict, killers=r.killers,
                                  killed_by=killed_by(r),
                                  cells={p: r.cell(p) for p in PROPERTY_IDS})
                             for r in mutant_runs + control_runs])
        pathlib.Path(args.json).write_text(json.dumps(payload, indent=1, default=str))
    if args.markdown:
        zoo_table = f"{zoo_markdown(mutant_runs, zoo_catalogue()[2])}\n\n" if args.zoo else ""
        pathlib.Path(args.markdown).write_text(
            f"{zoo_table}{markdown_table(mutant_runs)}\n\n{markdown_table(control_runs)}\n\n"
            f"{summary_line(stats)}\n")
    unexpected = [name for name in stats["survivors"] if name not in stats["expected_survivors"]]
    return 1 if unexpected or stats["false_alarms"] else 0


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


# %% pytest plugin (loaded in the subprocesses with -p kernelprop.commands.mutants)

_SESSION_START = time.monotonic()
_DRAW = re.compile(r"Draw \d+ \((?:case|\w*case\w*)\): (\w+Case)\((.*)\)\s*$", re.M)


def _spec_ids(item) -> list:
    ids = []
    for mark in item.iter_markers("spec"):
        for arg in mark.args:
            ids += [p for p in re.split(r"[,\s]+", str(arg)) if p]
    return ids


def item_kinds(item) -> set:
    """The op kinds a test exercises: through an op's fixture, or an `Op` among its parameters
    (tests parametrized over kernelprop.core.registry.OPS, alone or as the first of a tuple)."""
    kinds = {o.kind for o in OPS if o.fixture in getattr(item, "fixturenames", ())}
    for value in getattr(getattr(item, "callspec", None), "params", {}).values():
        for v in (value if isinstance(value, tuple) else (value,)):
            if isinstance(v, Op):
                kinds.add(v.kind)
    return kinds


def pytest_collection_modifyitems(session, config, items):
    kind = knobs.mutant_kind.get()
    if not kind:
        return
    specs = {p for p in (knobs.mutant_specs.get() or "").split(",") if p}
    keep, drop = [], []
    for item in items:
        wanted = kind in item_kinds(item)
        if specs and not specs & set(_spec_ids(item)):
            wanted = False
        (keep if wanted else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_call(item):
    """Innermost wrapper: receive hypothesis' run statistics (then pass them on)."""
    try:
        from hypothesis.statistics import collector
    except ImportError:  # pragma: no cover
        yield
        return
    previous = collector.value

    def note(stats):
        item._kernelprop_stats = stats
        if previous is not None:
            previous(stats)

    with collector.with_value(note):
        yield


# hypothesis' statistics phases that run new or saved examples (targeting is inside generate);
# what follows them, shrink and explain, only replays variants of a failure
SEARCH_PHASES = ("reuse-phase", "generate-phase")


def _search(stats: Optional[dict]) -> tuple[Optional[int], Optional[float]]:
    """(examples, seconds) hypothesis ran up to and including its first failing example."""
    if not stats:
        return None, None
    count, seconds = 0, 0.0
    for phase in SEARCH_PHASES:
        for case in stats.get(phase, {}).get("test-cases", []):
            count += 1
            seconds += case.get("runtime", 0.0)
            if case.get("status") == "interesting":
                return count, seconds
    return None, None


def examples_ran(stats: Optional[dict]) -> Optional[int]:
    """Examples hypothesis ran to completion (passing or failing) in its search phases."""
    if not stats:
        return None
    return sum(1 for phase in SEARCH_PHASES for case in stats.get(phase, {}).get("test-cases", [])
               if case.get("status") in ("valid", "interesting"))


def _parse_case(text: str) -> Optional[dict]:
    """The fields of the last 'Draw n (case): XCase(a=1, b='x', ...)' line of hypothesis' report."""
    found = _DRAW.findall(text or "")
    if not found:
        return None
    try:
        call = ast.parse(f"f({found[-1][1]})", mode="eval").body
        return {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    except (SyntaxError, ValueError):
        return None


def _shrunk_case(item, report) -> tuple[Optional[dict], str]:
    for name, value in getattr(report, "user_properties", []):
        if name == "kernelprop_report":
            path = pathlib.Path(value)
            path = path if path.suffix == ".json" else path / "report.json"
            try:
                case = json.loads(path.read_text()).get("case")
            except (OSError, ValueError):
                case = None
            if isinstance(case, dict):
                return case, "report.json"
    case = _parse_case(report.longreprtext)
    if case:
        return case, "falsifying example"
    try:
        from kernelprop.core.evidence import latest
        evidence = latest()
        if evidence is not None and evidence.case is not None:
            return asdict(evidence.case), "evidence"
    except Exception:  # noqa: BLE001 (best effort only)
        pass
    return None, ""


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Outermost wrapper: sees the report after conftest attached the counterexample report."""
    outcome = yield
    path = knobs.mutant_results.get()
    if not path:
        return
    report = outcome.get_result()
    if report.when == "setup" and report.passed or report.when == "teardown" and not report.failed:
        return
    if report.when == "call" or report.skipped:
        status = report.outcome
    else:
        status = "error"
    result = TestResult(nodeid=item.nodeid, specs=_spec_ids(item), outcome=status,
                        duration_s=round(report.duration, 3),
                        at_s=round(time.monotonic() - _SESSION_START, 3))
    if report.when == "call" and getattr(item.obj, "is_hypothesis_test", False):
        result.examples = examples_ran(getattr(item, "_kernelprop_stats", None))
    if report.skipped and isinstance(report.longrepr, tuple):
        result.message = str(report.longrepr[2])[:300]
    elif report.failed and call.excinfo is not None:
        result.message = call.excinfo.exconly().strip().splitlines()[0][:300]
        result.examples_to_fail, search = _search(getattr(item, "_kernelprop_stats", None))
        result.search_s = None if search is None else round(search, 3)
        result.case, result.case_source = _shrunk_case(item, report)
    with open(path, "a") as out:
        out.write(json.dumps(asdict(result)) + "\n")
