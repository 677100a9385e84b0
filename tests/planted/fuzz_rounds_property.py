"""Planted tests for tests/test_fuzz_rounds.py (not collected by `./kp test`: the file name does not
match test_*.py): fast hypothesis tests without their own @settings, so max_examples is the
profile's, which kernelprop.commands.fuzz_worker changes from round to round in one process.
KERNELPROP_PLANTED_SLEEP (seconds per example) slows test_slow down for the deadline test."""
import os
import time

import pytest
from hypothesis import given, strategies as st


@pytest.mark.spec("P0")
@given(st.integers())
def test_counted(x):
    assert isinstance(x, int)


@pytest.mark.spec("P0")
@pytest.mark.parametrize("part", range(4))
@given(st.integers())
def test_sharded(part, x):
    assert isinstance(x, int)


@pytest.mark.spec("P0")
@given(st.integers())
def test_slow(x):
    time.sleep(float(os.environ.get("KERNELPROP_PLANTED_SLEEP", "0")))
