"""Planted bug behind a gate: a correct RMSNorm (impls/torch_reference.py) until the file named
by $KERNELPROP_PLANTED_GATE exists, then the 10-bit rsqrt of rms_norm_rsqrt10.py. It lets
tests/test_fleet.py kill the shared Redis while a fuzz worker is running and only then plant the
bug, so that the failure is found, and must be kept, while the shared database is down."""
import os

from kernelprop.impls.torch_reference import rms_norm as _reference
from tests.planted.rms_norm_rsqrt10 import rms_norm as _rsqrt10


def rms_norm(x, weight=None, *, eps=1e-6, recipe=None):
    gate = os.environ.get("KERNELPROP_PLANTED_GATE")
    planted = bool(gate) and os.path.exists(gate)
    return (_rsqrt10 if planted else _reference)(x, weight, eps=eps, recipe=recipe)


rms_norm.recipe = _reference.recipe
rms_norm.accepts_recipe = False
