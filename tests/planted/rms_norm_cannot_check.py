"""Planted backend limit: an RMSNorm whose every call raises kernelprop's CannotCheckOnBackend (the
faithful CPU backend's "cannot be checked on this backend: <operation>"). Where this kernelprop has
no such class yet, a stand-in with the same constructor is installed under that name, so the
pre-flight's lookup finds it."""
import kernelprop
from kernelprop.commands.preflight import cannot_check_types

_REAL = cannot_check_types()

if _REAL:
    CannotCheckOnBackend = _REAL[0]
else:
    class CannotCheckOnBackend(Exception):
        """Stand-in: CannotCheckOnBackend(operation), message "cannot be checked on this backend:
        <operation>"."""

        def __init__(self, operation: str):
            super().__init__(f"cannot be checked on this backend: {operation}")
            self.operation = operation

    kernelprop.CannotCheckOnBackend = CannotCheckOnBackend


def rms_norm(x, weight=None, *, eps=1e-6):
    raise CannotCheckOnBackend("tl.extra.cuda.libdevice.rsqrt (planted)")
