"""`./kp compile --fast` in CI: the reference kernel configs compile for sm_90a without a GPU, with
no spill and shared memory under the sm_90 limit (issue 11). Compiling runs in a child process
(TRITON_INTERPRET=0), so this process keeps its interpreter for the other tests."""
import json
import os
import pathlib
import subprocess
import sys

from kernelprop.commands.compile import SM90_SMEM_LIMIT, CompileRow, fast_points, markdown
from kernelprop.core.ptx_audit import declared_ptx
from kernelprop.core.registry import OPS
from kernelprop.core.evidence import resolve

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_fast_subset_compiles_without_spills(tmp_path):
    """Issue 11 gate: every registered op's fast points (DSV4 attention, D=576 attention, RMSNorm
    D=4096, the DSV4 indexer) compile for sm_90a with 0 spill bytes, no stack frame and <= 227 KiB
    shared memory; the command exits 0. The DSV4
    dots are Hopper wgmma (the transposed layout puts 64 rows on M), and a token's rows are read
    by at most 2 head-block programs (BLOCK_H >= 32: docs/roofline.md). One test, so that xdist
    runs the ~20 s compile once."""
    out = tmp_path / "table.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("TRITON_INTERPRET", None)  # the command sets 0 for its child itself
    proc = subprocess.run([sys.executable, "-m", "kernelprop", "compile", "--fast", "--json", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = json.loads(out.read_text())
    rows = [CompileRow(**r) for r in table["rows"]]
    assert {r.name for r in rows} == {p.name for p in fast_points()}
    for o in OPS:  # each op with compile points has a gated reference row in the CI subset
        assert o.compile_points, f"{o.kind}: no compile_points in its registry record"
        names = {p.name for p in resolve(o.compile_points)("fast") if p.reference}
        assert names and names <= {r.name for r in rows if r.reference}, o.kind
    for r in rows:
        assert r.error is None, r.error
        assert (r.spill_stores, r.spill_loads, r.stack) == (0, 0, 0), r
        assert 0 <= r.shared <= SM90_SMEM_LIMIT, r
        assert 0 < r.registers <= 255, r
    for o in OPS:  # a bundled kernel's declared PTX (P1 on CUDA charges its figures) is its PTX
        declared = declared_ptx(resolve(o.bundled), o.recipe_type())
        names = {p.name for p in resolve(o.compile_points)("fast")}
        for r in rows:
            if declared is not None and r.name in names:
                assert set(r.instructions) == set(declared), (r.name, r.instructions, sorted(declared))
    dsv4 = next(r for r in rows if r.name.startswith("attn dsv4"))
    assert dsv4.wgmma > 0 and dsv4.mma_sync == 0, dsv4
    assert dsv4.programs <= 128 * 2 and "BLOCK_H=32" in dsv4.config, dsv4


def test_gate_flags_spills_smem_and_errors():
    """The gate itself: a reference row with spills, any row over the shared-memory limit and a
    compile error each fail; a clean row and a spilling non-reference row pass."""
    base = dict(name="x", kernel="k", config="c", programs=1, registers=100, spill_stores=0,
                spill_loads=0, stack=0, shared=1024, mma_sync=0, wgmma=1, compile_s=1.0)
    assert CompileRow(**base, reference=True).violations() == []
    assert CompileRow(**{**base, "spill_stores": 8}, reference=False).violations() == []
    assert CompileRow(**{**base, "spill_stores": 8}, reference=True).violations()
    assert CompileRow(**{**base, "shared": SM90_SMEM_LIMIT + 1}).violations()
    assert CompileRow(name="x", kernel="k", config="c", programs=1, error="boom").violations()
    assert "| x |" in markdown([CompileRow(**base)])
