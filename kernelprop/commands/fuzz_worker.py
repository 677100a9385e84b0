"""Long-lived pytest workers of `python -m kernelprop fuzz`: every round runs in processes that
stay alive from round to round, so only the first round pays for starting Python and importing
pytest, hypothesis, torch, triton and the suite.

    python -m kernelprop.commands.fuzz_worker REPLY_FD     (started by WorkerPool, never by hand)

The worker reads one JSON command per line on stdin, {"argv": [...], "env": {...}, "log": path},
sets `env` in its environment (the round's knobs: examples, stats folder, priority file,
profile), points its stdout and stderr at `log`, runs `pytest.main(argv)` in-process and answers
{"rc": exit status} on REPLY_FD. It exits at the end of stdin and after a round pytest reports
as interrupted (the fuzz deadline's SIGINT); a SIGINT between rounds ends it too, and so does
the driver's death (a watchdog interrupts the round).

Why a pytest session per round inside one process (and not one session whose plugin loops the
tests round after round): a round stays exactly what it was as a process of its own (its
collection with the round's -k, deselected failures, priority order and shard; its knobs; its
session hooks: database outages, coverage table, the report run id; its log and exit status),
so the fuzz plugin's records, the database, reports, summary, history, fleet records and
dashboard are produced by the same code as before. pytest has no supported way to run an item
twice within a session (rerun plugins re-enter its runtest protocol with internal state), and a
looping session would have to invent per-round exit statuses and logs.

What persists between the rounds of a process, and why that is safe:
- imported modules (the point). Test modules are imported once; hypothesis' @given captures the
  settings object current at decoration (`_hypothesis_internal_use_settings`), so a round would
  keep the first round's max_examples. kernelprop.commands.fuzz_plugin points every test still holding an
  earlier round's profile object at this round's (identity check: a test with its own @settings
  keeps them), and properties.strategies.over_shape_classes computes its per-class shares from
  the profile when a test is called.
- hypothesis' global state: each @given call draws its own random seed (as in a new process)
  unless --hypothesis-seed, which its pytest plugin sets per session; the profiles and the
  example database are registered and opened again by kernelprop.commands.pytest_plugin in every session
  (with the round's KERNELPROP_NIGHTLY_EXAMPLES); database outages are reported once
  (kernelprop.commands.fuzz_plugin keeps what it wrote).
- the faithful interpreter is entered once per process (kernelprop.faithful.enter_for_backend).

xdist is not used: with --workers W the pool starts W processes, worker i running shard i of
every round (kernelprop.commands.fuzz_plugin's --fuzz-shard: the i-th of every W tests in priority
order). A round ends when every shard has ended; `python -m kernelprop fuzz --process-per-round`
keeps the former rounds (one pytest process per round, xdist across workers).
"""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

INTERRUPTED = 2          # pytest.ExitCode.INTERRUPTED
CLOSE_WAIT_S = 10.0      # after stdin closes, before SIGKILL


# %% the worker process

def _redirect(path: str) -> tuple[int, int]:
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    return saved


def _restore(saved: tuple[int, int]) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    for fd, original in zip((1, 2), saved):
        os.dup2(original, fd)
        os.close(original)


def _exit_with_parent(poll_s: float = 1.0, grace_s: float = 20.0) -> None:
    """A driver that dies (killed, SIGTERM) leaves no worker behind: the round in progress is
    interrupted as at a deadline, and the process ends at most `grace_s` later."""
    import threading

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(grace_s)
        os._exit(INTERRUPTED)

    threading.Thread(target=watch, daemon=True, name="fuzz-worker-parent").start()


def serve(reply_fd: int) -> int:
    import pytest

    _exit_with_parent()

    for line in sys.stdin:
        if not line.strip():
            continue
        command = json.loads(line)
        os.environ.update(command.get("env") or {})
        with open(command["log"], "a") as log:
            log.write("$ pytest(in-process, pid %d) %s\n" % (os.getpid(), " ".join(command["argv"])))
        saved = _redirect(command["log"])
        try:
            rc = int(pytest.main(list(command["argv"])))
        finally:
            _restore(saved)
        os.write(reply_fd, (json.dumps({"rc": rc}) + "\n").encode())
        if rc == INTERRUPTED:
            break
    return 0


def main(argv: list[str]) -> int:
    try:
        return serve(int(argv[0]))
    except KeyboardInterrupt:
        return INTERRUPTED


# %% the driver's side

@dataclass
class _Worker:
    proc: subprocess.Popen
    reply: int                    # read end of the reply pipe
    buffer: bytes = b""
    busy: bool = False
    rc: Optional[int] = None      # the last round's exit status


@dataclass
class WorkerPool:
    """`count` long-lived workers (started on first use, restarted after one ends)."""

    count: int
    env: dict
    stderr_log: Path              # what a worker prints outside a round (a crash, a traceback)
    workers: list = field(default_factory=list)

    def _start(self) -> _Worker:
        read, write = os.pipe()
        with open(self.stderr_log, "a") as err:
            proc = subprocess.Popen([sys.executable, "-m", "kernelprop.commands.fuzz_worker", str(write)],
                                    stdin=subprocess.PIPE, stdout=err, stderr=subprocess.STDOUT,
                                    env=self.env, pass_fds=(write,), start_new_session=True)
        os.close(write)
        return _Worker(proc, read)

    def start_round(self, commands: list[dict]) -> None:
        """Send command i to worker i (starting the workers that are not alive)."""
        while len(self.workers) < len(commands):
            self.workers.append(None)
        for i, command in enumerate(commands):
            w = self.workers[i]
            if w is None or w.proc.poll() is not None:
                if w is not None:
                    os.close(w.reply)
                w = self.workers[i] = self._start()
            w.busy, w.rc, w.buffer = True, None, b""
            w.proc.stdin.write((json.dumps(command) + "\n").encode())
            w.proc.stdin.flush()

    def busy(self) -> list[_Worker]:
        return [w for w in self.workers if w is not None and w.busy]

    def wait(self, timeout: float) -> None:
        """Collect answers for up to `timeout` seconds; a worker that died answers its exit status."""
        busy = self.busy()
        if not busy:
            return
        ready, _, _ = select.select([w.reply for w in busy], [], [], timeout)
        for w in busy:
            if w.reply in ready:
                chunk = os.read(w.reply, 4096)
                w.buffer += chunk
                if b"\n" in w.buffer:
                    w.rc, w.busy = int(json.loads(w.buffer.split(b"\n", 1)[0])["rc"]), False
                    continue
            if w.proc.poll() is not None and w.busy:
                w.rc, w.busy = w.proc.returncode, False

    def interrupt(self, grace_s: float) -> None:
        """SIGINT to every worker's process group, then SIGKILL: the deadline (or Ctrl-C)."""
        for w in self.workers:
            if w is not None and w.proc.poll() is None:
                try:
                    os.killpg(w.proc.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
        until = time.monotonic() + grace_s
        for w in self.workers:
            if w is None:
                continue
            try:
                w.proc.wait(timeout=max(0.1, until - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(w.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                w.proc.wait()
            if w.busy:
                self._drain(w)
                w.rc = w.rc if w.rc is not None else INTERRUPTED
                w.busy = False

    def _drain(self, w: _Worker) -> None:
        while select.select([w.reply], [], [], 0)[0]:
            chunk = os.read(w.reply, 4096)
            if not chunk:
                break
            w.buffer += chunk
        if b"\n" in w.buffer:
            w.rc = int(json.loads(w.buffer.split(b"\n", 1)[0])["rc"])

    def close(self) -> None:
        for w in self.workers:
            if w is None:
                continue
            if w.proc.poll() is None:
                try:
                    w.proc.stdin.close()
                    w.proc.wait(timeout=CLOSE_WAIT_S)
                except (OSError, subprocess.TimeoutExpired):
                    try:
                        os.killpg(w.proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    w.proc.wait()
            os.close(w.reply)
        self.workers = []


def round_rc(codes: list[int]) -> int:
    """One exit status for a round's shards, as pytest would give for the whole round: usage or
    internal errors first, then an interruption, failures, and 5 (nothing collected) only when
    no shard collected anything."""
    for bad in (4, 3):
        if bad in codes:
            return bad
    if any(c < 0 or c > 5 for c in codes):
        return next(c for c in codes if c < 0 or c > 5)  # a worker that died (signal)
    for rc in (INTERRUPTED, 1):
        if rc in codes:
            return rc
    return 5 if codes and all(c == 5 for c in codes) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
