"""Planted backend limit: an RMSNorm whose every call raises kernelprop's CannotCheckOnBackend (the
faithful CPU backend's "cannot be checked on this backend: <operation>"). Where this kernelprop has
no such class yet, a stand-in is installed under that name, so the pre-flight's lookup finds it."""
import kernelprop
from kernelprop.preflight import cannot_check_types

_REAL = cannot_check_types()


class CannotCheckOnBackend(_REAL[0] if _REAL else Exception):
    """Stand-in (a subclass of the real one where it exists)."""


if not _REAL:
    kernelprop.CannotCheckOnBackend = CannotCheckOnBackend


def rms_norm(x, weight=None, *, eps=1e-6):
    raise CannotCheckOnBackend("cannot be checked on this backend: tl.extra.cuda.libdevice.rsqrt "
                               "(planted)")
