"""Fleet history: every fuzz worker appends one run record to a store all workers reach.

    store           where                                      what one record is
    redis://H:P/N   the list `kernelprop:fleet:runs` (RPUSH)   one JSON string
    DIR             DIR/<worker>--<run-id>.json                one JSON file (atomic rename)

A record (schema kernelprop-fleet-run/1) holds who ran (worker name, host, backend, device,
impl, versions, database), when (started, finished, budget), and per test function the examples,
seconds, examples per second, worst error/bound, failures with their report paths and where the
first failing example came from (phase "reuse" = replayed from the database). `python -m
kernelprop fuzz report` (kernelprop.commands.fleet_report) merges them into the fleet dashboard.

A record that cannot be pushed (the server died mid-run) is kept in <history>/fleet-pending/ and
pushed before the next record of that worker: a record is never lost, only late.
"""
from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

from kernelprop.core import knobs

SCHEMA = "kernelprop-fleet-run/1"
REDIS_KEY = "kernelprop:fleet:runs"


class RedisRunStore:
    def __init__(self, url: str) -> None:
        from kernelprop.commands.database import redis_client, redact

        self.url = redact(url)
        self.client = redis_client(url)

    def __repr__(self) -> str:
        return f"RedisRunStore({self.url})"

    def append(self, record: dict) -> None:
        self.client.rpush(REDIS_KEY, json.dumps(record, allow_nan=False))

    def records(self) -> list[dict]:
        return _decode(self.client.lrange(REDIS_KEY, 0, -1), self.url)


class DirectoryRunStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"DirectoryRunStore({self.path})"

    def append(self, record: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        name = _safe(f"{record['worker']}--{record['run_id']}") + ".json"
        tmp = self.path / f".{name}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(record, allow_nan=False, indent=1) + "\n")
        tmp.replace(self.path / name)  # readers never see half a record

    def records(self) -> list[dict]:
        if not self.path.is_dir():
            return []
        return _decode([p.read_text() for p in sorted(self.path.glob("*.json"))], str(self.path))


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:150]


def _decode(raw: list, where: str) -> list[dict]:
    out = []
    for item in raw:
        try:
            record = json.loads(item)
        except (TypeError, ValueError):
            print(f"kernelprop fleet: skipping an unreadable record in {where}", file=sys.stderr)
            continue
        if isinstance(record, dict) and record.get("schema") == SCHEMA:
            out.append(record)
    return out


def open_store(target: str):
    """RedisRunStore for a redis:// URL, DirectoryRunStore for a path."""
    from kernelprop.commands.database import is_shared

    return RedisRunStore(target) if is_shared(target) else DirectoryRunStore(target)


def worker_name(requested: str | None = None) -> str:
    return requested or knobs.worker.get() or socket.gethostname()


def run_record(summary: dict, worker: str) -> dict:
    """The fleet record of one fuzz run, from fuzz.main's summary (groups: test functions)."""
    props = {}
    for test, g in summary["groups"].items():
        seconds = g.get("seconds", 0.0)
        props[test] = {
            "spec": g["spec"], "examples": g["examples"], "seconds": round(seconds, 3),
            "examples_per_s": round(g["examples"] / seconds, 3) if seconds > 0 else None,
            "worst": g["worst"], "failures": g["failures"], "errors": g["errors"],
            "reports": g["reports"], "first_failure": g.get("first_failure")}
    return {"schema": SCHEMA, "worker": worker, "host": socket.gethostname(),
            "run_id": summary["run_id"], "started": summary["started"],
            "finished": summary["finished"], "minutes": summary["minutes"],
            "backend": summary["backend"], "device": summary["device"],
            "impl": summary["impl"], "versions": summary["versions"],
            "database": summary["database"], "exit_code": summary["exit_code"],
            "outages": summary.get("database_outages", []),
            "reports_dir": summary["reports_dir"], "properties": props}


def push(target: str, record: dict, pending_dir: Path) -> tuple[bool, str]:
    """Append `record` (after any pending ones) to the store at `target`; on failure keep it in
    pending_dir. Returns (pushed, a line saying what happened)."""
    pending_dir.mkdir(parents=True, exist_ok=True)
    DirectoryRunStore(pending_dir).append(record)
    waiting = sorted(pending_dir.glob("*.json"))
    try:
        store = open_store(target)
        for path in waiting:
            store.append(json.loads(path.read_text()))
            path.unlink()
    except Exception as err:  # an unreachable store must not lose the run: it stays pending
        left = len(list(pending_dir.glob("*.json")))
        return False, (f"fleet record NOT pushed to {_describe(target)} ({type(err).__name__}: "
                       f"{err}); {left} record(s) kept in {pending_dir}, pushed with the next run")
    return True, f"fleet record pushed to {_describe(target)} ({len(waiting)} record(s))"


def _describe(target: str) -> str:
    from kernelprop.commands.database import redact

    return redact(target)
