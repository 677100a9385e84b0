"""The fuzz run's HTML page: a summary table, the score distribution of every property (a
histogram of its per-example target() scores on a log10 axis, the bound at 1), and each
property's worst score over the past runs of history.jsonl. Plain inline SVG: no plotting
dependency. The score is kernelprop.core.verdict.Verdict.score: the margin ratio where the bound has
a discrete share of bf16 flips (0 for a legitimate flip), else error/bound; > 1 fails."""
from __future__ import annotations

import html
import math

W, H = 460, 170                 # plot size in px
PAD_L, PAD_R, PAD_T, PAD_B = 44, 10, 12, 30
OK, BAD, GRID = "#3b73b9", "#c8352b", "#ddd"
INF_SCORE = 1e300  # properties.checks passes this to target() for an infinite ratio


def _num(x) -> str:
    return "inf" if x >= INF_SCORE else f"{x:.4g}"


def _esc(x) -> str:
    return html.escape(str(x), quote=True)


def _x(v, lo, hi) -> float:
    return PAD_L + (v - lo) / (hi - lo) * (W - PAD_L - PAD_R)


def _y(v, lo, hi) -> float:
    return H - PAD_B - (v - lo) / (hi - lo) * (H - PAD_T - PAD_B)


def _decade(e: float) -> str:
    return "1" if e == 0 else f"1e{int(e)}"


def _px(v) -> str:  # a coordinate: floats to 0.1 px, integers as they are
    return f"{v:.1f}" if isinstance(v, float) else str(v)


def _rule(at, color: str, *, vertical: bool, dashed: bool = False) -> str:
    """A line across the plot area: vertical at x = at, or horizontal at y = at."""
    x1, y1, x2, y2 = (at, PAD_T, at, H - PAD_B) if vertical else (PAD_L, at, W - PAD_R, at)
    dash = ' stroke-dasharray="4 3"' if dashed else ""
    return (f'<line x1="{_px(x1)}" y1="{_px(y1)}" x2="{_px(x2)}" y2="{_px(y2)}" '
            f'stroke="{color}"{dash}/>')


def _text(x, y, content, *, anchor: str | None = None, fill: str | None = None) -> str:
    attrs = (f' text-anchor="{anchor}"' if anchor else "") + (f' fill="{fill}"' if fill else "")
    return f'<text x="{_px(x)}" y="{_px(y)}" font-size="10"{attrs}>{content}</text>'


def _decade_grid(lo: int, hi: int, *, vertical: bool) -> list[str]:
    """A grid line and its label at every decade of the log axis [lo, hi]: the x axis
    (vertical lines, labels below) or the y axis (horizontal lines, labels left)."""
    out = []
    for e in range(int(lo), int(hi) + 1):
        if vertical:
            x = _x(e, lo, hi)
            out.append(_rule(x, GRID, vertical=True) + _text(x, H - PAD_B + 14, _decade(e), anchor="middle"))
        else:
            y = _y(e, lo, hi)
            out.append(_rule(y, GRID, vertical=False) + _text(PAD_L - 4, y + 3, _decade(e), anchor="end"))
    return out


def _svg(body: list[str], title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
            f'viewBox="0 0 {W} {H}" role="img"><title>{_esc(title)}</title>'
            + "".join(body) + "</svg>")


def histogram(values: list[float], title: str, bins: int = 30) -> str:
    """Histogram of log10(score) for the positive scores; zeros are counted in the caption.
    A bar is red only when it holds a failing score (> 1): a passing score of exactly 1 (the
    bound reached, not exceeded) stays blue although its bin reaches past 1."""
    infinite = sum(v >= INF_SCORE for v in values)
    positive = [v for v in values if 0 < v < INF_SCORE]
    zeros = len(values) - len(positive) - infinite
    caption = (f"<p class='cap'>{len(values)} examples; {zeros} with score 0 (no error beyond "
               f"the allowed flips); {infinite} with an infinite score (not plotted); "
               f"{sum(v > 1 for v in values)} above 1 (failing); max {_num(max(values))}</p>")
    if not positive:
        return caption
    logs = [math.log10(v) for v in positive]
    lo = math.floor(min(logs))
    hi = max(math.ceil(max(logs)), 1)
    if hi - lo < 2:
        lo = hi - 2
    width = (hi - lo) / bins
    counts, failing = [0] * bins, [0] * bins
    for v, log in zip(positive, logs):
        b = min(bins - 1, int((log - lo) / width))
        counts[b] += 1
        failing[b] += v > 1
    top = max(counts)
    body = _decade_grid(lo, hi, vertical=True)
    for i, c in enumerate(counts):
        if not c:
            continue
        left, right = lo + i * width, lo + (i + 1) * width
        x0, x1 = _x(left, lo, hi), _x(right, lo, hi)
        y = _y(c, 0, top)
        color = BAD if failing[i] else OK
        body.append(f'<rect x="{x0:.1f}" y="{y:.1f}" width="{max(x1 - x0 - 1, 1):.1f}" '
                    f'height="{H - PAD_B - y:.1f}" fill="{color}"><title>{c} examples in '
                    f'[{10 ** left:.3g}, {10 ** right:.3g})</title></rect>')
    xb = _x(0, lo, hi)
    body.append(_rule(xb, BAD, vertical=True, dashed=True) + _text(xb + 3, PAD_T + 10, "bound", fill=BAD))
    body.append(_text(PAD_L - 4, PAD_T + 8, top, anchor="end") + _text(PAD_L - 4, H - PAD_B, 0, anchor="end")
                + _text(f"{(PAD_L + W - PAD_R) / 2:.0f}", H - 3, "score (log scale)",
                        anchor="middle"))
    return _svg(body, title) + caption


def trend(points: list[tuple[str, float | None, bool]], title: str) -> str:
    """Worst score per run: (run label, worst or None, failed) oldest first, log10 y axis."""
    known = [(i, math.log10(min(v, INF_SCORE)), failed) for i, (_, v, failed) in enumerate(points)
             if v is not None and v > 0]
    if not known:
        return "<p>no nonzero worst error recorded in past runs yet.</p>"
    finite = [y for _, y, _ in known if y < 300]
    cap = max(finite + [0]) + 1  # an infinite worst is drawn one decade above the rest
    known = [(i, min(y, cap), f) for i, y, f in known]
    ys = [y for _, y, _ in known]
    lo, hi = math.floor(min(ys + [0])), math.ceil(max(ys + [0])) + (1 if max(ys) >= 0 else 0)
    if hi - lo < 2:
        lo = hi - 2
    n = max(len(points) - 1, 1)
    body = _decade_grid(lo, hi, vertical=False)
    body.append(_rule(_y(0, lo, hi), BAD, vertical=False, dashed=True))
    coords = [(_x(i, 0, n) if len(points) > 1 else (PAD_L + W - PAD_R) / 2, _y(y, lo, hi), f)
              for i, y, f in known]
    if len(coords) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in coords)
        body.append(f'<polyline points="{path}" fill="none" stroke="{OK}"/>')
    for (x, y, failed), (i, _, _) in zip(coords, known):
        label, value, _ = points[i]
        body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{BAD if failed else OK}">'
                    f'<title>{_esc(label)}: {_num(value)}</title></circle>')
        if value is not None and value >= INF_SCORE:  # drawn a decade above the rest: say so
            body.append(_text(x + 5, y - 4, "inf", fill=BAD))
    first, last = points[0][0], points[-1][0]
    body.append(_text(PAD_L, H - 8, _esc(first[:16]))
                + _text(W - PAD_R, H - 8, _esc(last[:16]), anchor="end"))
    return _svg(body, title)


def _history_points(history: list[dict], test: str) -> list[tuple[str, float | None, bool]]:
    """One point per past run that ran `test` (a test id without parameters)."""
    points = []
    for run in history:
        p = (run.get("groups") or run.get("properties") or {}).get(test)
        if p is None:
            continue
        worst = p.get("worst")
        try:
            worst = None if worst is None else float(worst)
        except (TypeError, ValueError):
            worst = None
        points.append((run.get("started", run.get("run_id", "?")), worst,
                       bool(p.get("failures") or p.get("errors"))))
    return points


def render(summary: dict, history: list[dict]) -> str:
    status = "FAILED" if summary["exit_code"] else "passed"
    rows = []
    groups = summary["groups"]
    for nodeid, p in groups.items():
        worst = "-" if p["worst"] is None else _num(p["worst"])
        cls = " class='bad'" if (p["failures"] or p["errors"]) else ""
        cases = f" ({p['cases']} cases)" if p["cases"] > 1 else ""
        reports = "<br>".join(f"<code>{_esc(r)}</code>" for r in p["reports"]) or "-"
        rows.append(f"<tr{cls}><td>{_esc('/'.join(p['spec']) or '-')}</td><td><code>{_esc(nodeid)}"
                    f"</code>{cases}</td><td>{p['examples']}</td><td>{p['failures'] + p['errors']}"
                    f"</td><td>{p['failing_examples']}</td><td>{worst}</td><td>{reports}</td></tr>")
    not_reached = summary.get("not_reached") or []
    missing = (f"<p>Not reached before the deadline ({len(not_reached)}): "
               + ", ".join(f"<code>{_esc(n)}</code>" for n in not_reached) + "</p>"
               if not_reached else "")
    sections = []
    for nodeid, p in groups.items():
        if not p["scores"]:
            continue  # no target() scores: nothing to plot (bad-input checks, skipped tests)
        title = f"{'/'.join(p['spec']) or '-'} {nodeid}"
        plots = [histogram(values, f"{label}: score distribution") if values else
                 "<p>no scores</p>" for label, values in sorted(p["scores"].items())]
        labels = ", ".join(_esc(label) for label in sorted(p["scores"])) or "no target() scores"
        sections.append(
            f"<section><h3>{_esc(title)}</h3><p class='cap'>{labels}</p><div class='row'>"
            f"<div><h4>score distribution, this run</h4>{''.join(plots) or '<p>no scores</p>'}</div>"
            f"<div><h4>worst score over past runs</h4>"
            f"{trend(_history_points(history, nodeid), title + ': worst over runs')}</div>"
            f"</div></section>")
    v = summary.get("versions", {})
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>kernelprop fuzz {_esc(summary['run_id'])}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 3px 7px; }}
tr.bad td {{ background: #fbe3e1; }} .row {{ display: flex; gap: 2em; flex-wrap: wrap; }}
td code {{ word-break: break-all; }}
.cap {{ color: #555; font-size: 90%; margin: 2px 0; }} h4 {{ margin: 6px 0; }}
</style></head><body>
<h1>kernelprop fuzz {_esc(summary['run_id'])}: {status}</h1>
<p>{_esc(summary['started'])} to {_esc(summary['finished'])}; budget {summary['minutes']} min,
{len(summary['rounds'])} rounds, {summary['workers']} worker(s); backend {_esc(summary['backend'])}
({_esc(summary['device'])}); impl {_esc(', '.join(summary['impl']) or 'bundled')};
database <code>{_esc(summary['database'])}</code>;
{_esc(', '.join(f'{k} {val}' for k, val in v.items()))}</p>
<table><tr><th>property</th><th>test</th><th>examples</th><th>failing runs</th>
<th>failing examples</th><th>worst score</th><th>reports</th></tr>
{''.join(rows)}</table>
{missing}
<p class="cap">score is each example's hypothesis target() score, named by its label: "margin" (the
margin ratio: how far the worst element lies outside expected +- the bf16 flips a correct
implementation may make, in units of the bound's remaining part; 0 for a legitimate flip), where
the bound has such flips, else "error/bound" (max |actual - expected| / bound); bitwise checks:
the count of differing elements. Above 1 (red) fails.</p>
{''.join(sections)}
</body></html>
"""
