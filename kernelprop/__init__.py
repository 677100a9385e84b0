"""kernelprop's runtime: implementation plug-ins, hypothesis profiles, backend choice, evidence for
counterexample reports, and the command line (`python -m kernelprop replay|fuzz|mutants`).

What an adapter for a third-party kernel needs (docs/plugins.md), importable from here:
  AttnRecipe, NormRecipe, IndexerRecipe   the numerics a callable declares (`fn.recipe = ...`)
  AttnDomain, NormDomain, IndexerDomain   the inputs it supports (`fn.domain = ...`)
  (every op's recipe and domain type and its `exports`, read from the op registry,
  kernelprop/core/registry.py)
  check_attention_args, check_norm_args   the suite's input contract (P13), for adapters
  flat_slot_ids                   block tables + SPEC visibility -> flat slot ids per pool
  (every op's recipe and domain type and its record's `exports`, read from the op registry,
  kernelprop/core/registry.py)
  faithful_interpreter            context: triton's CPU interpreter computing as the GPU does
  CannotCheckOnBackend            raised by a kernel operation that interpreter cannot compute
Names resolve lazily: importing kernelprop imports neither triton nor the bundled kernels.

One namespace: the repo's top-level folders install as kernelprop.kernels, kernelprop.golden,
kernelprop.properties and kernelprop.impls (pyproject's package-dir), so they never clash with
PyPI's unrelated `kernels`. In a clone the folders stay where they are: the repo root is appended
to this package's __path__, so `kernelprop.golden` is the clone's golden/ (no install needed).
"""
from __future__ import annotations

import importlib
from pathlib import Path

_CLONE_ROOT = Path(__file__).resolve().parent.parent
if (_CLONE_ROOT / "pyproject.toml").is_file() and (_CLONE_ROOT / "golden" / "__init__.py").is_file() \
        and not (Path(__file__).resolve().parent / "golden").is_dir():
    __path__.append(str(_CLONE_ROOT))  # noqa: F821 (a package's __path__)

def _op_types() -> dict:
    """{name: module} of every registered op's recipe and domain types and its `exports`."""
    from kernelprop.core.registry import OPS

    return {ref.partition(":")[2]: ref.partition(":")[0] for op in OPS
            for ref in (op.recipe, op.domain, *op.exports)}


_EXPORTS = {
    **_op_types(),
    "faithful_interpreter": "kernelprop.faithful",
    "CannotCheckOnBackend": "kernelprop.faithful.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'kernelprop' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
