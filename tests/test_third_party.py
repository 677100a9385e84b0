"""Third-party Triton kernels verified as their PyPI packages ship them (requirements-plugins.txt,
installed by ./kp with --no-deps): every applicable property of the catalogue, in the ci profile,
against each adapter of impls/third_party/ (docs/plugins.md), exactly as a user runs it:
`pytest properties/... --impl KIND=impls/third_party/FILE.py:CALLABLE`.

A property the adapter's declarations rule out is skipped by the suite with its reason (P13 with
validates_inputs = False, P7 with min_valid_keys = 1, P3/P4/P12 variants without accepts_recipe);
each run must still pass a minimum number of property tests, so a run that skips everything fails.
Every run must pass; a kernel's documented finding is shown by its own fp64 test (SGLang's one-head
path below; docs/plugins.md, "Where they stand").
"""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
THIRD_PARTY = "impls/third_party"
NORM_FILES = ("properties/test_rmsnorm.py", "properties/test_bad_input.py")
NORM_PROPERTIES = "p1_norm or p4a or p4b or p12_scale or p12_impl or p13_bad"
ATTN_FILES = ("properties/test_attention_p1.py", "properties/test_attention_numerics.py",
              "properties/test_attention_semantics.py", "properties/test_attention_memory.py",
              "properties/test_bad_input.py")
# properties that compare the kernel with itself or check exact semantics, and those held to the
# golden's bounds (these need the recipe to describe the kernel's arithmetic)
ATTN_SEMANTICS = "p5_pads or p7 or p8 or p9 or p10 or p11 or p13_bad"
ATTN_NUMERICS = ("p1_kernel or p2_ratio or p3_impl or p5_permuted or p5_dup or p6_neg_inf "
                 "or p6_sink_scaling")


@dataclass(frozen=True)
class Adapter:
    package: str       # the PyPI distribution's import name
    kind: str          # --impl kind
    target: str        # FILE.py:CALLABLE under impls/third_party
    files: tuple       # property files
    properties: str    # -k expression: the properties that call the implementation
    min_passed: int    # property tests a run must pass (the rest skip with their reason)
    classes: str = ""    # -k of the shape classes ci runs ("": every class)

    @property
    def id(self) -> str:
        group = "" if self.kind != "sparse_attention" else ("-numerics" if self.properties == ATTN_NUMERICS
                                                    else "-semantics")
        return self.target.replace(".py:", ".") + group

    def param(self):
        return pytest.param(self, id=self.id)


LIGER = [Adapter("liger_kernel", "rms_norm", f"liger_rms_norm.py:{name}", NORM_FILES,
                 NORM_PROPERTIES, 10)
         for name in ("llama", "llama_offset1", "gemma", "gemma_offset0", "none", "none_offset1")]
LIGER_FUSED = [Adapter("liger_kernel", "fused_add_rms_norm", f"liger_fused_add_rms_norm.py:{name}",
                       ("properties/test_fused.py",), "test_f", 10)
               for name in ("llama", "llama_offset1", "gemma", "gemma_offset0", "none")]
SGLANG_TARGET = "sglang_decode_attention.py:sparse_decode_attention"
SGLANG_GROUPED = "sglang_decode_attention.py:grouped_decode_attention"
# SGLang's kernels take minutes per property on the interpreter, so ci runs them on the plain and
# multi_tile classes (several tiles per split: where the running max matters); the nightly runs
# every class. The one-head path's finding (its scores sum bf16 products) is proved against fp64
# (test_sglang_one_head_scores_sum_bf16_products), not by a catalogue run that can only fail
# (docs/findings/sglang_decode_attention.md).
SGLANG_CI_CLASSES = "plain or multi_tile"
SGLANG = [Adapter("sglang", "sparse_attention", SGLANG_TARGET, ATTN_FILES, ATTN_SEMANTICS, 6,
                  classes=SGLANG_CI_CLASSES),
          Adapter("sglang", "sparse_attention", SGLANG_GROUPED, ATTN_FILES, ATTN_NUMERICS, 8,
                  classes=SGLANG_CI_CLASSES)]



def installed(package: str) -> bool:
    """Whether `package` can be found (without importing it: `import sglang` needs its runtime)."""
    return importlib.util.find_spec(package) is not None


def run_catalogue(adapter: Adapter, *extra: str, timeout: int = 3000) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "KERNELPROP_"))}
    env["PYTHONPATH"] = str(ROOT)
    args = [sys.executable, "-m", "pytest", *adapter.files, "-p", "no:xdist", "-p", "no:cacheprovider",
            "-q", "-rs", "--hypothesis-profile=ci",
            "-k", f"({adapter.properties}) and ({adapter.classes})" if adapter.classes else adapter.properties,
            "--impl", f"{adapter.kind}={THIRD_PARTY}/{adapter.target}", *extra]
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def summary_counts(output: str) -> dict:
    """{"passed": n, "failed": n, "skipped": n, ...} from pytest's last summary line."""
    lines = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed|skipped|error)", line)]
    return {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", lines[-1])} if lines else {}


@pytest.mark.parametrize("adapter", [a.param() for a in LIGER + LIGER_FUSED + SGLANG])
def test_third_party_kernel_passes_the_catalogue(adapter):
    if not installed(adapter.package):
        pytest.skip(reason=f"{adapter.package} is not installed: pip install --no-deps -r requirements-plugins.txt")
    run = run_catalogue(adapter)
    out = run.stdout + run.stderr
    counts = summary_counts(out)
    assert run.returncode == 0 and not counts.get("failed") and not counts.get("error"), out[-6000:]
    assert counts.get("passed", 0) >= adapter.min_passed, out[-6000:]


def test_adapters_declare_what_the_kernels_compute():
    if not installed("liger_kernel"):
        pytest.skip(reason="liger_kernel is not installed: pip install --no-deps -r requirements-plugins.txt")
    from kernelprop.impls.third_party import liger_rms_norm as L

    assert set(L.ADAPTERS) == {f"liger_{m}_offset{o}" for m in ("llama", "gemma", "none") for o in (0, 1)}
    for name, fn in L.ADAPTERS.items():
        r = fn.recipe
        assert r.inv == "rsqrt" and r.out_dtype == "input" and fn.validates_inputs is False
        assert r.round_before_weight == ("llama" in name)
        assert r.compute_dtype == ("promote" if "none" in name else "fp32")
        assert r.weight_offset == float(name[-1])


# %% finding: SGLang's one-head decode path sums bf16-rounded products (docs/findings/sglang_decode_attention.md)

def _attention_fp64(x, bf16_products: bool):
    """SPEC section 2's output in float64 (no tiles, no P rounding, sink in the denominator), with
    the scores either exact (q.k in fp64) or sums of q_d * k_d each rounded once to bf16."""
    import math

    import torch

    from kernelprop.golden.attention_slots import flat_slot_ids

    D = x.q.shape[-1]
    slots = flat_slot_ids(x.ori_block_table, x.cmp_block_table, x.sparse_indices, x.seqused_kv,
                          window=x.window, tokens_per_batch=x.tokens_per_batch,
                          page_size=x.ori_kv.shape[1], ori_pages=x.ori_kv.shape[0],
                          cmp_pages=x.cmp_kv.shape[0])
    keys = slots.rows(x.ori_kv, x.cmp_kv).double()
    prod = x.q.double()[:, :, None, :] * keys[:, None, :, :]   # exact: bf16 x bf16 fits fp64
    if bf16_products:
        prod = prod.to(torch.bfloat16).double()
    s = prod.sum(-1) * (D ** -0.5 if x.softmax_scale is None else x.softmax_scale)
    s = torch.where(slots.valid[:, None, :], s, -math.inf)
    m = s.amax(-1, keepdim=True)
    e = torch.exp(s - m)
    den = e.sum(-1) + torch.exp(x.attn_sink.double()[None, :] - m[..., 0])
    return torch.einsum("thk,tkd->thd", e, keys) / den[..., None]


def _sglang_fp32_output(x):
    """decode_attention_fwd called as the adapter calls it, but with an fp32 `o` (SGLang writes o
    in o's dtype), so the comparison sees the kernel's fp32 result before the bf16 store."""
    import torch

    from kernelprop.faithful import faithful_interpreter
    from kernelprop.impls.third_party import sglang_decode_attention as S

    calls = []
    real = S.decode_kernel.decode_attention_fwd

    def capture(q, k, v, o, *args, **kwargs):
        out = torch.empty(o.shape, dtype=torch.float32)
        real(q, k, v, out, *args, **kwargs)
        calls.append(out)

    S.decode_kernel.decode_attention_fwd = capture
    try:
        with faithful_interpreter():
            x.call(S.sparse_decode_attention)
    finally:
        S.decode_kernel.decode_attention_fwd = real
    return calls[0].double()


@pytest.mark.parametrize("head_dim", [16, 64])
def test_sglang_one_head_scores_sum_bf16_products(head_dim):
    """At one query head per KV head SGLang's stage 1 computes `tl.sum((q[None, :] * k).to(fp32))`:
    each bf16 product is rounded to bf16 before the fp32 sum. Its fp32 output then equals the fp64
    attention of bf16-rounded products to fp32 noise, and is ~10^4 times farther from the exact one,
    which an fp32-scored, fp32-P kernel (the H = 1 path's P is never rounded) would match to fp32
    noise. Two heads take the grouped kernel (tl.dot: exact products) and do not match that model."""
    if not installed("sglang"):
        pytest.skip(reason="sglang is not installed: pip install --no-deps -r requirements-plugins.txt")
    from kernelprop.golden.attention_inputs import AttnCase, make_attn_inputs

    for heads in (1, 2):
        x = make_attn_inputs(AttnCase(seed=1, heads=heads, head_dim=head_dim, topk=40, min_used=4,
                                      min_valid_keys=1, sink="finite"))
        o = _sglang_fp32_output(x)
        truth, model = _attention_fp64(x, False), _attention_fp64(x, True)
        scale = float(truth.abs().max())
        to_model = float((o - model).abs().max()) / scale
        to_truth = float((o - truth).abs().max()) / scale
        if heads == 1:
            assert to_model < 2e-6 and to_truth > 1e-4, (to_model, to_truth)
        else:
            assert to_model > 1e-4, (to_model, to_truth)
