"""The hypothesis example database of a run: a local directory, optionally shared with a fleet.

    --database DIR                 a directory database (default .hypothesis/examples)
    --database redis://HOST:PORT/N the local directory (--local-database, default
                                   .hypothesis/examples) multiplexed with hypothesis'
                                   RedisExampleDatabase on that server: every counterexample
                                   any worker finds is replayed by every other one

(or KERNELPROP_DATABASE / KERNELPROP_LOCAL_DATABASE). The `redis` client is an optional extra
(`pip install 'kernelprop[redis]'`).

Opening is strict: a missing client or a server that does not answer PING raises
DatabaseUnavailable naming the cause, so a run stops at its start instead of erroring test by
test. After that the shared part is fail-soft (FailSoftDatabase): when the server dies mid-run
every operation on it becomes a no-op with one warning per outage, the local directory keeps
everything found (it is written first), and saves made during the outage are pushed to the
server once it answers again.
"""
from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from hypothesis.database import (DirectoryBasedExampleDatabase, ExampleDatabase,
                                 MultiplexedDatabase)

from kernelprop.core import knobs

DEFAULT_LOCAL = ".hypothesis/examples"
REDIS_SCHEMES = ("redis", "rediss", "unix")
EXTRA_HINT = "pip install 'kernelprop[redis]' (the optional extra; or: pip install redis)"
CONNECT_TIMEOUT_S = 3.0   # opening and each operation: a dead server must not stall a worker
RETRY_AFTER_S = 20.0      # while the server is down, try it again at most this often
MAX_PENDING = 10_000      # saves kept in memory during an outage, pushed on reconnection


class DatabaseUnavailable(RuntimeError):
    """The example database cannot be opened; the message names the cause."""


class SharedDatabaseWarning(UserWarning):
    """The shared (Redis) example database failed mid-run; the run goes on with the local one."""


@dataclass(frozen=True)
class DatabaseSpec:
    local: str                  # directory of the local DirectoryBasedExampleDatabase
    shared: str | None = None   # redis:// URL of the fleet's shared database, or None

    def describe(self) -> str:
        return self.local if self.shared is None else f"{redact(self.shared)} + {self.local}"


def redact(url: str) -> str:
    """The URL without its password, for logs and reports."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def is_shared(value: str | None) -> bool:
    return bool(value) and "://" in value


def parse_database(value: str | None = None, local: str | None = None) -> DatabaseSpec:
    """DatabaseSpec from a --database value (a directory or a redis URL) and --local-database;
    None falls back to $KERNELPROP_DATABASE / $KERNELPROP_LOCAL_DATABASE, then the default."""
    value = value or knobs.database.get() or DEFAULT_LOCAL
    local = local or knobs.local_database.get() or DEFAULT_LOCAL
    if not is_shared(value):
        return DatabaseSpec(local=value)
    scheme = urlsplit(value).scheme
    if scheme not in REDIS_SCHEMES:
        raise DatabaseUnavailable(f"--database {value!r}: unsupported scheme {scheme!r} "
                                  f"(a directory, or redis://HOST:PORT/N)")
    return DatabaseSpec(local=local, shared=value)


def redis_client(url: str, timeout_s: float = CONNECT_TIMEOUT_S):
    """A redis.Redis for `url` with short timeouts and no retries (FailSoftDatabase decides when
    to try again); DatabaseUnavailable naming the extra when the client is not installed."""
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError as err:
        raise DatabaseUnavailable(f"--database {redact(url)} needs the redis client, which is "
                                  f"not installed ({err}): {EXTRA_HINT}") from err
    return redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s,
                                retry=Retry(NoBackoff(), 0))


def ping(client, url: str) -> None:
    try:
        client.ping()
    except Exception as err:  # redis.ConnectionError, TimeoutError, AuthenticationError, ...
        raise DatabaseUnavailable(f"cannot reach the shared example database {redact(url)}: "
                                  f"{type(err).__name__}: {err}") from err


class FailSoftDatabase(ExampleDatabase):
    """Wraps the shared database: an operation that raises marks it down (one warning and one
    stderr line per outage) and is skipped; while down, fetch finds nothing and saves queue up
    (at most MAX_PENDING) to be pushed when a later operation finds the server back. It is tried
    again at most every RETRY_AFTER_S seconds, so a dead server costs one timeout per interval."""

    def __init__(self, inner: ExampleDatabase, name: str, *, down: str | None = None,
                 retry_after_s: float = RETRY_AFTER_S) -> None:
        super().__init__()
        self.inner = inner
        self.name = redact(name)
        self.retry_after_s = retry_after_s
        self.outages: list[dict] = []  # {"at", "error"} per outage, for run summaries
        self.pending: list[tuple[bytes, bytes]] = []
        self._next_try = 0.0
        self._down = False
        if down is not None:
            self._mark_down(down)

    def __repr__(self) -> str:
        return f"FailSoftDatabase({self.inner!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FailSoftDatabase) and self.inner == other.inner

    @property
    def down(self) -> bool:
        return self._down

    def _mark_down(self, error: str) -> None:
        self._next_try = time.monotonic() + self.retry_after_s
        if self._down:
            return
        self._down = True
        self.outages.append({"at": time.time(), "error": error})
        message = (f"kernelprop: shared example database {self.name} failed ({error}); "
                   f"continuing on the local database only, retrying every "
                   f"{self.retry_after_s:g} s")
        print(message, file=sys.stderr, flush=True)
        warnings.warn(SharedDatabaseWarning(message), stacklevel=3)

    def _reconnect(self) -> bool:
        """While down and due for a try: push the queued saves (they are the probe; with none,
        an empty fetch is), then mark the server back. False when it still fails."""
        if time.monotonic() < self._next_try:
            return False
        try:
            if not self.pending:
                list(self.inner.fetch(b"kernelprop-probe"))
            while self.pending:
                self.inner.save(*self.pending[0])
                self.pending.pop(0)
        except Exception:
            self._next_try = time.monotonic() + self.retry_after_s
            return False
        self._down = False
        print(f"kernelprop: shared example database {self.name} is back; examples saved during "
              f"the outage were pushed to it", file=sys.stderr, flush=True)
        return True

    def _run(self, op, *args):
        """(True, result) or (False, None) when the shared database failed or is down."""
        if self._down and not self._reconnect():
            return False, None
        try:
            return True, op(*args)
        except Exception as err:  # any failure of the shared part must not fail a test
            self._mark_down(f"{type(err).__name__}: {err}")
            return False, None

    def fetch(self, key: bytes):
        ok, values = self._run(lambda k: list(self.inner.fetch(k)), key)
        yield from (values if ok else ())

    def save(self, key: bytes, value: bytes) -> None:
        ok, _ = self._run(self.inner.save, key, value)
        if not ok and len(self.pending) < MAX_PENDING:
            self.pending.append((key, value))

    def delete(self, key: bytes, value: bytes) -> None:
        self._run(self.inner.delete, key, value)

    def move(self, src: bytes, dest: bytes, value: bytes) -> None:
        ok, _ = self._run(self.inner.move, src, dest, value)
        if not ok and len(self.pending) < MAX_PENDING:
            self.pending.append((dest, value))

    def _start_listening(self) -> None:
        self._run(self.inner.add_listener, self._broadcast_change)

    def _stop_listening(self) -> None:
        self._run(self.inner.remove_listener, self._broadcast_change)


_opened: list[FailSoftDatabase] = []  # shared parts opened in this process (for summaries)


def open_database(spec: DatabaseSpec, *, on_error: str = "stop") -> ExampleDatabase:
    """The database `spec` names. on_error="stop": an unreachable server raises
    DatabaseUnavailable; "warn": it starts as down (warning) and is retried later. A missing redis
    client raises in both cases: that is a broken installation, not an outage."""
    if on_error not in ("stop", "warn"):
        raise ValueError(f"on_error must be 'stop' or 'warn', got {on_error!r}")
    local = DirectoryBasedExampleDatabase(spec.local)
    if spec.shared is None:
        return local
    client = redis_client(spec.shared)  # first: names the extra when the client is missing
    from hypothesis.extra.redis import RedisExampleDatabase

    down = None
    try:
        ping(client, spec.shared)
    except DatabaseUnavailable as err:
        if on_error == "stop":
            raise
        down = str(err)
    shared = FailSoftDatabase(RedisExampleDatabase(client), spec.shared, down=down)
    _opened.append(shared)
    return MultiplexedDatabase(local, shared)  # local first: a save lands there before Redis


def outages() -> list[dict]:
    """Outages of the shared databases opened in this process, oldest first."""
    return [dict(o, database=db.name) for db in _opened for o in db.outages]
