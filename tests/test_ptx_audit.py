"""The PTX audit (kernelprop/core/ptx_audit.py) on fixture PTX: what it counts, what the error model
covers, and the compile gate on an uncovered instruction (fast: no compilation)."""
from kernelprop.commands.compile import CompileRow, markdown
from kernelprop.core.ptx_audit import audit, covered, notable, summary, uncovered

FIXTURE = """
.version 8.7
.target sm_90a
	mul.rn.f32 	%r5, %r4, 0f3FB8AA3B;
	ex2.approx.f32 	%r6, %r5;
	ex2.approx.ftz.f32 	%r7, %r5;
	@%p1 rsqrt.approx.ftz.f32 	%r8, %r7;
	sqrt.approx.ftz.f32 	%r9, %r7;
	div.full.f32 	%r10, %r11, %r9;
	div.rn.f32 	%r12, %r11, %r9;
	fma.rn.ftz.f32 	%r13, %r1, %r2, %r3;
	add.f32 	%r14, %r1, %r2;
	max.f32 	%r15, %r1, %r2;
	max.ftz.f32 	%r16, %r1, %r2;
	cvt.rn.bf16x2.f32 	%r17, %r1, %r2;
	cvt.rz.bf16.f32 	%rs1, %r1;
	cvt.f32.bf16 	%r18, %rs1;
	wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {%r1, %r2}, %rd1, %rd2, p, 1, 1, 0, 1;
	mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%r1, %r2, %r3, %r4}, {%r5, %r6}, {%r7}, {%r8, %r9, %r10, %r11};
	wgmma.mma_async.sync.aligned.m64n32k8.f32.tf32.tf32 {%r1, %r2}, %rd1, %rd2, p, 1, 1;
	lg2.approx.f32 	%r19, %r1;
"""


def test_audit_counts_each_instruction_kind():
    counts = audit(FIXTURE)
    assert counts["ex2.approx"] == 1 and counts["ex2.approx.ftz"] == 1
    assert counts["rsqrt.approx.ftz"] == 1                     # predicated instructions count too
    assert counts["sqrt.approx.ftz"] == 1 and counts["div.full"] == 1 and counts["div.rn"] == 1
    assert counts["fma.rn.ftz"] == 1
    assert counts["fma.rn"] == 1 and counts["mul.rn"] == 1      # a contractible add.f32 -> fma.rn
    assert counts["max.ftz"] == 1 and "max" not in counts        # exact max: only with .ftz
    assert counts["cvt.rn.bf16"] == 1 and counts["cvt.rz.bf16"] == 1
    assert "cvt.f32" not in " ".join(counts)                    # the exact upcast is not counted
    assert counts["wgmma.f32.bf16.bf16 k16"] == 1 and counts["mma.f32.bf16.bf16 k16"] == 1
    assert counts["wgmma.f32.tf32.tf32 k8"] == 1 and counts["lg2.approx"] == 1


def test_uncovered_names_what_the_model_lacks():
    """tf32 MMA, lg2.approx and an .ftz max have no figure in golden.error_model: uncovered; every
    instruction the bundled kernels compile to is covered."""
    assert uncovered(audit(FIXTURE)) == ["lg2.approx", "max.ftz", "wgmma.f32.tf32.tf32 k8"]
    for stem in ("ex2.approx", "rsqrt.approx.ftz", "sqrt.approx.ftz", "div.full", "div.rn",
                 "cvt.rn.bf16", "wgmma.f32.bf16.bf16 k16", "mma.f32.bf16.bf16 k16", "fma.rn.ftz"):
        assert covered(stem), stem
    assert not covered("wgmma.f32.bf16.bf16 k32")   # the model's block is 16


def test_summary_lists_only_notable_instructions():
    counts = audit(FIXTURE)
    assert "fma.rn x" not in summary(counts) and "mul.rn" not in notable(counts)
    assert "ex2.approx x1" in summary(counts)


def test_compile_gate_fails_on_an_uncovered_instruction():
    base = dict(name="k", kernel="k", config="", programs=1, registers=32, spill_stores=0,
                spill_loads=0, stack=0, shared=0, mma_sync=0, wgmma=1, compile_s=0.1)
    counts = audit(FIXTURE)
    bad = CompileRow(**base, instructions=notable(counts), uncovered=uncovered(counts))
    assert any("does not cover: lg2.approx" in v for v in bad.violations())
    good = CompileRow(**base, instructions={"ex2.approx": 1}, uncovered=[])
    assert good.violations() == []
    table = markdown([bad, good])
    assert "ex2.approx x1" in table and "does not cover" in table


def test_impl_audit_of_liger_rms_norm(tmp_path):
    """`./kp compile --impl` on Liger-Kernel's RMSNorm (PyPI, when installed): one call's launch is
    recorded (not executed), compiled for sm_90a with its specialization, 0 spills, and every
    instruction covered (libdevice rsqrt = rsqrt.approx.ftz, `/` = div.full)."""
    import json
    import os
    import pathlib
    import subprocess
    import sys

    import pytest

    pytest.importorskip("liger_kernel")
    root = pathlib.Path(__file__).resolve().parents[1]
    out = tmp_path / "impl.json"
    env = dict(os.environ, PYTHONPATH=str(root))
    env.pop("TRITON_INTERPRET", None)
    proc = subprocess.run([sys.executable, "-m", "kernelprop", "compile", "--impl",
                           "rms_norm=tests/planted/liger_rms_norm_audit.py:rms_norm", "--json", str(out)],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [CompileRow(**r) for r in json.loads(out.read_text())["rows"]]
    assert [r.kernel for r in rows] == ["_rms_norm_forward_kernel"]
    r = rows[0]
    assert (r.spill_stores, r.spill_loads, r.stack) == (0, 0, 0) and r.uncovered == []
    assert r.instructions.get("rsqrt.approx.ftz") == 1 and "BLOCK_SIZE=4096" in r.config


def test_models_selected_from_the_ptx():
    """The CUDA figures a kernel's PTX calls for: the bundled attention (wgmma, ex2.approx, div.rn)
    gets CUDA_MODEL; a flushing ex2 or libdevice .ftz code turns ftz on; no MMA gives the fp32 dot
    model; a `/` (div.full) gives 5u divisions. RMSNorm: Liger (rsqrt.approx.ftz, div.full) 1.072
    and 5u; the bundled recip_sqrt (sqrt.approx.ftz, div.full, div.rn) 3.5; sqrt.rn + div.rn 1."""
    from collections import Counter

    from kernelprop.golden.attention_bounds import CUDA_MODEL
    from kernelprop.golden.attention_bounds import cuda_model_for_ptx as attention_backend_for
    from kernelprop.golden.rmsnorm_bounds import cuda_figures_for_ptx as norm_figures_for

    bundled = Counter({"ex2.approx": 40, "div.rn": 64, "cvt.rn.bf16": 8, "wgmma.f32.bf16.bf16 k16": 80})
    assert attention_backend_for(bundled) == CUDA_MODEL.__class__(**{**CUDA_MODEL.__dict__, "div_units": 1.0})
    sglang = Counter({"ex2.approx": 6, "div.full": 64, "fma.rn.ftz": 24, "mma.f32.bf16.bf16 k16": 64})
    m = attention_backend_for(sglang)
    assert m.ftz and m.div_units == 5.0 and m.tensor_core is not None
    m = attention_backend_for(Counter({"ex2.approx": 1, "div.rn": 1}))
    assert m.tensor_core is None and m.dot_order == "random" and not m.ftz
    inv, div = norm_figures_for(Counter({"rsqrt.approx.ftz": 1, "div.full": 1, "cvt.rn.bf16": 24}))
    assert abs(inv - 2 ** 0.1) < 1e-12 and div == 5.0
    assert norm_figures_for(Counter({"sqrt.approx.ftz": 1, "div.full": 1, "div.rn": 1}))[0] == 3.5
    assert norm_figures_for(Counter({"sqrt.rn": 1, "div.rn": 2})) == (1.0, 1.0)
