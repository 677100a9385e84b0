"""The fleet dashboard's model and markdown: `merge` turns the fleet's run records
(kernelprop.commands.fleet) into a FleetView (per property the worst score per night over all workers,
failures per worker with their report paths, examples per second per worker and property);
`markdown` writes it as fleet.md (kernelprop.commands.fleet_html draws the same view as HTML;
kernelprop.commands.fleet_cli is the `fuzz report` command). A night is the UTC date a run started.
"""
from __future__ import annotations

from dataclasses import dataclass, field

INF_SCORE = 1e300  # properties.checks passes this to target() for an infinite ratio


@dataclass(frozen=True)
class WorkerRow:
    worker: str
    hosts: tuple[str, ...]
    devices: tuple[str, ...]
    runs: int
    last_finished: str
    examples: int
    seconds: float
    failures: int
    outages: int

    @property
    def examples_per_s(self) -> float | None:
        return self.examples / self.seconds if self.seconds > 0 else None


@dataclass(frozen=True)
class FailureRow:
    worker: str
    run_id: str
    finished: str
    test: str
    spec: tuple[str, ...]
    worst: float | None
    first_failure: dict | None
    reports: tuple[str, ...]


@dataclass(frozen=True)
class FleetView:
    """Everything the dashboard shows, from the merged records."""
    records: int
    nights: tuple[str, ...]                       # oldest first
    workers: tuple[WorkerRow, ...]
    # per test: {night: (worst error/bound over every run that night, any failure)}
    worst_by_night: dict = field(default_factory=dict)
    spec: dict = field(default_factory=dict)      # test -> catalogue ids
    failures: tuple[FailureRow, ...] = ()
    # per (worker, test): (examples, seconds)
    throughput: dict = field(default_factory=dict)


def night(record: dict) -> str:
    return str(record.get("started", "?"))[:10]


def merge(records: list[dict]) -> FleetView:
    records = sorted(records, key=lambda r: (r.get("started", ""), r.get("worker", "")))
    nights = tuple(sorted({night(r) for r in records}))
    by_worker: dict[str, list[dict]] = {}
    for r in records:
        by_worker.setdefault(r["worker"], []).append(r)
    workers = []
    for name, runs in sorted(by_worker.items()):
        props = [p for r in runs for p in r["properties"].values()]
        workers.append(WorkerRow(
            worker=name, hosts=tuple(sorted({r.get("host", "?") for r in runs})),
            devices=tuple(sorted({r.get("device", "?") for r in runs})), runs=len(runs),
            last_finished=max(r.get("finished", "") for r in runs),
            examples=sum(p["examples"] for p in props),
            seconds=sum(p.get("seconds") or 0.0 for p in props),
            failures=sum(bool(p["failures"] or p["errors"]) for p in props),
            outages=sum(len(r.get("outages") or []) for r in runs)))
    worst: dict = {}
    spec: dict = {}
    failures = []
    throughput: dict = {}
    for r in records:
        for test, p in r["properties"].items():
            spec[test] = tuple(p.get("spec") or ())
            cell = worst.setdefault(test, {}).get(night(r), (None, False))
            value = p.get("worst")
            best = cell[0] if value is None else value if cell[0] is None else max(cell[0], value)
            failed = bool(p["failures"] or p["errors"])
            worst[test][night(r)] = (best, cell[1] or failed)
            ex, sec = throughput.get((r["worker"], test), (0, 0.0))
            throughput[(r["worker"], test)] = (ex + p["examples"], sec + (p.get("seconds") or 0.0))
            if failed:
                failures.append(FailureRow(
                    worker=r["worker"], run_id=r["run_id"], finished=r.get("finished", ""),
                    test=test, spec=tuple(p.get("spec") or ()), worst=value,
                    first_failure=p.get("first_failure"), reports=tuple(p.get("reports") or ())))
    return FleetView(records=len(records), nights=nights, workers=tuple(workers),
                     worst_by_night=dict(sorted(worst.items())), spec=spec,
                     failures=tuple(failures), throughput=dict(sorted(throughput.items())))


def fmt(x: float | None) -> str:
    if x is None:
        return "-"
    return "inf" if x >= INF_SCORE else f"{x:.4g}"


def origin(first_failure: dict | None) -> str:
    """Where a worker's first failing example came from, in words."""
    if not first_failure:
        return "-"
    how = ("replayed from the database" if first_failure.get("phase") == "reuse"
           else f"found ({first_failure.get('phase', '?')} phase)")
    return (f"{how}, example {first_failure.get('example', '?')}, "
            f"{first_failure.get('call_seconds', first_failure.get('seconds', '?'))} s")


def markdown(view: FleetView, title: str) -> str:
    lines = [f"# {title}", "",
             f"{view.records} run(s) from {len(view.workers)} worker(s) over "
             f"{len(view.nights)} night(s) ({', '.join(view.nights)}).", "",
             "## Workers", "",
             "| worker | host | device | runs | last finished | examples | examples/s | "
             "failing test runs | database outages |", "|---|---|---|---:|---|---:|---:|---:|---:|"]
    for w in view.workers:
        lines.append(f"| {w.worker} | {', '.join(w.hosts)} | {', '.join(w.devices)} | {w.runs} | "
                     f"{w.last_finished} | {w.examples} | {fmt(w.examples_per_s)} | "
                     f"{w.failures} | {w.outages} |")
    lines += ["", "## Worst error/bound per property and night (all workers)", "",
              "| property | test | " + " | ".join(view.nights) + " |",
              "|---|---|" + "---:|" * len(view.nights)]
    for test, cells in view.worst_by_night.items():
        row = []
        for n in view.nights:
            value, failed = cells.get(n, (None, False))
            row.append(("**" + fmt(value) + " FAILED**") if failed else fmt(value))
        lines.append(f"| {'/'.join(view.spec.get(test, ())) or '-'} | `{test}` | "
                     + " | ".join(row) + " |")
    lines += ["", "## Failures per worker", ""]
    if not view.failures:
        lines.append("None.")
    else:
        lines += ["| worker | run | test | worst | first failure | reports |",
                  "|---|---|---|---:|---|---|"]
        for f in view.failures:
            reports = "<br>".join(f"`{p}`" for p in f.reports) or "-"
            lines.append(f"| {f.worker} | {f.run_id} | `{f.test}` | {fmt(f.worst)} | "
                         f"{origin(f.first_failure)} | {reports} |")
    lines += ["", "## Examples per second (worker x test)", "",
              "| worker | test | examples | seconds | examples/s |", "|---|---|---:|---:|---:|"]
    for (worker, test), (ex, sec) in view.throughput.items():
        lines.append(f"| {worker} | `{test}` | {ex} | {sec:.1f} | "
                     f"{fmt(ex / sec) if sec > 0 else '-'} |")
    lines += ["", "worst error/bound: the largest hypothesis `target()` score (kernelprop.core.verdict."
              "Verdict.score: the margin ratio where the bound has bf16 flips, 0 for a legitimate "
              "flip; else max |actual - expected| / bound); above 1 fails. First failure: where the worker's first failing "
              "example came from; \"replayed from the database\" means another worker found it.", ""]
    return "\n".join(lines)
