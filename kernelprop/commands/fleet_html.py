"""The fleet dashboard page: workers, failures per worker, examples per second, and per property
its worst error/bound per night (all workers merged) as a trend plot. Plain HTML with inline SVG
(the plots of kernelprop.commands.fuzz_html), no script: nothing to fail in a browser console."""
from __future__ import annotations

import html

from kernelprop.commands.fleet_report import FleetView, fmt, origin
from kernelprop.commands.fuzz_html import trend


def _esc(x) -> str:
    return html.escape(str(x), quote=True)


def _report_link(path: str) -> str:
    """A report directory by its last two parts (run and test); the full path on hover."""
    short = "/".join(path.rstrip("/").split("/")[-2:])
    return f'<code title="{_esc(path)}">{_esc(short)}</code>'


def _table(header: list[str], rows: list[tuple[list[str], bool]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join(f"<tr{' class=bad' if bad else ''}>" + "".join(f"<td>{c}</td>" for c in cells)
                   + "</tr>" for cells, bad in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render(view: FleetView, title: str) -> str:
    workers = _table(
        ["worker", "host", "device", "runs", "last finished", "examples", "examples/s",
         "failing test runs", "database outages"],
        [([f"<b>{_esc(w.worker)}</b>", _esc(", ".join(w.hosts)), _esc(", ".join(w.devices)),
           str(w.runs), _esc(w.last_finished), str(w.examples), fmt(w.examples_per_s),
           str(w.failures), str(w.outages)], bool(w.failures)) for w in view.workers])
    failures = "<p>None.</p>" if not view.failures else _table(
        ["worker", "run", "test", "worst error/bound", "first failure", "reports"],
        [([_esc(f.worker), _esc(f.run_id), f"<code>{_esc(f.test)}</code>", fmt(f.worst),
           _esc(origin(f.first_failure)),
           "<br>".join(_report_link(p) for p in f.reports) or "-"], True)
         for f in view.failures])
    rates = _table(
        ["worker", "test", "examples", "seconds", "examples/s"],
        [([_esc(w), f"<code>{_esc(t)}</code>", str(ex), f"{sec:.1f}",
           fmt(ex / sec) if sec > 0 else "-"], False)
         for (w, t), (ex, sec) in view.throughput.items()])
    nights = "".join(f"<th>{_esc(n)}</th>" for n in view.nights)
    night_rows = []
    plots = []
    for test, cells in view.worst_by_night.items():
        spec = "/".join(view.spec.get(test, ())) or "-"
        tds = []
        for n in view.nights:
            value, failed = cells.get(n, (None, False))
            tds.append(f"<td{' class=bad' if failed else ''}>{fmt(value)}</td>")
        night_rows.append(f"<tr><td>{_esc(spec)}</td><td><code>{_esc(test)}</code></td>"
                          + "".join(tds) + "</tr>")
        points = [(n, cells[n][0], cells[n][1]) for n in view.nights if n in cells]
        plots.append(f"<div><h4>{_esc(spec)} <code>{_esc(test)}</code></h4>"
                     f"{trend(points, f'{spec} {test}: worst error/bound per night')}</div>")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{_esc(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1em; }}
td, th {{ border: 1px solid #ccc; padding: 3px 7px; }}
tr.bad td, td.bad {{ background: #fbe3e1; }} td code {{ word-break: break-all; }} .row {{ display: flex; gap: 2em; flex-wrap: wrap; }}
.cap {{ color: #555; font-size: 90%; }} h4 {{ margin: 6px 0; }}
</style></head><body>
<h1>{_esc(title)}</h1>
<p class="cap">{view.records} run(s) from {len(view.workers)} worker(s) over {len(view.nights)}
night(s). Error/bound is each property's hypothesis target() score; above 1 fails (red).</p>
<h2>Workers</h2>
{workers}
<h2>Failures per worker</h2>
{failures}
<h2>Worst error/bound per property and night (all workers)</h2>
<table><tr><th>property</th><th>test</th>{nights}</tr>{''.join(night_rows)}</table>
<div class="row">{''.join(plots)}</div>
<h2>Examples per second</h2>
{rates}
</body></html>
"""
