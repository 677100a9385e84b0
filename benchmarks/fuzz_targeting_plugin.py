"""pytest plugin of benchmarks/fuzz_targeting.py: picks what the properties target, by
$KP_TARGET_SCORE, so one tree measures all four modes in one interleaved run.

  both          the suite as it is: Verdict.score (the margin ratio where the bound has a
                discrete share of bf16 flips, else error/bound) and, beside a margin,
                Verdict.steering (error/bound, which still rises with an error inside the flips)
  margin        Verdict.score alone
  error_bound   the former score: the worst |a - e| / bound, which a legitimate flip sets to 1
  untargeted    no target() call at all: hypothesis' targeted phase has nothing to climb
The shrink phase is dropped: the first failing example is what is measured.
"""
from __future__ import annotations

import os

import pytest

MODE = os.environ.get("KP_TARGET_SCORE", "both")

if MODE not in ("both", "margin", "error_bound", "untargeted"):
    raise ValueError(f"KP_TARGET_SCORE must be both, margin, error_bound or untargeted, "
                     f"got {MODE!r}")
if MODE == "error_bound":
    from kernelprop.core.verdict import Verdict

    Verdict.score = property(lambda self: self.worst)  # type: ignore[assignment]
    Verdict.score_label = property(  # type: ignore[assignment]
        lambda self: "differing elements" if self.kind == "bitwise" else "error/bound")
if MODE in ("margin", "error_bound"):
    from kernelprop.core.verdict import Verdict

    Verdict.steering = property(lambda self: None)  # type: ignore[assignment]
elif MODE == "untargeted":
    import kernelprop.properties.checks as checks

    checks.target = lambda *args, **kwargs: None


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    """No shrink phase: the first failing example is what is measured, shrinking it only costs
    wall time (runs after hypothesis' own plugin has loaded the --hypothesis-profile)."""
    from hypothesis import Phase, settings

    current = settings.default
    settings.register_profile("kp_no_shrink", current,
                              phases=[p for p in current.phases if p != Phase.shrink])
    settings.load_profile("kp_no_shrink")

