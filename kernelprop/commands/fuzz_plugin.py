"""pytest plugin of `python -m kernelprop fuzz` (loaded with `-p kernelprop.commands.fuzz_plugin`).

Per test it counts the examples hypothesis ran (through hypothesis' observability callbacks: one
observation per test case), the failing ones, and every `target()` score (the properties target
kernelprop.core.verdict.Verdict.score: the margin ratio, or error/bound where the bound has no flips), and appends JSON lines to $KERNELPROP_FUZZ_STATS/<process>.jsonl:

  {"type": "progress", "nodeid", "examples", "failed", "max": {label: score}}   every few seconds
  {"type": "test", "nodeid", "spec", "outcome", "interrupted", "examples", "failed", "gave_up",
   "phases": {phase: n}, "max": {label: score}, "scores": {label: [score, ...]}, "seconds",
   "first_failure": {"example": n (1 = the first), "phase", "seconds" (since setup began),
                     "call_seconds" (since the test body began: fixtures excluded),
                     "example_seconds" (hypothesis' timing of that example)} or null}
  {"type": "database", "outages": [{"at", "error", "database"}]}  shared database failures
  {"type": "collect_error", "nodeid", "message"}
  {"type": "collected", "nodeids": [...], "backend", "device"}  the tests this round selected

$KERNELPROP_FUZZ_PRIORITY (a JSON file {nodeid: examples run so far}) reorders the collected
tests, fewest examples first (a stable sort, identical on every xdist worker), so that rounds cut
short by the deadline still reach every test in turn. --fuzz-shard=I/W then keeps the I-th of
every W tests in that order (kernelprop.commands.fuzz_worker: W long-lived workers, one shard each).

Rounds run in-process one after another (kernelprop.commands.fuzz_worker): a hypothesis test decorated
without its own @settings holds the profile object that was current when its module was imported
(hypothesis copies `settings.default` onto the test), so each session points the tests holding
an earlier session's profile at this session's (with this round's max_examples); shared database
outages are written once per process.

A test interrupted by the fuzz deadline (SIGINT) still writes its line, with "interrupted": true.
Without KERNELPROP_FUZZ_STATS the plugin does nothing.
"""
from __future__ import annotations

import json
import math
import os
import time

import pytest

from kernelprop.core import knobs
from kernelprop.core.verdict import STEERING_LABEL

PROGRESS_EVERY_S = 5.0
MAX_SCORES = 50_000  # per test and label; later scores only update the count and the max


def _out_path():
    base = knobs.fuzz_stats.get()
    if not base:
        return None
    os.makedirs(base, exist_ok=True)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return os.path.join(base, f"stats-{worker}-{os.getpid()}.jsonl")


def _write(record: dict) -> None:
    path = _out_path()
    if path is None:
        return
    with open(path, "a") as f:
        f.write(json.dumps(record, allow_nan=False, default=str) + "\n")


def _finite(x: float) -> float:
    return x if math.isfinite(x) else (1e300 if x > 0 else -1e300)


class _TestStats:
    def __init__(self, item):
        self.nodeid = item.nodeid
        self.spec = [str(a) for m in item.iter_markers("spec") for a in m.args]
        self.examples = self.failed = self.gave_up = 0
        self.phases: dict = {}
        self.max: dict = {}
        self.scores: dict = {}
        self.outcome = "unknown"
        self.first_failure = None  # where this process met its first failing example
        self.started = self.last_progress = time.monotonic()
        self.call_started = None  # set when the test body (after fixtures) begins

    def observe(self, obs) -> None:
        if getattr(obs, "type", None) != "test_case":
            return
        status = getattr(obs, "status", None)
        if status == "gave_up":
            self.gave_up += 1
            return
        self.examples += 1
        self.failed += status == "failed"
        phase = getattr(getattr(obs, "metadata", None), "phase", None) or "unknown"
        self.phases[phase] = self.phases.get(phase, 0) + 1
        if status == "failed" and self.first_failure is None:
            # "reuse" at example 1: replayed from the (shared) database, not searched for
            now = time.monotonic()
            timing = getattr(obs, "timing", None) or {}
            self.first_failure = {
                "example": self.examples, "phase": phase,
                "seconds": round(now - self.started, 3),
                "call_seconds": round(now - (self.call_started or self.started), 3),
                "example_seconds": round(sum(v for v in timing.values()
                                             if isinstance(v, (int, float))), 3)}
        for key, value in (getattr(obs, "features", None) or {}).items():
            if not key.startswith("target:") or not isinstance(value, (int, float)) \
                    or key.endswith(STEERING_LABEL):
                continue  # the steering score is climbed, never plotted (Verdict.steering)
            label, value = key[len("target:"):], _finite(float(value))
            self.max[label] = max(self.max.get(label, -math.inf), value)
            kept = self.scores.setdefault(label, [])
            if len(kept) < MAX_SCORES:
                kept.append(float(f"{value:.5g}"))
        now = time.monotonic()
        if now - self.last_progress >= PROGRESS_EVERY_S:
            self.last_progress = now
            _write({"type": "progress", "nodeid": self.nodeid, "spec": self.spec,
                    "examples": self.examples, "failed": self.failed, "max": self.max})

    def record(self, interrupted: bool) -> dict:
        return {"type": "test", "nodeid": self.nodeid, "spec": self.spec, "outcome": self.outcome,
                "interrupted": interrupted, "examples": self.examples, "failed": self.failed,
                "gave_up": self.gave_up, "phases": self.phases, "max": self.max,
                "scores": self.scores, "seconds": round(time.monotonic() - self.started, 3),
                "first_failure": self.first_failure}


_current: dict = {"stats": None}


def _observe(obs) -> None:
    stats = _current["stats"]
    if stats is not None:
        stats.observe(obs)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if _out_path() is None:
        return (yield)
    from hypothesis.internal.observability import with_observability_callback

    stats = _current["stats"] = _TestStats(item)
    interrupted = True
    try:
        with with_observability_callback(_observe):
            result = yield
        interrupted = False
        return result
    finally:
        _current["stats"] = None
        if interrupted and stats.outcome == "unknown":
            stats.outcome = "interrupted"
        _write(stats.record(interrupted))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    stats = _current["stats"]
    if stats is not None:
        stats.call_started = time.monotonic()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    stats = _current["stats"]
    if stats is None:
        return
    report = outcome.get_result()
    if call.excinfo is not None and call.excinfo.errisinstance(KeyboardInterrupt):
        stats.outcome = "interrupted"
    elif report.when == "call":
        stats.outcome = report.outcome  # passed / failed / skipped
    elif report.failed:
        stats.outcome = "error"           # setup or teardown
    elif report.skipped and report.when == "setup":
        stats.outcome = "skipped"


def pytest_addoption(parser):
    parser.addoption("--fuzz-shard", default=None, metavar="I/W",
                     help="run only the I-th of every W collected tests (after the priority "
                          "order): shard I of W long-lived fuzz workers")


def _shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise pytest.UsageError(f"--fuzz-shard must be I/W with 0 <= I < W, got {text!r}") from None
    if not 0 <= index < count:
        raise pytest.UsageError(f"--fuzz-shard must be I/W with 0 <= I < W, got {text!r}")
    return index, count


_profiles_seen: list = []   # every hypothesis profile object this process has collected under
_outages_written: set = set()


def _refresh_profile(items) -> None:
    """Tests holding an earlier session's profile object run under this session's."""
    from hypothesis import settings

    current = settings.default
    if not any(current is p for p in _profiles_seen):
        _profiles_seen.append(current)
    for item in items:
        fn = getattr(item, "obj", None)
        held = getattr(fn, "_hypothesis_internal_use_settings", None)
        if held is not None and held is not current and any(held is p for p in _profiles_seen):
            fn._hypothesis_internal_use_settings = current


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    if _out_path() is None:
        return
    _refresh_profile(items)
    path = knobs.fuzz_priority.get()
    if path:
        try:
            with open(path) as f:
                seen = json.load(f)
        except (OSError, ValueError):
            seen = {}
        items.sort(key=lambda item: seen.get(item.nodeid, 0))
    shard = config.getoption("--fuzz-shard")
    if shard:
        index, count = _shard(shard)
        kept = [item for i, item in enumerate(items) if i % count == index]
        dropped = [item for i, item in enumerate(items) if i % count != index]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_collection_finish(session):
    if session.items and _out_path() is not None:
        from kernelprop.core.backend import device_name

        backend = knobs.backend.get() or "cpu"
        _write({"type": "collected", "nodeids": [item.nodeid for item in session.items],
                "backend": backend, "device": device_name(backend)})


def pytest_collectreport(report):
    if report.failed and _out_path() is not None:
        _write({"type": "collect_error", "nodeid": report.nodeid,
                "message": str(report.longrepr)[-2000:]})


def pytest_sessionfinish(session):
    if _out_path() is None:
        return
    from kernelprop.commands.database import outages

    new = [o for o in outages() if json.dumps(o, sort_keys=True, default=str) not in _outages_written]
    if new:
        _outages_written.update(json.dumps(o, sort_keys=True, default=str) for o in new)
        _write({"type": "database", "outages": new})
