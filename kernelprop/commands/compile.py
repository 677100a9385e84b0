"""`python -m kernelprop compile`: compile every kernel configuration for sm_90a on a CPU machine.

    ./kp compile [--fast] [--only NAME ...] [--json PATH] [--markdown PATH] [-j N]
    ./kp compile --impl KIND=PATH_OR_MODULE:CALLABLE    (a plugged-in kernel's launches)

No GPU and no driver are needed: with TRITON_INTERPRET=0, `triton.compile(ASTSource(...),
target=GPUTarget("cuda", 90, 32))` runs Triton's whole NVIDIA pipeline (ttir, ttgir, llir, PTX,
cubin), and the ptxas bundled with triton reports registers, spills and the stack frame.

One source of truth: each configuration is a `KernelLaunch` built by the wrappers' own launch
functions (e.g. kernels.sparse_attention.attention_launch) from meta tensors of the point's shapes
(`point.launch()`; every registered op's points come from its record's `compile_points`,
kernelprop/core/registry.py), and specialized by Triton's own JIT binder exactly as a launch on
the device would be (integer arguments equal to 1 become constants, values and pointers divisible
by 16 get the divisibility attribute). Without that specialization the numbers differ a lot: the
bundled attention at the DSV4 config compiles to 248 registers and no spills when specialized, but
to 255 registers with 3216 B of spill stores when every integer is a plain i32 (measured here).

Columns: registers per thread, spill stores / loads (bytes per thread), stack frame (bytes), shared
memory (bytes per program, Triton's allocation), static counts of mma.sync / wgmma.mma_async in the
PTX, compile time (Triton pipeline + our ptxas run, fresh cache), the grid's program count, and the
PTX audit (kernelprop/core/ptx_audit.py): every approximate, flushing or rounding instruction and MMA kind,
each of which the CUDA error model must cover (golden.error_model.PTX_FIGURES).
Gates (exit status 1): a compile error anywhere; shared memory over the sm_90 per-block limit
(227 KiB) anywhere; a spill or a stack frame at a reference configuration (`reference=True`); an
instruction the error model does not cover, anywhere.

`--impl KIND=TARGET` audits a plugged-in implementation instead: one call of it on a small case of
its op (its record's `audit_case`) runs with Triton's launches recorded, not executed (ptx_audit.record_launches),
and every recorded launch (each autotune config too) is compiled with the specialization the
recorded arguments give, into the same table.

TRITON_INTERPRET is read when `@triton.jit` decorates a kernel, so this command re-executes itself
in a child process with TRITON_INTERPRET=0 (the calling process, e.g. pytest with the interpreter,
stays as it was).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Optional

ROOT = pathlib.Path(__file__).resolve().parents[2]
if sys.path and pathlib.Path(sys.path[0] or ".").resolve() == pathlib.Path(__file__).resolve().parent:
    sys.path.pop(0)  # run as a script (the child): its folder's modules must not shadow top-level modules
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


SM90_SMEM_LIMIT = 227 * 1024   # bytes of shared memory one block may use on sm_90 (opt-in maximum)
TARGET_ARCH = 90               # compute capability of the target (sm_90a with Triton's NVIDIA backend)


# %% the points: every op's own (its record's compile_points)

def op_points(scope: str) -> list:
    """Every registered op's points of `scope` ("reference", "fast", "sweep"), in registry order."""
    from kernelprop.core.registry import OPS, resolve

    return [p for o in OPS if o.compile_points for p in resolve(o.compile_points)(scope)]


def reference_points() -> list:
    """The gated configurations of every op."""
    return op_points("reference")


def fast_points() -> list:
    """The CI subset."""
    return op_points("fast")


def sweep_points() -> list:
    """Every op's sweep; duplicates of one compiled configuration are removed after
    specialization (see `dedupe`)."""
    return op_points("sweep")


# %% launches built by the wrappers' launch functions on meta tensors

def build_launch(point, device: str = "meta"):
    """The KernelLaunch the wrapper would run for this point (tensor shapes only on "meta")."""
    return point.launch(device)


def specialize(launch):
    """Triton's JIT binder on the launch's arguments: (signature, constexprs, attrs, options),
    what JITFunction.run would hand to triton.compile on a device."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import make_backend
    from triton.runtime.jit import create_function_from_signature

    fn = launch.kernel
    backend = make_backend(GPUTarget("cuda", TARGET_ARCH, 32))
    binder = create_function_from_signature(fn.signature, fn.params, backend)
    kwargs = {**launch.constexprs, **launch.options}
    bound, spec, opts = binder(*launch.args, **kwargs)
    options, signature, constexprs, attrs = fn._pack_args(backend, kwargs, bound, spec, opts)
    return signature, constexprs, attrs, options


def compile_key(launch) -> str:
    """Equal keys compile to the same binary (deduplicates the sweep)."""
    signature, constexprs, attrs, options = specialize(launch)
    return repr((launch.kernel.__name__, signature, sorted(constexprs.items()),
                 sorted(attrs.items()), sorted(options.__dict__.items())))


# %% compile and measure one point

@dataclass(frozen=True)
class CompileRow:
    """One compiled configuration (sizes in bytes; registers per thread)."""

    name: str
    kernel: str
    config: str                    # constexprs and num_warps
    programs: int                  # grid size of the point's launch
    registers: Optional[int] = None
    spill_stores: Optional[int] = None
    spill_loads: Optional[int] = None
    stack: Optional[int] = None
    shared: Optional[int] = None
    mma_sync: Optional[int] = None
    wgmma: Optional[int] = None
    compile_s: Optional[float] = None
    reference: bool = False
    error: Optional[str] = None
    instructions: Optional[dict] = None    # PTX audit: {instruction stem: count} (notable ones)
    uncovered: Optional[list] = None       # stems the error model has no figure for

    def violations(self) -> list[str]:
        """Why this row fails the gate (empty: it passes)."""
        if self.error:
            return [f"compile error: {self.error}"]
        out = []
        if self.shared is not None and self.shared > SM90_SMEM_LIMIT:
            out.append(f"shared memory {self.shared} B > {SM90_SMEM_LIMIT} B (sm_90 per-block limit)")
        if self.reference and (self.spill_stores or self.spill_loads or self.stack):
            out.append(f"spills at a reference config: {self.spill_stores} B stores, "
                       f"{self.spill_loads} B loads, {self.stack} B stack")
        if self.uncovered:
            out.append(f"instructions the error model does not cover: {', '.join(self.uncovered)}")
        return out


_PTXAS_STACK = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_PTXAS_REGS = re.compile(r"Used (\d+) registers")


def ptxas_usage(ptx: str, fp_fusion: bool) -> dict:
    """Registers, spills and stack of `ptx` from the bundled ptxas, with Triton's own flags."""
    from triton.backends.nvidia.compiler import get_ptxas

    ptxas = get_ptxas(TARGET_ARCH).path
    with tempfile.TemporaryDirectory() as tmp:
        src = pathlib.Path(tmp, "k.ptx")
        src.write_text(ptx)
        cmd = [ptxas, "-lineinfo", *([] if fp_fusion else ["--fmad=false"]), "-v",
               f"--gpu-name=sm_{TARGET_ARCH}a", str(src), "-o", str(src.with_suffix(".cubin"))]
        log = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
    stack, stores, loads = (int(v) for v in _PTXAS_STACK.search(log).groups())
    return dict(registers=int(_PTXAS_REGS.search(log).group(1)), spill_stores=stores, spill_loads=loads,
                stack=stack)


def compile_point(point) -> CompileRow:
    return compile_launch(point.name, build_launch(point), point.reference)


def compile_launch(name: str, launch, reference: bool = False) -> CompileRow:
    """Compile one KernelLaunch (or ptx_audit.RecordedLaunch) for sm_90a and measure it."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from kernelprop.core.ptx_audit import audit, notable, uncovered

    config = " ".join(f"{k}={int(v) if isinstance(v, bool) else v}" for k, v in launch.constexprs.items()
                      if k not in ("num_warps", "num_stages"))
    options = {**launch.options, **{k: v for k, v in launch.constexprs.items() if k in ("num_warps", "num_stages")}}
    config += f" num_warps={options.get('num_warps', 4)}"
    if "num_stages" in options:
        config += f" num_stages={options['num_stages']}"
    base = dict(name=name, kernel=launch.kernel.__name__, config=config, programs=launch.programs,
                reference=reference)
    start = time.perf_counter()
    try:
        signature, constexprs, attrs, options = specialize(launch)
        compiled = triton.compile(ASTSource(launch.kernel, signature, constexprs, attrs),
                                  target=GPUTarget("cuda", TARGET_ARCH, 32), options=options.__dict__)
        ptx = compiled.asm["ptx"]
        usage = ptxas_usage(ptx, options.enable_fp_fusion)
    except Exception as exc:  # a compile failure is a row with its message, not a crash
        root = exc
        while root.__cause__ is not None or root.__context__ is not None:
            root = root.__cause__ or root.__context__
        lines = [ln.strip() for ln in str(root).splitlines() if ln.strip().strip("^~ ")]
        return CompileRow(**base, error=f"{type(root).__name__}: {(lines or [''])[-1][:300]}")
    counts = audit(ptx)
    return CompileRow(**base, **usage, shared=int(compiled.metadata.shared),
                      mma_sync=len(re.findall(r"\bmma\.sync\b", ptx)),
                      wgmma=len(re.findall(r"\bwgmma\.mma_async\b", ptx)),
                      compile_s=round(time.perf_counter() - start, 2),
                      instructions=notable(counts), uncovered=uncovered(counts))


def dedupe(points: list) -> list:
    """Keep the first point of each distinct compiled configuration (references first)."""
    seen, out = set(), []
    for p in sorted(points, key=lambda p: not p.reference):
        key = compile_key(build_launch(p))
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


# %% table

def markdown(rows: list[CompileRow]) -> str:
    head = ("| config point | constexprs | programs | regs | spill st/ld B | stack B | smem KiB | "
            "mma.sync | wgmma | compile s | approximate / flushing / rounding instructions | gate |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        gate = "; ".join(r.violations()) or ("ok (ref)" if r.reference else "ok")
        if r.error:
            lines.append(f"| {r.name} | {r.config} | {r.programs} | - | - | - | - | - | - | - | - | {gate} |")
            continue
        instr = ", ".join(f"{s} x{n}" for s, n in (r.instructions or {}).items()) or "-"
        lines.append(f"| {r.name} | {r.config} | {r.programs} | {r.registers} | {r.spill_stores}/{r.spill_loads}"
                     f" | {r.stack} | {r.shared / 1024:.1f} | {r.mma_sync} | {r.wgmma} | {r.compile_s} | {instr}"
                     f" | {gate} |")
    return "\n".join(lines)


def impl_rows(kind: str, target: str) -> list[CompileRow]:
    """Compile every launch one call of `target` (an --impl of `kind`) makes on its op's audit case
    (the registry record's `audit_case`)."""
    from kernelprop.core.impl import make_impl
    from kernelprop.core.ptx_audit import record_launches
    from kernelprop.core.registry import op, resolve

    impl = make_impl(kind, target)
    record = op(kind)
    if not record.audit_case:
        raise ValueError(f"--impl {kind}: its registry record names no audit case")
    inputs = resolve(record.make_inputs)(resolve(record.audit_case)())
    launches, error = record_launches(lambda: inputs.call(impl))
    if not launches:
        raise ValueError(f"--impl {kind}={target}: one call launched no Triton kernel"
                         + (f" ({error})" if error else ""))
    return [compile_launch(f"{kind} launch {i} ({launch.kernel.__name__})", launch)
            for i, launch in enumerate(launches)]


def _print_models(kind: str, rows: list[CompileRow]) -> None:
    """The CUDA figures each launch's PTX calls for (the record's `ptx_model`): what P1 on a GPU
    must allow this kernel."""
    from collections import Counter

    from kernelprop.core.registry import op, resolve

    record = op(kind)
    if not record.ptx_model:
        return
    line = resolve(record.ptx_model)
    for r in rows:
        if r.instructions is not None:
            print(f"{r.name}: CUDA figures from its PTX: {line(Counter(r.instructions))}")


def _child_main(args) -> int:
    import multiprocessing

    if args.impl:
        kind, _, target = args.impl.partition("=")
        print(f"kp compile: the launches of {args.impl} for sm_{TARGET_ARCH}a", flush=True)
        rows = impl_rows(kind, target)
        code = _finish(rows, args)
        _print_models(kind, rows)
        return code
    if args.fast:
        points = fast_points()
    elif args.reference:
        points = reference_points()
    else:
        points = sweep_points()
    if args.only:
        points = [p for p in points if any(s in p.name for s in args.only)]
    points = dedupe(points)
    print(f"kp compile: {len(points)} configurations for sm_{TARGET_ARCH}a "
          f"(triton's pipeline + ptxas, {args.jobs} workers)", flush=True)
    if args.jobs > 1 and len(points) > 1:
        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            rows = pool.map(compile_point, points, chunksize=1)
    else:
        rows = [compile_point(p) for p in points]
    return _finish(rows, args)


def _finish(rows: list[CompileRow], args) -> int:
    table = markdown(rows)
    print(table)
    if args.markdown:
        pathlib.Path(args.markdown).write_text(table + "\n")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(
            {"target": f"sm_{TARGET_ARCH}a", "smem_limit": SM90_SMEM_LIMIT,
             "rows": [asdict(r) for r in rows]}, indent=1))
    bad = [(r.name, v) for r in rows for v in r.violations()]
    for name, why in bad:
        print(f"FAIL {name}: {why}")
    return 1 if bad else 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="kp compile", description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="the CI subset (every op's fast points)")
    parser.add_argument("--reference", action="store_true", help="only the gated reference configs")
    parser.add_argument("--only", nargs="*", help="keep points whose name contains one of these")
    parser.add_argument("--json", help="write the table as JSON here")
    parser.add_argument("--markdown", help="write the table as markdown here")
    parser.add_argument("-j", "--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--impl", help="KIND=PATH_OR_MODULE:CALLABLE: audit the launches of one call of it")
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") != "0" or "triton" in sys.modules:
        # a fresh Triton cache unless the caller names one: compile times are real compiles
        with tempfile.TemporaryDirectory(prefix="kp-compile-cache-") as cache:
            env = dict(os.environ, TRITON_INTERPRET="0", PYTHONPATH=str(ROOT))
            env.setdefault("TRITON_CACHE_DIR", cache)
            return subprocess.call([sys.executable, str(pathlib.Path(__file__).resolve()), *argv], env=env)
    return _child_main(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
