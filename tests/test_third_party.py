"""Third-party Triton kernels verified as their PyPI packages ship them (requirements-plugins.txt,
installed by ./kp with --no-deps): every applicable property of the catalogue, in the ci profile,
against each adapter of impls/third_party/ (docs/plugins.md), exactly as a user runs it:
`pytest properties/... --impl KIND=impls/third_party/FILE.py:CALLABLE`.

A property the adapter's declarations rule out is skipped by the suite with its reason (P13 with
validates_inputs = False, P7 with min_valid_keys = 1, P3/P4/P12 variants without accepts_recipe);
each run must still pass a minimum number of property tests, so a run that skips everything fails.
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
ATTN_PROPERTIES = "p1_kernel or p2_ratio or p3_impl or p5 or p6 or p7 or p8 or p9 or p10 or p11 or p13_bad"


@dataclass(frozen=True)
class Adapter:
    package: str       # the PyPI distribution's import name
    kind: str          # --impl kind
    target: str        # FILE.py:CALLABLE under impls/third_party
    files: tuple       # property files
    properties: str    # -k expression: the properties that call the implementation
    min_passed: int    # property tests a run must pass (the rest skip with their reason)

    @property
    def id(self) -> str:
        return self.target.replace(".py:", ".")


LIGER = [Adapter("liger_kernel", "rms_norm", f"liger_rms_norm.py:{name}", NORM_FILES,
                 NORM_PROPERTIES, 2)
         for name in ("llama", "llama_offset1", "gemma", "gemma_offset0", "none", "none_offset1")]
SGLANG = [Adapter("sglang", "sparse_attention", "sglang_decode_attention.py:sparse_decode_attention",
                  ATTN_FILES, ATTN_PROPERTIES, 11)]


def installed(package: str) -> bool:
    """Whether `package` can be found (without importing it: `import sglang` needs its runtime)."""
    return importlib.util.find_spec(package) is not None


def run_catalogue(adapter: Adapter, *extra: str, timeout: int = 3000) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "KERNELPROP_"))}
    env["PYTHONPATH"] = str(ROOT)
    args = [sys.executable, "-m", "pytest", *adapter.files, "-p", "no:xdist", "-p", "no:cacheprovider",
            "-q", "-rs", "--hypothesis-profile=ci", "-k", adapter.properties,
            "--impl", f"{adapter.kind}={THIRD_PARTY}/{adapter.target}", *extra]
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def summary_counts(output: str) -> dict:
    """{"passed": n, "failed": n, "skipped": n, ...} from pytest's last summary line."""
    lines = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed|skipped|error)", line)]
    return {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", lines[-1])} if lines else {}


@pytest.mark.parametrize("adapter", LIGER + SGLANG, ids=lambda a: a.id)
def test_third_party_kernel_passes_the_catalogue(adapter):
    if not installed(adapter.package):
        pytest.skip(f"{adapter.package} is not installed: pip install --no-deps -r requirements-plugins.txt")
    run = run_catalogue(adapter)
    out = run.stdout + run.stderr
    counts = summary_counts(out)
    assert run.returncode == 0 and not counts.get("failed") and not counts.get("error"), out[-6000:]
    assert counts.get("passed", 0) >= adapter.min_passed, out[-6000:]


def test_adapters_declare_what_the_kernels_compute():
    if not installed("liger_kernel"):
        pytest.skip("liger_kernel is not installed: pip install --no-deps -r requirements-plugins.txt")
    from kernelprop.impls.third_party import liger_rms_norm as L

    assert set(L.ADAPTERS) == {f"liger_{m}_offset{o}" for m in ("llama", "gemma", "none") for o in (0, 1)}
    for name, fn in L.ADAPTERS.items():
        r = fn.recipe
        assert r.inv == "rsqrt" and r.out_dtype == "input" and fn.validates_inputs is False
        assert r.round_before_weight == ("llama" in name)
        assert r.compute_dtype == ("input" if "none" in name else "fp32")
        assert r.weight_offset == float(name[-1])
