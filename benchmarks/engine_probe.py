"""pytest plugin for benchmarks/compare_hypofuzz.py (`-p benchmarks.engine_probe`): logs every
hypothesis test case, whichever engine runs it (hypothesis' own loop under `kp fuzz`, or
HypoFuzz's workers), as one JSON line {"t": wall clock, "status", "property"} to
$KERNELPROP_PROBE_DIR/<pid>.jsonl, through an all-threads observability callback. Shrinking steps
are test cases too, for both engines."""
from __future__ import annotations

import json
import os
import time


def _callback(path: str):
    out = open(path, "a", buffering=1)

    def observe(obs, thread_id=None) -> None:
        if getattr(obs, "type", None) != "test_case":
            return
        out.write(json.dumps({"t": time.time(), "status": getattr(obs, "status", None),
                              "property": getattr(obs, "property", None)}) + "\n")
    return observe


def pytest_configure(config):
    directory = os.environ.get("KERNELPROP_PROBE_DIR")
    if not directory:
        return
    from hypothesis.internal.observability import add_observability_callback

    os.makedirs(directory, exist_ok=True)
    add_observability_callback(_callback(os.path.join(directory, f"{os.getpid()}.jsonl")),
                               all_threads=True)
