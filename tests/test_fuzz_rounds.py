"""Rounds of `kp fuzz`: their sizing (kernelprop.commands.fuzz.next_examples: a third of the time left,
and with a pytest process per round never a round whose restart costs more than RESTART_SHARE of
it), and the long-lived workers (kernelprop.commands.fuzz_worker) that run every round in one process:
the round's example count reaches tests imported in an earlier round, shards partition the
tests, and the deadline's SIGINT ends a round with the interrupted test's record."""
import json
import os
import time
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st

from kernelprop.core import knobs
from kernelprop.commands.fuzz import RESTART_SHARE, next_examples
from kernelprop.commands.fuzz_worker import WorkerPool, round_rc

ROOT = Path(__file__).resolve().parents[1]
PLANTED = "tests/planted/fuzz_rounds_property.py"


def test_round_is_a_third_of_the_time_left_when_restarts_are_cheap():
    # 1 s restart, 90 s of tests for 100 examples; 900 s left: a 300 s round, 299 s of tests
    assert next_examples(100, 91.0, 900.0, False, 90.0) == int(100 * 299 / 90)
    assert next_examples(10, 10.0, 900.0, False, 9.0) == 40  # at most 4x the last round


def test_round_lasts_twenty_restarts_when_a_third_is_too_short():
    # 3 s restart, 31 s of tests for 10 examples, 146 s left: a third (49 s) would spend 6% on the
    # restart, so the round gets 3 / RESTART_SHARE = 60 s: 57 s of tests
    assert next_examples(10, 34.0, 146.0, False, 31.0) == int(10 * (3 / RESTART_SHARE - 3) / 31)
    # a 10 s restart with 90 s left: the round runs to the deadline (90 s), not 200 s
    assert next_examples(40, 30.0, 90.0, False, 20.0) == int(40 * (90 - 10) / 20)


def test_long_lived_workers_are_not_lengthened_for_a_restart():
    # the same round as above in a long-lived worker: a third of the time left (49 s), less the
    # 3 s the round spent outside its tests (the first round's imports)
    assert next_examples(10, 34.0, 146.0, False, 31.0, restarts=False) == \
        int(10 * (146 / 3 - 3) / 31)


def test_round_exit_status_of_shards():
    assert round_rc([0, 0]) == 0
    assert round_rc([0, 5]) == 0          # a shard with nothing left to run
    assert round_rc([5, 5]) == 5
    assert round_rc([1, 0]) == 1
    assert round_rc([2, 1]) == 2          # the deadline
    assert round_rc([0, 4]) == 4
    assert round_rc([0, -9]) == -9        # a worker killed


def _records(stats: Path) -> list[dict]:
    out = []
    for path in sorted(stats.glob("*.jsonl")):
        out += [dict(json.loads(line), file=path.name) for line in path.read_text().splitlines()]
    return out


def _command(tmp: Path, rnd: int, examples: int, select: str, shard: str = "0/1") -> dict:
    return {"argv": [PLANTED, "-p", "kernelprop.commands.fuzz_plugin", "--hypothesis-profile=nightly",
                     "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:unraisableexception",
                     "-q", f"--fuzz-shard={shard}", "-k", select,
                     "--reports-dir", str(tmp / "reports")],
            "env": knobs.env(nightly_examples=examples, fuzz_stats=tmp / f"round-{rnd}",
                             profile="nightly"),
            "log": str(tmp / f"round-{rnd}-{shard.replace('/', 'of')}.log")}


def _pool(tmp: Path, count: int, **extra) -> WorkerPool:
    env = dict(os.environ, **knobs.env(database=tmp / "db", local_database=tmp / "db"), **extra,
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("PYTEST_XDIST_WORKER", None)
    return WorkerPool(count, env, tmp / "workers.log")


def _run(pool: WorkerPool, commands: list[dict], timeout: float = 120.0) -> list[int]:
    pool.start_round(commands)
    until = time.monotonic() + timeout
    while pool.busy() and time.monotonic() < until:
        pool.wait(0.5)
    assert not pool.busy(), "a worker did not answer"
    return [w.rc for w in pool.workers[:len(commands)]]


def test_rounds_run_in_one_process_with_each_rounds_example_count(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    pool = _pool(tmp_path, 1)
    try:
        assert _run(pool, [_command(tmp_path, 0, 3, "test_counted")]) == [0]
        pid = pool.workers[0].proc.pid
        assert _run(pool, [_command(tmp_path, 1, 17, "test_counted")]) == [0]
        assert pool.workers[0].proc.pid == pid   # no restart
    finally:
        pool.close()
    counts = []
    for rnd in (0, 1):
        tests = [r for r in _records(tmp_path / f"round-{rnd}") if r["type"] == "test"]
        assert [r["nodeid"].split("::")[-1] for r in tests] == ["test_counted"]
        assert tests[0]["file"].endswith(f"-{pid}.jsonl")
        counts.append(tests[0]["examples"])
    # hypothesis may stop a test early once it has exhausted its search space; integers never do
    assert counts == [3, 17]


def test_shards_partition_the_tests(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    pool = _pool(tmp_path, 2)
    try:
        rcs = _run(pool, [_command(tmp_path, 0, 2, "test_sharded", f"{i}/2") for i in range(2)])
    finally:
        pool.close()
    assert rcs == [0, 0]
    by_file: dict = {}
    for r in _records(tmp_path / "round-0"):
        if r["type"] == "test":
            by_file.setdefault(r["file"], []).append(r["nodeid"])
    assert len(by_file) == 2                        # two processes
    shards = [set(v) for v in by_file.values()]
    assert all(len(s) == 2 for s in shards) and not shards[0] & shards[1]
    assert {n.split("[")[1] for s in shards for n in s} == {"0]", "1]", "2]", "3]"}


def test_deadline_interrupts_a_round_and_keeps_its_record(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    pool = _pool(tmp_path, 1, KERNELPROP_PLANTED_SLEEP="0.05")
    try:
        pool.start_round([_command(tmp_path, 0, 100000, "test_slow")])
        until = time.monotonic() + 60
        while time.monotonic() < until and not any(
                r["type"] == "progress" for r in _records(tmp_path / "round-0")):
            pool.wait(0.5)
        assert pool.busy()
        pool.interrupt(20.0)
        assert pool.workers[0].rc == 2 and pool.workers[0].proc.poll() is not None
    finally:
        pool.close()
    tests = [r for r in _records(tmp_path / "round-0") if r["type"] == "test"]
    assert len(tests) == 1 and tests[0]["interrupted"] and tests[0]["outcome"] == "interrupted"
    assert tests[0]["examples"] > 0


def test_shape_class_shares_follow_the_profile_current_at_the_call():
    from kernelprop.properties.strategies import over_shape_classes

    def check(shape_class, data):
        pass

    test = over_shape_classes("norm", data=st.data())(check)
    shares = []
    try:
        for n in (1000, 100):
            settings.register_profile("fuzz-rounds-test", max_examples=n)
            settings.load_profile("fuzz-rounds-test")
            shares.append(test.class_settings("plain").max_examples)
    finally:
        settings.load_profile(knobs.profile_active.get() or "dev")
    assert shares[0] > shares[1] >= 2
    assert abs(shares[0] - 10 * shares[1]) <= 10


def test_a_worker_does_not_outlive_its_driver(tmp_path, monkeypatch):
    import subprocess
    import sys

    monkeypatch.chdir(ROOT)
    # a driver process that starts a worker on a slow round, prints its pid, and is then killed
    driver = subprocess.Popen([sys.executable, "-c", (
        "import json, os, sys, time\n"
        "from pathlib import Path\n"
        "sys.path.insert(0, 'tests')\n"
        "from test_fuzz_rounds import _command, _pool\n"
        f"tmp = Path({str(tmp_path)!r})\n"
        "pool = _pool(tmp, 1, KERNELPROP_PLANTED_SLEEP='0.05')\n"
        "pool.start_round([_command(tmp, 0, 100000, 'test_slow')])\n"
        "print(pool.workers[0].proc.pid, flush=True)\n"
        "time.sleep(600)\n")], stdout=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])))
    worker = int(driver.stdout.readline())
    time.sleep(3.0)
    driver.kill()
    driver.wait()
    until = time.monotonic() + 40
    alive = True
    while alive and time.monotonic() < until:
        try:
            os.kill(worker, 0)
            time.sleep(0.5)
        except ProcessLookupError:
            alive = False
    assert not alive, f"worker {worker} outlived its driver"
