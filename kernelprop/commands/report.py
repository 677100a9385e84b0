"""Counterexample reports: reports/<run-id>/<test-id>/{report.md, report.json, inputs.pt}.

conftest's makereport hook calls `write_failure_report(item, call, report)` when a test's call
phase fails. The latest `kernelprop.core.evidence.record()` then holds the shrunk example (hypothesis
replays the minimal failing example last); this module saves it:

  report.md    what a kernel engineer reads first: the violated bound, the worst element, the
               shrunk input, the implementation and recipe, versions, and the replay command
  report.json  the same for machines (schema "kernelprop-report/1"; non-finite floats as strings)
  inputs.pt    one torch.save file: {"inputs": {name: {"type", "state"}}, "outcome": tensors},
               loadable with torch.load(path, weights_only=True)

Run id: one per pytest session, shared by xdist workers. KERNELPROP_RUN_ID wins when set (the
fuzz command and CI set it); on an xdist worker the first worker to write a report names the run
and records the name under <reports>/.runs/<testrunuid> for the others; otherwise
<UTC date-time>-<6 hex>. Test id: the node id made file-name safe; a directory that already
exists (two node ids that sanitize alike, a rerun plugin) gets a -2, -3 ... suffix, created with
an atomic mkdir, so xdist workers never collide.

This module only writes: the verdict (Outcome, check_outcome, the fp64 truth of the example) is
kernelprop.core.verdict, shared with properties.checks and `python -m kernelprop replay`. No hypothesis
import here.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import platform
import re
import secrets
import shlex
import sys
import traceback
from importlib import metadata
from pathlib import Path
from typing import Optional

import torch

from kernelprop.core import knobs
from kernelprop.core.plain import plain
from kernelprop.core.verdict import (Verdict, check_outcome, comparison, derived_truth, exception_verdict,
                                kernel_raised, raised_leaves)

SCHEMA = "kernelprop-report/1"
INPUTS_FORMAT = "kernelprop-inputs/1"
MAX_NAME = 120       # longest test-id before it is cut and a hash appended

_REPRODUCE = re.compile(r"@reproduce_failure\('([^']+)', (b'[^']*')\)")


# %% run id and test id

def _now_id() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")


def new_run_id() -> str:
    """<UTC yyyymmdd-HHMMSS>-<6 hex>: sorts by time, unique across concurrent sessions."""
    return f"{_now_id()}-{secrets.token_hex(3)}"


def _shared_run_id(base: Path, testrunuid: str) -> str:
    """The run id every xdist worker of one session agrees on (first writer names it)."""
    runs = base / ".runs"
    runs.mkdir(parents=True, exist_ok=True)
    marker = runs / re.sub(r"[^A-Za-z0-9]", "", testrunuid)[:64]
    if not marker.exists():
        tmp = runs / f".{marker.name}.{os.getpid()}.{secrets.token_hex(4)}"
        tmp.write_text(f"{_now_id()}-{testrunuid[:6]}\n")
        try:
            os.link(tmp, marker)  # atomic: exactly one worker's name wins, complete on arrival
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return marker.read_text().strip()


def run_id(config) -> str:
    """This session's run id (see the module docstring); cached on the config."""
    cached = getattr(config, "_kernelprop_run_id", None)
    if cached:
        return cached
    rid = knobs.run_id.get()
    workerinput = getattr(config, "workerinput", None)
    if not rid and workerinput and workerinput.get("testrunuid"):
        rid = _shared_run_id(reports_base(config), str(workerinput["testrunuid"]))
    rid = sanitize(rid) if rid else new_run_id()
    config._kernelprop_run_id = rid
    return rid


def configure(config) -> str:
    """Optional, for conftest's pytest_configure on the controller: fix the run id before xdist
    starts its workers (they inherit KERNELPROP_RUN_ID), so every report of a session shares it."""
    if getattr(config, "workerinput", None) is None and not knobs.run_id.is_set():
        knobs.run_id.set(new_run_id())
    return run_id(config)


def reports_base(config) -> Path:
    try:
        base = config.getoption("--reports-dir")
    except ValueError:
        base = None
    return Path(base or knobs.reports.get())


def sanitize(text: str) -> str:
    """A file-name-safe form: path separators to '.', '::' to '__', anything else odd to '_'."""
    text = text.replace("::", "__").replace("/", ".").replace("\\", ".")
    text = re.sub(r"[^A-Za-z0-9._=+-]", "_", text).lstrip(".") or "test"
    if len(text) > MAX_NAME:
        import hashlib

        text = text[:MAX_NAME] + "-" + hashlib.sha1(text.encode()).hexdigest()[:8]
    return text


def nodeid_name(nodeid: str) -> str:
    """The test-id directory name of a pytest node id."""
    return sanitize(nodeid)


def unique_dir(base: Path, name: str) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        path = base / (name if n == 1 else f"{name}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"no free report directory for {name} under {base}")


# %% inputs

def describe_inputs(x) -> dict:
    """Compact description of one inputs object: its type, and what its own describe() says
    (every registered op's Inputs type has one)."""
    desc: dict = {"type": f"{type(x).__module__}:{type(x).__name__}"}
    desc.update(x.describe())
    return desc


def describe_labels(type_ref) -> dict:
    """{describe() key: label} of the Inputs type named "module:Type" (its DESCRIBE_LABELS; {}
    when it cannot be loaded)."""
    from kernelprop.core.evidence import resolve

    try:
        return dict(getattr(resolve(type_ref), "DESCRIBE_LABELS", {})) if type_ref else {}
    except (ImportError, AttributeError, ValueError):
        return {}


# %% environment

def versions() -> dict:
    out = {"python": platform.python_version()}
    for dist in ("torch", "triton", "hypothesis", "numpy", "pytest", "pytest-xdist"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _autotune_ran() -> dict:
    from kernelprop.core.causes import autotune_ran

    return autotune_ran()


def environment() -> dict:
    from kernelprop.core.backend import device_name

    backend = knobs.backend.get() or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = device_name(backend)
    except Exception as err:  # noqa: BLE001
        device = f"unknown ({err})"
    return {"backend": backend, "device": device, "platform": platform.platform(),
            "triton_interpret": os.environ.get("TRITON_INTERPRET"),
            "xdist_worker": os.environ.get("PYTEST_XDIST_WORKER"),
            "profile": knobs.profile_active.get(),
            "autotune": _autotune_ran(),
            "versions": versions()}


# %% hypothesis' own words about the failure

def _exception_texts(err: Optional[BaseException]) -> list[str]:
    texts, stack, seen = [], [err], set()
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        texts.extend(str(n) for n in getattr(e, "__notes__", []) or [])
        stack.extend(getattr(e, "exceptions", []) or [])
        stack.append(e.__cause__)
        stack.append(e.__context__)
    return texts


def hypothesis_info(call, report) -> dict:
    """The reproduce blob, the draws, target scores and notes, from the exception's notes (where
    hypothesis puts them) or else the failure text."""
    err = call.excinfo.value if getattr(call, "excinfo", None) else None
    notes = _exception_texts(err)
    text = "\n".join(notes) + "\n" + (getattr(report, "longreprtext", "") or "")
    found = _REPRODUCE.findall(text)
    lines = [ln.strip() for ln in text.splitlines()]
    draws = [ln for ln in lines if ln.startswith("Draw ")]
    targets = [ln for ln in lines if ln.startswith("Highest target score")]
    info = {"version": found[-1][0] if found else None, "blob": found[-1][1] if found else None,
            "decorator": f"@reproduce_failure({found[-1][0]!r}, {found[-1][1]})" if found else None,
            "draws": list(dict.fromkeys(draws)), "target_scores": list(dict.fromkeys(targets)),
            "multiple_failures": len(set(found)) > 1 or len(raised_leaves(err)) > 1,
            "notes": [n[:4000] for n in notes[:20]]}
    if err is not None:
        info["exception"] = f"{type(err).__name__}: {str(err)[:2000]}"
    return info


# %% writing

def replay_command(report_json: Path) -> str:
    return f"python -m kernelprop replay {shlex.quote(str(report_json))}"


def _impl_info(ev) -> dict:
    info = {"kind": ev.impl_kind, "spec": ev.impl, "cwd": os.getcwd()}
    if ev.impl_kind and ev.impl:
        try:
            from kernelprop.core.impl import BUNDLED, make_impl

            impl = make_impl(ev.impl_kind, ev.impl)
            info.update(bundled=ev.impl == BUNDLED.get(ev.impl_kind),
                        declared_recipe=plain(impl.recipe), accepts_recipe=plain(impl.accepts_recipe),
                        validates_inputs=impl.validates_inputs,
                        domain=None if impl.domain is None else impl.domain.describe(),
                        declared=impl.declared(), source=_source_of(impl.fn))
        except Exception as err:  # noqa: BLE001
            info["error"] = str(err)
    return info


def _source_of(fn) -> Optional[str]:
    import inspect

    try:
        return inspect.getsourcefile(fn)
    except TypeError:
        return None


def _spec_ids(item) -> list[str]:
    ids = []
    for mark in item.iter_markers("spec"):
        ids.extend(str(a) for a in mark.args)
    return ids


def write_failure_report(item, call, report) -> Optional[Path]:
    """Write reports/<run-id>/<test-id>/ for a failed call phase; None when the test recorded no
    evidence (not a property, or it failed before its first comparison). Never raises."""
    from kernelprop.core import evidence

    ev = evidence.latest()
    if ev is None:
        return None
    try:
        return _write(item, call, report, ev)
    except Exception:  # noqa: BLE001 (a broken report must not break the pytest run)
        sys.stderr.write(f"kernelprop: could not write the counterexample report of "
                         f"{item.nodeid}:\n{traceback.format_exc()}")
        return None


def _write(item, call, report, ev) -> Path:
    config = item.config
    rid = run_id(config)
    out = unique_dir(reports_base(config) / rid, nodeid_name(item.nodeid))
    report_json = out / "report.json"
    outcome = ev.outcome
    hyp = hypothesis_info(call, report)

    if outcome is not None:
        try:
            verdict = check_outcome(outcome)
        except Exception as err:  # noqa: BLE001 (an outcome the check cannot read: say so)
            verdict = exception_verdict(err, outcome.bound_doc)
        if not verdict.failing:  # the failing example raised before its comparison
            err = call.excinfo.value if call.excinfo else None
            verdict = exception_verdict(err or RuntimeError("unknown"), outcome.bound_doc)
            stale = True
        else:
            stale = False
    else:  # evidence recorded before the comparison, which raised
        err = call.excinfo.value if call.excinfo else RuntimeError("unknown")
        verdict, stale = exception_verdict(err), False

    truth, truth_source = (None, None)
    metrics: dict = {}
    if outcome is not None and not stale:
        try:
            truth, truth_source = derived_truth(ev.inputs, outcome)
            verdict.add_truth(outcome.truth if outcome.truth is not None else truth)
            metrics = comparison(outcome, truth)
            if outcome.truth is not None:
                truth_source = "the property's own fp64 truth"
            metrics["truth_source"] = truth_source
        except Exception as err:  # noqa: BLE001
            metrics = {"error": f"{type(err).__name__}: {err}"}

    from kernelprop.commands.hints import evidence_hints

    try:
        hints = evidence_hints(ev.property_id, None if stale else outcome,
                               truth if truth is not None else getattr(outcome, "truth", None),
                               ev.inputs, ev.recipe, kind=ev.impl_kind)
    except Exception as err:  # noqa: BLE001 (a hint must never cost the report)
        hints = [f"(hints unavailable: {type(err).__name__}: {err})"]
    raised = kernel_raised(call.excinfo.value if getattr(call, "excinfo", None) else None)
    from kernelprop.core.causes import signature

    try:
        cause = signature(ev, None if stale else outcome, raised)
    except Exception as err:  # noqa: BLE001 (a signature must never cost the report)
        sys.stderr.write(f"kernelprop: no root cause for {item.nodeid}: {err}\n")
        cause = None
    if stale:  # these inputs are not the failing example's: do not offer them for replay
        ev = dataclasses.replace(ev, inputs={}, case=None, recipe=None)
    payload = {"format": INPUTS_FORMAT,
               "inputs": {name: {"type": f"{type(x).__module__}:{type(x).__name__}",
                                 "state": x.state_dict()} for name, x in ev.inputs.items()}}
    if outcome is not None and not stale:
        payload["outcome"] = {k: (None if v is None else v.detach().cpu()) for k, v in
                              (("actual", outcome.actual), ("expected", outcome.expected),
                               ("bound", outcome.bound), ("truth", outcome.truth if
                                                          outcome.truth is not None else truth))}
    torch.save(payload, out / "inputs.pt")

    data = {
        "schema": SCHEMA,
        "run_id": rid,
        "test_id": out.name,
        "nodeid": item.nodeid,
        "spec_marks": _spec_ids(item),
        "property_id": ev.property_id,
        "check": ev.check,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "failure": {**verdict.to_dict(), "summary": verdict.line()},
        "lead": lead_sentence(ev.check, hints, outcome.bound_doc if outcome is not None else None,
                              verdict),
        "hints": hints,
        "raised": raised,
        "root_cause": None if cause is None else cause.to_dict(),
        "stale_evidence": stale,
        "bound_doc": outcome.bound_doc if outcome is not None else None,
        "metrics": metrics.get("metrics"),
        "metrics_text": metrics.get("text"),
        "metrics_error": metrics.get("error"),
        "truth_source": metrics.get("truth_source"),
        "extra_metrics": plain(outcome.metrics) if outcome is not None else {},
        "impl": _impl_info(ev),
        "recipe": plain(ev.recipe),
        "recipe_type": type(ev.recipe).__name__ if ev.recipe is not None else None,
        "case": plain(ev.case),
        "case_type": type(ev.case).__name__ if ev.case is not None else None,
        "case_repr": repr(ev.case) if ev.case is not None else None,
        "inputs": {name: describe_inputs(x) for name, x in ev.inputs.items()},
        "inputs_file": "inputs.pt",
        "replay": {"function": ev.replay_fn, "params": plain(ev.replay_params),
                   "command": replay_command(report_json)},
        "hypothesis": hyp,
        "environment": environment(),
        "duration_s": round(getattr(report, "duration", 0.0), 3),
    }
    data = plain(data)
    report_json.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    (out / "report.md").write_text(render_markdown(data))
    return out


# %% markdown

def lead_sentence(check: str, hints: list, bound_doc: Optional[str], verdict: Verdict) -> str:
    """The sentence a report opens with: the most specific hint, else what was checked and the
    bound's meaning; the numbers follow it."""
    if hints:
        return hints[0]
    if verdict.kind == "exception":
        return f"{check}: the check raised instead of comparing ({verdict.error})"
    return f"{check}: violated; {bound_doc}" if bound_doc else f"{check}: violated"


def _fmt_case(data: dict) -> str:
    return data.get("case_repr") or json.dumps(data.get("case"))


def _fmt_tensor(name: str, s: dict) -> str:
    if not isinstance(s, dict) or "shape" not in s:
        return f"- {name}: {s}"
    text = f"- `{name}` {s['dtype']}{s['shape']}"
    if not s.get("contiguous", True):
        text += f" strided {s['stride']}"
    if "values" in s:
        text += f" = `{json.dumps(s['values'])}`"
    return text


def render_markdown(d: dict) -> str:
    f = d["failure"]
    env = d["environment"]
    v = env["versions"]
    impl = d["impl"]
    hyp = d["hypothesis"]
    title = f"{d['property_id']} failed: {d['check']}"
    lines = [f"# {title}", "", f"**{d.get('lead') or f['summary']}**", ""]
    lines += [f"- hint: {h}" for h in (d.get("hints") or [])[1:]]
    lines += [f"- numbers: {f['summary']}", "",
              f"`{d['nodeid']}`  ",
             f"run `{d['run_id']}`, {d['created']}, worker {env.get('xdist_worker') or '-'}, "
             f"profile {env.get('profile') or '-'}", "",
             "**Replay** (no hypothesis needed; exit 1 while it fails, 0 once fixed):", "",
             f"    {d['replay']['command']}", ""]
    if hyp.get("decorator"):
        lines += ["**Hypothesis** (add to the test to replay through hypothesis "
                  f"{hyp['version']}):", "", f"    {hyp['decorator']}", ""]
    lines += ["## What failed", "", f"- violated ({f['kind']}): {f['summary']}"]
    lines += [f"- raised: `{text}`" for text in d.get("raised") or []]
    cause = d.get("root_cause")
    if cause:
        lines += [f"- root cause: {cause['statement']}", f"- settle it: {cause['settle']}"]
    if d.get("bound_doc"):
        lines.append(f"- the bound: {d['bound_doc']}")
    if d.get("stale_evidence"):
        lines.append("- note: the failing example raised before its comparison, so its tensors "
                     "were never recorded and this report cannot replay it: use the hypothesis "
                     "decorator above (kernelprop.core.evidence records only completed comparisons)")
    for t in hyp.get("target_scores", []):
        t = t.replace("1e+300", "inf")
        lines.append(f"- hypothesis: {t} (worst example seen, before shrinking)")
    if hyp.get("multiple_failures"):
        lines.append("- hypothesis found several distinct failures; this report holds the last")
    lines += ["", "## Implementation", "",
              f"- {impl.get('kind')} = `{impl.get('spec')}`"
              + (" (bundled)" if impl.get("bundled") else ""),
              f"- declared recipe: `{json.dumps(impl.get('declared_recipe'))}`, accepts_recipe "
              f"{impl.get('accepts_recipe')}, validates_inputs {impl.get('validates_inputs')}, "
              f"domain {impl.get('domain') or 'any input'}",
              f"- recipe under test ({d.get('recipe_type')}): `{json.dumps(d.get('recipe'))}`",
              f"- replay function `{d['replay']['function']}`", "",
              "## Shrunk input", ""]
    if d.get("case") is not None:
        lines.append(f"- case: `{_fmt_case(d)}`")
    else:  # the failing example's own draws, as hypothesis printed them
        lines += [f"- hypothesis {draw}" for draw in hyp.get("draws", [])]
    for name, desc in d["inputs"].items():
        lines.append(f"- inputs[{name!r}] ({desc.get('type', '?').split(':')[-1]}):")
        labels = describe_labels(desc.get("type"))
        for key, value in desc.items():
            if key == "type":
                continue
            if isinstance(value, dict):
                lines.append("  " + _fmt_tensor(key, value))
            elif key in labels:
                lines.append(f"  - {labels[key]}: `{json.dumps(value)}`")
            else:
                lines.append(f"  - {key} = `{json.dumps(value)}`")
    lines += ["", "## Metrics (golden.metrics.compare)", ""]
    if d.get("metrics_text"):
        lines += ["```text", d["metrics_text"], "```"]
        if d.get("truth_source"):
            lines.append(f"truth: {d['truth_source']}")
    elif d.get("metrics_error"):
        lines.append(f"metrics unavailable: {d['metrics_error']}")
    else:
        lines.append("none (no comparison completed)")
    if d.get("extra_metrics"):
        lines += ["", f"extra: `{json.dumps(d['extra_metrics'])}`"]
    lines += ["", "## Environment", "",
              f"- backend {env['backend']} on {env['device']}; {env['platform']}",
              *[f"- ran {text}" for text in (env.get("autotune") or {}).values()],
              "- " + ", ".join(f"{k} {val}" for k, val in v.items()), "",
              "## Files", "",
              "- `report.json`: this report for machines (schema " + d["schema"] + ")",
              "- `inputs.pt`: `torch.load(path, weights_only=True)` -> {'inputs': {name: "
              "{'type', 'state'}}, 'outcome': {'actual', 'expected', 'bound', 'truth'}}; "
              "rebuild with `<type>.from_state_dict(state)`", ""]
    return "\n".join(lines)
