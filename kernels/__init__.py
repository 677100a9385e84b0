"""Bundled Triton kernels under test (SPEC sections 6-7): RMSNorm, and every registered op whose
record (kernelprop/registry.py, `bundled`) names a module of this package, e.g. `from
kernelprop.kernels import sparse_decode_attention` (imported on first access).

Import side effect (the only one): on a machine without CUDA, if TRITON_INTERPRET is unset, this
package sets os.environ["TRITON_INTERPRET"] = "1" *before* triton is first imported, so the kernels
run through Triton's CPU interpreter. The variable is read when triton is imported, so it only takes
effect if nothing imported triton earlier; an explicit TRITON_INTERPRET value is never overridden.
"""
import importlib
import os

import torch

if not torch.cuda.is_available() and "TRITON_INTERPRET" not in os.environ:
    os.environ["TRITON_INTERPRET"] = "1"

from kernelprop.golden.recipes import NormRecipe  # noqa: E402  (re-exported: one recipe type)
from kernelprop.kernels.rms_norm import rms_norm  # noqa: E402


def _registered() -> dict:
    """{callable name: module} of the registered ops' bundled kernels living in a module of this
    package (records naming the package itself are imported above), whether this package was
    imported as kernelprop.kernels or, in a clone, as plain `kernels`."""
    from kernelprop.registry import OPS

    package = "kernelprop.kernels."
    refs = (o.bundled.partition(":") for o in OPS)
    return {name: module for module, _, name in refs if module.startswith(package)}


__all__ = ["rms_norm", *_registered(), "NormRecipe"]


def __getattr__(name: str):
    module = _registered().get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
