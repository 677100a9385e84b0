"""Fleet fuzzing against a real Redis: the shared example database, the fleet history and the
fault handling of kernelprop.commands.database / kernelprop.commands.fleet (issue 15).

The end-to-end tests start Debian's `redis-server` on a free loopback port (127.0.0.1 only, no
persistence) and run fuzz workers as separate processes (`python -m kernelprop fuzz`), each with
its own local database, history and report folder, on the planted RMSNorm property
(tests/planted/norm_property.py, rows layout, with the 10-bit-rsqrt bug):
- worker A finds the bug by searching; worker B, given only the shared Redis, meets it as its
  very first example, in hypothesis' `reuse` phase (replayed from the database, no search);
  `fuzz report` merges both workers' records into one dashboard;
- worker C (two xdist processes, one per layout) runs while the Redis server is killed
  (SIGKILL), then the bug is planted (a gate file): each process warns, keeps fuzzing on the
  local database, finds the bug and writes its report; the run record stays pending, and both
  failing examples replay from C's local database alone.
The unit tests need no server. .ci/run installs redis-server; where it is missing the Redis tests
skip with a reason that says so.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis.database import DirectoryBasedExampleDatabase, InMemoryExampleDatabase

from kernelprop.commands import database as kdb
from kernelprop.commands import fleet
from kernelprop.commands import fleet_report

ROOT = Path(__file__).resolve().parents[1]
NORM_PROPERTY = "tests/planted/norm_property.py"
RSQRT10 = "rms_norm=tests/planted/rms_norm_rsqrt10.py:rms_norm"
GATED = "rms_norm=tests/planted/rms_norm_gated.py:rms_norm"
TEST_ID = f"{NORM_PROPERTY}::test_planted_norm_p1"
NO_SERVER = ("redis-server is not installed: the fleet tests need Debian's redis-server "
             "(apt-get install -y redis-server; .ci/run installs it)")


# %% no server needed

class _Flaky(InMemoryExampleDatabase):
    """An in-memory database that raises ConnectionError while .dead is set."""
    dead = False

    def _check(self):
        if self.dead:
            raise ConnectionError("planted outage")

    def fetch(self, key):
        self._check()
        return super().fetch(key)

    def save(self, key, value):
        self._check()
        super().save(key, value)


def test_fail_soft_database_warns_once_keeps_going_and_pushes_what_it_missed():
    inner = _Flaky()
    shared = kdb.FailSoftDatabase(inner, "redis://:secret@example:1/0", retry_after_s=0.0)
    assert shared.name == "redis://:***@example:1/0"  # never the password in logs
    shared.save(b"k", b"before")
    inner.dead = True
    with pytest.warns(kdb.SharedDatabaseWarning, match="continuing on the local database"):
        shared.save(b"k", b"during")
    assert shared.down and list(shared.fetch(b"k")) == []
    shared.save(b"k", b"during-2")  # still down: no second warning, queued
    assert len(shared.outages) == 1 and shared.pending == [(b"k", b"during"), (b"k", b"during-2")]
    inner.dead = False
    assert sorted(shared.fetch(b"k")) == [b"before", b"during", b"during-2"]  # pushed on return
    assert not shared.down and shared.pending == []


def test_multiplexed_local_part_keeps_every_save_while_the_shared_part_is_down(tmp_path):
    from hypothesis.database import MultiplexedDatabase

    local = DirectoryBasedExampleDatabase(tmp_path / "db")
    inner = _Flaky()
    inner.dead = True
    with pytest.warns(kdb.SharedDatabaseWarning):
        db = MultiplexedDatabase(local, kdb.FailSoftDatabase(inner, "redis://x:1/0"))
        db.save(b"key", b"counterexample")
    assert list(local.fetch(b"key")) == [b"counterexample"]


def test_database_specs_and_the_missing_client_error(monkeypatch, tmp_path):
    monkeypatch.delenv("KERNELPROP_DATABASE", raising=False)
    monkeypatch.delenv("KERNELPROP_LOCAL_DATABASE", raising=False)
    assert kdb.parse_database(str(tmp_path)) == kdb.DatabaseSpec(local=str(tmp_path))
    spec = kdb.parse_database("redis://127.0.0.1:1/3", str(tmp_path))
    assert spec == kdb.DatabaseSpec(local=str(tmp_path), shared="redis://127.0.0.1:1/3")
    with pytest.raises(kdb.DatabaseUnavailable, match="unsupported scheme 'http'"):
        kdb.parse_database("http://example/db")
    monkeypatch.setitem(sys.modules, "redis", None)  # `import redis` now fails
    with pytest.raises(kdb.DatabaseUnavailable, match=r"kernelprop\[redis\]"):
        kdb.open_database(spec)


def test_fleet_records_merge_into_one_dashboard(tmp_path):
    store = fleet.DirectoryRunStore(tmp_path / "store")
    for worker, night, worst, failed in (("gpu-1", "2026-11-25", 0.2, False),
                                         ("gpu-2", "2026-11-25", 0.4, False),
                                         ("gpu-1", "2026-11-26", 3.0, True)):
        store.append(_record(worker, night, worst, failed))
    view = fleet_report.merge(store.records())
    assert [w.worker for w in view.workers] == ["gpu-1", "gpu-2"]
    assert view.nights == ("2026-11-25", "2026-11-26")
    assert view.worst_by_night["p.py::t"] == {"2026-11-25": (0.4, False),
                                              "2026-11-26": (3.0, True)}
    assert [(f.worker, f.reports) for f in view.failures] == [("gpu-1", ("reports/r/t",))]
    assert view.throughput[("gpu-1", "p.py::t")] == (200, 20.0)
    md = fleet_report.markdown(view, "fleet")
    assert "| gpu-2 |" in md and "**3 FAILED**" in md and "replayed from the database" in md
    from kernelprop.commands.fleet_html import render

    page = render(view, "fleet")
    assert page.count("<svg") == 1 and "gpu-2" in page and "<script" not in page


def test_the_dashboard_renders_in_chromium(tmp_path):
    from kernelprop.commands import screenshot
    from kernelprop.commands.fleet_html import render

    if screenshot.find_browser() is None:
        pytest.skip(reason="no Chromium: the browser check of the fleet dashboard needs Debian's "
                           "chromium (apt-get install chromium; deliberately not installed by CI)")
    records = [_record("gpu-1", "2026-11-24", 0.1, False), _record("gpu-2", "2026-11-25", 0.3, False),
               _record("gpu-1", "2026-11-26", 3.0, True)]
    page = tmp_path / "fleet.html"
    page.write_text(render(fleet_report.merge(records), "kernelprop fleet fuzzing"))
    shot = screenshot.screenshot(page, tmp_path / "fleet.png", size=(1280, 1400))
    assert shot.ok and (shot.width, shot.height) == (1280, 1400), shot
    # the check can fail: a planted console error and an empty page are both caught
    bad = tmp_path / "bad.html"
    bad.write_text("<!doctype html><p>x</p><script>console.error('planted')</script>")
    assert any("planted" in line for line in screenshot.screenshot(bad, tmp_path / "b.png").console)
    empty = tmp_path / "empty.html"
    empty.write_text("<!doctype html><html></html>")
    assert screenshot.screenshot(empty, tmp_path / "e.png").blank


def _record(worker: str, night: str, worst: float, failed: bool) -> dict:
    first = {"example": 1, "phase": "reuse", "seconds": 0.5, "call_seconds": 0.4} if failed else None
    return {"schema": fleet.SCHEMA, "worker": worker, "host": worker, "run_id": f"fuzz-{night}",
            "started": f"{night}T01:00:00+00:00", "finished": f"{night}T01:30:00+00:00",
            "minutes": 30, "backend": "cuda", "device": "H100", "impl": [], "versions": {},
            "database": "redis://db:6379/0", "exit_code": int(failed), "outages": [],
            "reports_dir": "reports/r",
            "properties": {"p.py::t": {"spec": ["P1"], "examples": 100, "seconds": 10.0,
                                       "examples_per_s": 10.0, "worst": worst,
                                       "failures": int(failed), "errors": 0,
                                       "reports": ["reports/r/t"] if failed else [],
                                       "first_failure": first}}}


# %% a real redis-server

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """redis-server on 127.0.0.1:<free port>, no persistence, stopped by the test (SIGKILL)."""

    def __init__(self, port: int):
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = kdb.redis_client(self.url, timeout_s=1.0)
        for _ in range(100):
            try:
                client.ping()
                return
            except Exception:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"redis-server did not answer on port {port}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def redis_server():
    if shutil.which("redis-server") is None:
        pytest.skip(reason=NO_SERVER)
    pytest.importorskip("redis", reason="the redis client (pip install 'kernelprop[redis]') is "
                                        "missing; requirements.txt pins it for CI")
    server = RedisServer(_free_port())
    yield server
    server.kill()


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "KERNELPROP_", "HYPOTHESIS_"))}
    return dict(env, PYTHONPATH=str(ROOT), **extra)


def _fuzz_cmd(url: str, home: Path, worker: str, impl: str, *extra: str) -> list[str]:
    """A fuzz worker on the planted RMSNorm property (`-k rows` unless extra selects otherwise)."""
    select = [] if "--workers" in extra else ["-k", "rows"]
    return [sys.executable, "-m", "kernelprop", "fuzz", "--minutes", "1", "--backend", "cpu",
            "--database", url, "--local-database", str(home / "db"),
            "--history-dir", str(home / "history"), "--reports-dir", str(home / "reports"),
            "--worker", worker, "--impl", impl, *select, "--report-grace", "0",
            *extra, NORM_PROPERTY]


def _fuzz(url: str, home: Path, worker: str, impl: str = RSQRT10, *extra: str,
          env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(_fuzz_cmd(url, home, worker, impl, *extra), cwd=ROOT,
                          env=env or _env(), capture_output=True, text=True, timeout=150)


def _test_records(home: Path) -> list[dict]:
    lines = [json.loads(line) for path in sorted((home / "history").glob("runs/*/stats/**/*.jsonl"))
             for line in path.read_text().splitlines()]
    return [r for r in lines if r.get("type") == "test"]


def test_a_counterexample_found_by_one_worker_is_replayed_first_by_another(redis_server, tmp_path):
    a, b = tmp_path / "worker-a", tmp_path / "worker-b"
    run_a = _fuzz(redis_server.url, a, "worker-a")
    assert run_a.returncode == 1, run_a.stdout[-3000:] + run_a.stderr[-3000:]
    found = [r["first_failure"] for r in _test_records(a) if r.get("first_failure")]
    assert found and found[0]["phase"] != "reuse", found  # A searched for it
    assert "fleet record pushed" in run_a.stdout

    began = time.monotonic()
    run_b = _fuzz(redis_server.url, b, "worker-b")
    b_wall = time.monotonic() - began
    assert run_b.returncode == 1, run_b.stdout[-3000:] + run_b.stderr[-3000:]
    first = _test_records(b)[0]
    # B's very first example is A's counterexample, from the database, no generation before it
    assert first["first_failure"]["example"] == 1, first
    assert first["first_failure"]["phase"] == "reuse", first
    assert "generate" not in first["phases"], first
    # goal: the crossing costs B <= 1 s: the time before that example ran (database fetch, draw)
    # is the test body's time to the failure less the example's own run (a cold first call)
    crossing = first["first_failure"]["call_seconds"] - first["first_failure"]["example_seconds"]
    assert crossing <= 1.0, first
    print(f"worker B: counterexample replayed at its example 1 (reuse), "
          f"{first['first_failure']['call_seconds']} s after its test body began "
          f"({first['first_failure']['example_seconds']} s running that example); "
          f"B's whole fuzz run {b_wall:.1f} s")
    assert list((b / "reports").glob("*/*/report.json")), run_b.stdout[-3000:]

    out = tmp_path / "dashboard"
    report = subprocess.run([sys.executable, "-m", "kernelprop", "fuzz", "report",
                             "--fleet", redis_server.url, "--out", str(out)],
                            cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stdout + report.stderr
    md, page = (out / "fleet.md").read_text(), (out / "fleet.html").read_text()
    for text in ("| worker-a |", "| worker-b |", TEST_ID, "replayed from the database"):
        assert text in md, md
    assert "worker-a" in page and "worker-b" in page


def test_unreachable_database_stops_the_run_at_start_with_the_cause(tmp_path):
    port = _free_port()  # nothing listens there
    run = _fuzz(f"redis://127.0.0.1:{port}/0", tmp_path, "w")
    assert run.returncode == 2, run.stdout + run.stderr
    assert f"cannot reach the shared example database redis://127.0.0.1:{port}/0" in run.stderr
    assert "Connection refused" in run.stderr or "connecting" in run.stderr
    assert not (tmp_path / "history").exists()  # stopped before the first round
    # an ordinary pytest run with --database stops the same way (a usage error, exit 4)
    plain = subprocess.run([sys.executable, "-m", "pytest", NORM_PROPERTY, "-p", "no:xdist",
                            "-p", "no:cacheprovider", "--database", f"redis://127.0.0.1:{port}/0"],
                           cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert plain.returncode == 4, plain.stdout[-2000:] + plain.stderr[-2000:]
    assert "cannot reach the shared example database" in plain.stderr


def test_redis_killed_mid_run_loses_nothing(redis_server, tmp_path):
    home, gate = tmp_path / "worker-c", tmp_path / "gate"
    env = _env(KERNELPROP_PLANTED_GATE=str(gate))
    # two pytest-xdist processes, one per layout of the property: every one must survive
    proc = subprocess.Popen(_fuzz_cmd(redis_server.url, home, "worker-c", GATED, "--examples",
                                      "400", "--fixed-examples", "--workers", "2"),
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.monotonic() + 60
        while not list((home / "history").glob("runs/*/stats/round-0/*.jsonl")):
            assert time.monotonic() < deadline and proc.poll() is None, "worker never started"
            time.sleep(0.1)
        time.sleep(1.0)  # the round is running examples against the (correct) gated impl
        redis_server.kill()
        gate.write_text("planted")  # only now the implementation goes wrong
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out[-4000:]
    summary = json.loads(next((home / "history").glob("runs/*/summary.json")).read_text())
    # each xdist process noticed mid-round (an operation failed, not a round's opening), warned,
    # went on
    mid_run = [o for o in summary["database_outages"] if not o["error"].startswith("cannot reach")]
    assert len(mid_run) >= 2, summary["database_outages"]
    assert "continuing on the local database" in "".join(
        p.read_text() for p in (home / "history").glob("runs/*/round-*.log"))
    reports = list((home / "reports").glob("*/*/report.json"))
    assert len(reports) == 2, out[-4000:]  # both layouts found and reported
    assert "fleet record NOT pushed" in out and list((home / "history" / "fleet-pending").glob(
        "*.json"))

    # nothing lost: the local database alone replays the failure (reuse phase only, no search)
    replay = subprocess.run(
        [sys.executable, "-m", "pytest", NORM_PROPERTY, "-p", "no:cacheprovider",
         "-p", "no:xdist", "--backend", "cpu", "--hypothesis-profile=replay", "--impl", GATED,
         "--database", str(home / "db"), "--reports-dir", str(tmp_path / "replayed"), "-q"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert replay.returncode == 1 and "2 failed" in replay.stdout, replay.stdout[-3000:]
    assert len(list((tmp_path / "replayed").glob("*/*/report.json"))) == 2

    # the pending run record reaches the fleet store once a server answers again
    server = RedisServer(redis_server.port)
    try:
        pushed, line = fleet.push(server.url, json.loads(
            next((home / "history" / "runs").glob("*/fleet-record.json")).read_text()),
            home / "history" / "fleet-pending")
        assert pushed, line
        assert [r["worker"] for r in fleet.open_store(server.url).records()] == ["worker-c"]
    finally:
        server.kill()
