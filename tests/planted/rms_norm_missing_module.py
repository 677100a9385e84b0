"""Planted environment error: an RMSNorm adapter whose kernel package is not installed (it imports
it on the first call, as lazy adapters do). The pre-flight call must make this one usage error."""


def rms_norm(x, weight=None, *, eps=1e-6):
    import kernelprop_planted_missing_package  # noqa: F401 (not installed anywhere)

    raise AssertionError("unreachable")
