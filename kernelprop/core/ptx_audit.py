"""The PTX audit: which approximate, flushing, rounding and tensor-core instructions a compiled
kernel contains, and whether the error model covers each (golden.error_model.PTX_FIGURES,
TENSOR_CORE_KINDS; docs/bounds.md#gpu-model).

`audit(ptx)` counts, per instruction stem (the opcode with its rounding / approximation / flush
modifiers, without the operand type), every fp32 arithmetic instruction, every conversion to a
float type with a rounding mode, and every mma / wgmma kind (its accumulator and operand types).
Exact instructions (loads, integer arithmetic, comparisons without .ftz, min/max, upcasts) are not
counted. `uncovered(counts)` lists the stems the error model has no figure for: `./kp compile`
fails on any (kernelprop/commands/compile.py).

`record_launches(fn, call)` runs `call()` with Triton's launch replaced by a recorder (no GPU, no
execution): every kernel launch (JITFunction.run, each autotune config of an Autotuner) is kept
as a `RecordedLaunch` with the kernel, its arguments, constexprs / options and grid, to be compiled
for sm_90a with the same specialization (kernelprop.commands.compile.compile_launch).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from kernelprop.golden.error_model import PTX_FIGURES, TENSOR_CORE_KINDS

# fp32 / fp16 / bf16 arithmetic with a rounding, approximation or flush modifier
_ARITH = re.compile(r"^\s*(?:@!?%\w+\s+)?((?:ex2|lg2|rsqrt|sqrt|rcp|div|sin|cos|tanh|mul|add|sub|fma|mad|max|min)"
                    r"(?:\.(?:approx|full|rn|rz|rm|rp|ftz|sat|nan))*)\.(f32|f16|bf16|f16x2|bf16x2)\b")
# conversions to a float type with a rounding mode: cvt.rn[.ftz][.sat].bf16.f32, cvt.rz.f16x2.f32
_CVT = re.compile(r"^\s*(?:@!?%\w+\s+)?cvt\.(rn|rz|rm|rp|rna)(?:\.ftz)?(?:\.sat)?(?:\.relu)?"
                  r"\.(f32|f16|bf16|f16x2|bf16x2)\.")
_WGMMA = re.compile(r"^\s*wgmma\.mma_async\.\S*?\.m\d+n\d+k(\d+)\.(\w+)\.(\w+)\.(\w+)")
_MMA = re.compile(r"^\s*mma\.sync\.aligned\.m\d+n\d+k(\d+)\.(?:row\.col\.)?(\w+)\.(\w+)\.(\w+)")
# exact operations (no rounding): listed only with .ftz, which flushes their subnormal inputs
_EXACT = ("max", "min")


def _arith_stem(op: str, dtype: str) -> Optional[str]:
    """'mul.rn.ftz' + 'f32' -> 'mul.rn.ftz'; bf16 / f16 arithmetic keeps its type ('mul.rn.bf16');
    plain contractible fp32 'mul' / 'add' (no rounding modifier: ptxas may fuse them into an fma)
    -> 'fma.rn'; an exact min / max without .ftz -> None."""
    base = op.split(".")[0]
    if base in _EXACT:
        return op if ".ftz" in op else None
    if dtype != "f32":
        return f"{op}.{dtype.replace('x2', '')}"
    if op in ("mul", "add", "sub", "fma", "mad"):
        return "fma.rn"                        # .rn by default; contraction gives one rounding
    if op in ("mul.ftz", "add.ftz", "sub.ftz", "fma.ftz"):
        return "fma.rn.ftz"
    return op.replace("mad.", "fma.")


def audit(ptx: str) -> Counter:
    """{instruction stem: count} of the counted instructions in `ptx` (module docstring)."""
    counts: Counter = Counter()
    for line in ptx.splitlines():
        m = _ARITH.match(line)
        if m:
            stem = _arith_stem(m.group(1), m.group(2))
            if stem:
                counts[stem] += 1
            continue
        m = _CVT.match(line)
        if m:
            counts[f"cvt.{m.group(1)}.{m.group(2).replace('x2', '')}"] += 1
            continue
        m = _WGMMA.match(line)
        if m:
            counts[f"wgmma.{m.group(2)}.{m.group(3)}.{m.group(4)} k{m.group(1)}"] += 1
            continue
        m = _MMA.match(line)
        if m:
            counts[f"mma.{m.group(2)}.{m.group(3)}.{m.group(4)} k{m.group(1)}"] += 1
    return counts


# the IEEE operations the table covers without a row of their own: one rounding each
_IEEE_FP32 = ("fma.rn", "mul.rn", "add.rn", "sub.rn", "cvt.rn.f32")


def covered(stem: str) -> bool:
    """Whether the error model has a figure for `stem` (an `audit` key)."""
    if stem in PTX_FIGURES or stem in _IEEE_FP32:
        return True
    kind = stem.split(" ")[0]
    if kind in TENSOR_CORE_KINDS:
        block = stem.split(" k")[-1] if " k" in stem else ""
        return block == "16" or kind.startswith("mma.")   # wgmma: the model's block is k16
    return False


def uncovered(counts: Counter) -> list[str]:
    """The stems of `counts` the error model does not cover (sorted)."""
    return sorted(s for s in counts if not covered(s))


# approximations, flushes, roundings and MMA kinds: what the table shows (plain IEEE fp32 not)
def notable(counts: Counter) -> dict:
    """The counts a reader needs: everything but plain IEEE fp32 arithmetic."""
    return {s: n for s, n in sorted(counts.items()) if s not in _IEEE_FP32}


def summary(counts: Counter) -> str:
    """'ex2.approx x40, div.rn x1, wgmma.f32.bf16.bf16 k16 x24' (notable stems only)."""
    return ", ".join(f"{s} x{n}" for s, n in notable(counts).items()) or "-"


# %% recording the launches of one call (no GPU)

@dataclass
class RecordedLaunch:
    """One kernel launch as JITFunction.run received it, in the shape kernelprop.commands.compile expects
    of a KernelLaunch (kernel, args, constexprs, options, programs)."""

    kernel: Any
    args: tuple
    constexprs: dict
    options: dict = field(default_factory=dict)
    programs: int = 0
    config: str = ""


class _Stop(Exception):
    pass


def _programs(grid, args: tuple, kwargs: dict, kernel) -> int:
    if callable(grid):
        meta = dict(zip(kernel.arg_names, args), **kwargs)
        grid = grid(meta)
    grid = tuple(grid) + (1,) * (3 - len(tuple(grid)))
    n = 1
    for g in grid[:3]:
        n *= int(g)
    return n


def record_launches(call: Callable[[], Any]) -> tuple[list[RecordedLaunch], Optional[str]]:
    """Run `call()` with every Triton launch recorded instead of executed. Returns the launches in
    order and, if the call raised after them (it may read results that were never computed), the
    error text."""
    from triton.runtime.autotuner import Autotuner
    from triton.runtime.jit import JITFunction

    launches: list[RecordedLaunch] = []

    def jit_run(self, *args, grid, warmup=False, **kwargs):
        kwargs = {k: v for k, v in kwargs.items() if k not in ("debug", "instrumentation_mode")}
        launches.append(RecordedLaunch(kernel=self, args=args, constexprs=kwargs,
                                       programs=_programs(grid, args, kwargs, self)))
        return None

    def autotune_run(self, *args, **kwargs):
        # every config is a variant of the kernel (SPEC 8): record each
        for cfg in self.configs:
            self.fn.run(*args, **kwargs, **cfg.all_kwargs())
        return None

    saved = JITFunction.run, Autotuner.run
    JITFunction.run, Autotuner.run = jit_run, autotune_run
    error = None
    try:
        call()
    except Exception as exc:  # noqa: BLE001 (results read after a recorded launch)
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    finally:
        JITFunction.run, Autotuner.run = saved
    return launches, error


# %% the PTX an implementation declares

def declared_ptx(fn, recipe) -> Optional[Counter]:
    """The audit stems an implementation declares for `recipe`'s compiled PTX (None: unknown).

    Its `ptx` attribute: a tuple of `audit` stems (every recipe compiles to those), or a callable
    recipe -> tuple (the lowering depends on the recipe, e.g. RMSNorm's INV variant). What
    `./kp compile` lists for the kernel; the bundled kernels' declarations are checked against
    their compile points' PTX (tests/test_compile.py)."""
    ptx = getattr(fn, "ptx", None)
    if ptx is None:
        return None
    stems = ptx(recipe) if callable(ptx) else ptx
    return Counter({str(s): 1 for s in stems})
