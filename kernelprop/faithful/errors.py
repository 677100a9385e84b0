"""What the faithful interpreter raises: an operation it cannot run as the GPU would, and a triton
it was not written for. Neither module imports triton, so callers can catch them cheaply."""
from __future__ import annotations


class CannotCheckOnBackend(Exception):
    """A kernel used an operation the faithful CPU interpreter cannot compute as an NVIDIA GPU does
    (an fp8 conversion, inline asm, an unknown libdevice symbol, a tf32 dot, ...). Not a defect of
    the kernel: the suite reports it once, before any property."""

    def __init__(self, operation: str):
        super().__init__(f"cannot be checked on this backend: {operation}")
        self.operation = operation

    def __reduce__(self):
        return (type(self), (self.operation,))


class UnsupportedTritonVersion(RuntimeError):
    """The installed triton is not the one whose interpreter the faithful patches were written for."""
