"""`--sizes small|reference|large`: how large the drawn examples get, and which implementation
runs the examples the Triton interpreter cannot afford.

  small      (default) interpreter-sized examples; one example per property of the reference
             decode shape at B=1 (properties.strategies.class_examples)
  reference  the DeepSeek-V4 decode shape class with its full share (B up to 64, S=2, H=64,
             D=512, K=640) and larger plain examples; the nightly profile's default
  large      CUDA: bigger plain limits (D up to 1024, H up to 128) and B up to 128 at the
             reference shape

Selected by the pytest option --sizes, else KERNELPROP_SIZES, else "reference" under the nightly
profile and "small" otherwise. conftest exports the choice as KERNELPROP_SIZES (xdist workers and
properties/strategies.py read it there).

On the CPU backend at sizes other than small, the bundled kernels are wrapped by
`sparse_attention_by_size` / `rms_norm_by_size`: an example up to INTERPRETER_MAX_WORK runs
through the Triton interpreter, a larger one through the torch implementation with the bundled
argument checks (impls/mutants/*.py:reference, impls/torch_reference.py's algorithm). The
session header says so; a counterexample report names the wrapper, and its replay dispatches
the same way.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields, make_dataclass
from typing import Generic, TypeVar

SIZES = ("small", "reference", "large")
ENV = "KERNELPROP_SIZES"
# T*H*K*D (attention) or elements (RMSNorm) up to which the interpreter runs an example: the
# reference shape at T=2 (2*64*640*512 = 42M) takes ~0.65 s a call (measured, 2026-11-27)
INTERPRETER_MAX_WORK = 2 ** 26
INTERPRETER_MAX_NORM_ELEMENTS = 2 ** 20

L = TypeVar("L")


class PositiveLimits:
    """Base of an op's limits type: every field is an upper bound, an int >= 1 (checked at
    construction, the error names the field)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{type(self).__name__}.{f.name} must be a positive int, got {value!r}")


def limits_type(name: str, module: str, doc: str, **defaults: int) -> type:
    """A frozen dataclass `name` (a PositiveLimits) with one int field per keyword, in order, whose
    default is the keyword's value: an op's upper bounds on its drawn Case."""
    cls = make_dataclass(name, [(field, int, value) for field, value in defaults.items()],
                         bases=(PositiveLimits,), frozen=True, namespace={"__doc__": doc})
    cls.__module__ = module
    return cls


def on_cuda() -> bool:
    return os.environ.get("KERNELPROP_BACKEND") == "cuda"


@dataclass(frozen=True)
class SizePresets(Generic[L]):
    """One op's plain-class size limits per backend and --sizes. Each op keeps its own limits type
    and presets next to its strategies; its registry record names them (`Op.limits`)."""

    cpu: L              # Triton interpreter, --sizes small (ci, dev)
    cpu_nightly: L      # Triton interpreter, --sizes reference / large
    cuda: L             # CUDA, --sizes small / reference
    cuda_large: L       # CUDA, --sizes large

    def current(self) -> L:
        """The limits of this run's backend (KERNELPROP_BACKEND) and sizes (KERNELPROP_SIZES)."""
        sizes = current_sizes()
        if on_cuda():
            return self.cuda_large if sizes == "large" else self.cuda
        return self.cpu if sizes == "small" else self.cpu_nightly


def _by_size() -> dict:
    from kernelprop.registry import OPS

    return {o.kind: o.by_size for o in OPS if o.by_size}


def resolve_sizes(option: str | None, profile: str | None) -> str:
    """The sizes of this run: the option, else $KERNELPROP_SIZES, else by profile."""
    value = option or os.environ.get(ENV) or ("reference" if profile == "nightly" else "small")
    if value not in SIZES:
        raise ValueError(f"--sizes must be one of {SIZES}, got {value!r}")
    return value


def current_sizes() -> str:
    value = os.environ.get(ENV) or "small"
    return value if value in SIZES else "small"


def default_target(kind: str, sizes: str, backend: str) -> str | None:
    """The --impl target to use when the user named none: None (the bundled kernel) unless the
    CPU backend must run examples larger than the interpreter affords."""
    return _by_size().get(kind) if backend != "cuda" and sizes != "small" else None


def attention_work(*args) -> int:
    """T*H*D*K of a sparse_decode_attention call (the interpreter's cost)."""
    q, idx = args[0], args[5]
    return q.shape[0] * q.shape[1] * q.shape[2] * idx.shape[-1]


def first_arg_elements(*args) -> int:
    return args[0].numel()


class _BySize:
    """The bundled kernel for examples the interpreter affords (work(*args) <= limit), the torch
    implementation (same checks, same recipes) for larger ones."""

    accepts_recipe = True

    def __init__(self, recipe: str, work, limit: int, small: str, large: str):
        from kernelprop.registry import resolve

        self.recipe = resolve(recipe)()
        self.work, self.limit, self.small, self.large = work, limit, small, large

    def pick(self, *args):
        from kernelprop.registry import resolve

        return resolve(self.large if self.work(*args) > self.limit else self.small)

    def __call__(self, *args, **kwargs):
        return self.pick(*args)(*args, **kwargs)


sparse_attention_by_size = _BySize("kernelprop.golden.recipes:AttnRecipe", attention_work,
                                   INTERPRETER_MAX_WORK, "kernelprop.kernels:sparse_decode_attention",
                                   "kernelprop.impls.mutants.attention:reference")
rms_norm_by_size = _BySize("kernelprop.golden.recipes:NormRecipe", first_arg_elements,
                           INTERPRETER_MAX_NORM_ELEMENTS, "kernelprop.kernels:rms_norm",
                           "kernelprop.impls.mutants.rmsnorm:reference")


def header(sizes: str, backend: str, targets: dict) -> str:
    line = f"kernelprop sizes: {sizes}"
    if backend != "cuda" and sizes != "small" and any(t in _by_size().values() for t in targets.values()):
        line += (f" (CPU: bundled Triton kernels through the interpreter up to T*H*K*D = "
                 f"{INTERPRETER_MAX_WORK} / {INTERPRETER_MAX_NORM_ELEMENTS} RMSNorm elements, the "
                 f"torch implementation impls/mutants/*.py:reference above)")
    return line
