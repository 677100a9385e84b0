"""Bundled Triton kernels under test (SPEC sections 6-7): every registered op whose record
(kernelprop/core/registry.py, `bundled`) names a module of this package, e.g. `from kernelprop.kernels
import sparse_decode_attention` (imported on first access).

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


def _registered() -> dict:
    """{callable name: module} of the registered ops' bundled kernels living in a module of this
    package (whether it was imported as kernelprop.kernels or, in a clone, as plain `kernels`), but
    a callable named as its module: `kernelprop.kernels.<name>` is that module (Python binds a
    submodule to its package once imported), so that callable is imported from the module itself."""
    from kernelprop.core.registry import OPS

    package = "kernelprop.kernels."
    refs = (o.bundled.partition(":") for o in OPS)
    return {name: module for module, _, name in refs
            if module.startswith(package) and module.rpartition(".")[2] != name}


__all__ = [*_registered()]


def __getattr__(name: str):
    module = _registered().get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
