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

On the CPU backend at sizes other than small, a bundled kernel whose registry record names a
`by_size` target (a `BySize`, kept with the op's limits) is wrapped by it: an example up to the
wrapper's work limit runs through the Triton interpreter, a larger one through the torch
implementation with the bundled argument checks (impls/mutants/*.py:reference,
impls/torch_reference.py's algorithm). The session header says so; a counterexample report names
the wrapper, and its replay dispatches the same way.

Each op's sizes (limits per backend and sizes, reference shapes, interpreter work limits) live
with the op (properties/<op>_limits.py), reached through its registry record; this module holds
only what every op uses.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, make_dataclass
from typing import Generic, TypeVar

from kernelprop.core import knobs

SIZES = ("small", "reference", "large")

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
    return knobs.backend.get() == "cuda"


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
    from kernelprop.core.registry import OPS

    return {o.kind: o.by_size for o in OPS if o.by_size}


def resolve_sizes(option: str | None, profile: str | None) -> str:
    """The sizes of this run: the option, else $KERNELPROP_SIZES, else by profile."""
    value = option or knobs.sizes.get() or ("reference" if profile == "nightly" else "small")
    if value not in SIZES:
        raise ValueError(f"--sizes must be one of {SIZES}, got {value!r}")
    return value


def current_sizes() -> str:
    value = knobs.sizes.get() or "small"
    return value if value in SIZES else "small"


def default_target(kind: str, sizes: str, backend: str) -> str | None:
    """The --impl target to use when the user named none: None (the bundled kernel) unless the
    CPU backend must run examples larger than the interpreter affords."""
    return _by_size().get(kind) if backend != "cuda" and sizes != "small" else None


class BySize:
    """The bundled kernel for examples the interpreter affords (work(*args) <= limit), the torch
    implementation (same checks, same recipes) for larger ones. `work_doc` names the work measure
    in the session header."""

    def __init__(self, recipe: str, work, limit: int, small: str, large: str, work_doc: str):
        from kernelprop.core.evidence import resolve

        self.recipe = resolve(recipe)()
        # the fields the bundled kernel varies (the torch implementation takes the same)
        self.accepts_recipe = getattr(resolve(small), "accepts_recipe", True)
        self.work, self.limit, self.small, self.large = work, limit, small, large
        self.work_doc = work_doc

    def pick(self, *args):
        from kernelprop.core.evidence import resolve

        try:
            large = self.work(*args) > self.limit
        except (AttributeError, TypeError, IndexError, ValueError):
            large = False   # arguments the work measure cannot read: the bundled kernel's checks name them
        return resolve(self.large if large else self.small)

    def __call__(self, *args, **kwargs):
        return self.pick(*args)(*args, **kwargs)


def header(sizes: str, backend: str, targets: dict) -> str:
    from kernelprop.core.evidence import resolve

    line = f"kernelprop sizes: {sizes}"
    wrapped = [t for t in targets.values() if t in _by_size().values()]
    if backend != "cuda" and sizes != "small" and wrapped:
        limits = " / ".join(f"{resolve(t).work_doc} = {resolve(t).limit}" for t in dict.fromkeys(wrapped))
        line += (f" (CPU: bundled Triton kernels through the interpreter up to {limits}, the "
                 f"torch implementation impls/mutants/*.py:reference above)")
    return line
