"""pytest plugin of benchmarks/fuzz_targeting.py: picks what the properties target, by
$KP_TARGET_SCORE, so one tree measures all three modes in one interleaved run.

  margin        the suite as it is (kernelprop.verdict.Verdict.score: the margin ratio where the
                bound has a discrete share of bf16 flips, else error/bound)
  error_bound   the former score: the worst |a - e| / bound, which a legitimate flip sets to 1
  untargeted    no target() call at all: hypothesis' targeted phase has nothing to climb
  both          two labelled target() calls where the bound has bf16 flips: the margin and
                error/bound (which still rises with an error inside the flips, where the margin
                is 0); elsewhere the one score, as in margin
The shrink phase is dropped: the first failing example is what is measured.
"""
from __future__ import annotations

import os

import pytest

MODE = os.environ.get("KP_TARGET_SCORE", "margin")

if MODE == "error_bound":
    from kernelprop.verdict import Verdict

    Verdict.score = property(lambda self: self.worst)  # type: ignore[assignment]
    Verdict.score_label = property(  # type: ignore[assignment]
        lambda self: "differing elements" if self.kind == "bitwise" else "error/bound")
elif MODE == "untargeted":
    import kernelprop.properties.checks as checks

    checks.target = lambda *args, **kwargs: None
elif MODE == "both":
    import kernelprop.properties.checks as checks

    _check_outcome, _target = checks.check_outcome, checks.target
    _last: list = [None]

    def _remember(outcome):
        _last[0] = verdict = _check_outcome(outcome)
        return verdict

    def _both(score, label=""):
        _target(score, label=label)
        verdict = _last[0]
        if verdict is not None and verdict.margin is not None and label.endswith("margin"):
            worst = verdict.worst if verdict.worst == verdict.worst and verdict.worst < 1e300 \
                else 1e300
            _target(worst, label=label[: -len("margin")] + "error/bound")

    checks.check_outcome, checks.target = _remember, _both
elif MODE != "margin":
    raise ValueError(f"KP_TARGET_SCORE must be margin, error_bound, both or untargeted, "
                     f"got {MODE!r}")


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    """No shrink phase: the first failing example is what is measured, shrinking it only costs
    wall time (runs after hypothesis' own plugin has loaded the --hypothesis-profile)."""
    from hypothesis import Phase, settings

    current = settings.default
    settings.register_profile("kp_no_shrink", current,
                              phases=[p for p in current.phases if p != Phase.shrink])
    settings.load_profile("kp_no_shrink")

