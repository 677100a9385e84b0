"""Reports that explain: root causes computed from the evidence, the raised message in every
report, and the pre-flight call.

- The acceptance case: an SGLang-like attention (tests/planted/attention_nan_empty_token.py: NaN on
  a token with no valid key) over the attention catalogue's properties (the plain shape class, one
  pytest subprocess) gives one root cause that covers every report, the others linked to it.
- One test per signature, each on a planted implementation, in process: the P1 outcome and its
  evidence go through kernelprop.core.causes.signature. Each planted kernel also fails the other
  candidates (a candidate tried before the one that holds did not hold), and a correct kernel
  fails none.
- A correct implementation produces no root-cause section.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from kernelprop.core import causes

from kernelprop.commands import preflight

from kernelprop.commands import report as kreport
from kernelprop.core.evidence import Evidence
from kernelprop.golden.attention_inputs import AttnCase, make_attn_inputs
from kernelprop.golden.rmsnorm_inputs import NormCase, NormRecipe, make_norm_inputs
from kernelprop.core.impl import Impl, make_impl
from kernelprop.properties import explain_attention, replays_attention, replays_norm
from kernelprop.core.verdict import check_outcome

ROOT = Path(__file__).resolve().parents[1]
NAN_KEYLESS = "tests/planted/attention_nan_empty_token.py:sparse_decode_attention"
REF_ATTN = "impls/torch_reference.py:sparse_decode_attention"
ATTENTION_CATALOGUE = ("properties/test_attention_p1.py", "properties/test_attention_numerics.py",
                       "properties/test_attention_semantics.py",
                       "properties/test_attention_memory.py")


def _env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "KERNELPROP_", "HYPOTHESIS_"))}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _pytest(reports: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pytest", *args, "--backend", "cpu", "--hypothesis-profile=ci",
           "-p", "no:cacheprovider", "-p", "no:xdist", "--reports-dir", str(reports), "-q"]
    return subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)


# %% the acceptance case

def test_keyless_token_nan_over_the_attention_catalogue_is_one_root_cause(tmp_path):
    reports = tmp_path / "reports"
    run = _pytest(reports, *ATTENTION_CATALOGUE, "-k", "plain", "--impl",
                  f"sparse_attention={NAN_KEYLESS}")
    out = run.stdout + run.stderr
    assert run.returncode == 1, out[-3000:]
    dirs = sorted(p.parent for p in reports.glob("*/*/report.json"))
    titles = {json.loads((d / "report.json").read_text())["check"] for d in dirs}
    assert len(dirs) >= 5 and len(titles) >= 5, out[-3000:]  # many properties fail for one reason

    summary = json.loads((dirs[0].parent / "root-causes.json").read_text())
    assert summary["schema"] == causes.SCHEMA and summary["unexplained"] == []
    [root] = summary["root_causes"]
    assert root["id"] == explain_attention.NAN_ON_KEYLESS.id
    assert "AttnDomain(min_valid_keys=1)" in root["settle"]
    assert root["reports"] == len(dirs) and len(root["titles"]) == len(titles)
    assert sorted([root["primary"], *root["linked"]]) == sorted(str(d) for d in dirs)
    for d in dirs:
        data = json.loads((d / "report.json").read_text())
        assert data["root_cause"]["id"] == root["id"]
        if str(d) != root["primary"]:
            assert data["root_cause"]["primary"] == root["primary"]
            assert f"Same root cause as `{root['primary']}/report.md`" in (d / "report.md").read_text()
    md = (dirs[0].parent / "root-causes.md").read_text()
    assert md.count("\n## 1. ") == 1 and "\n## 2. " not in md

    # the terminal names the cause once and lists only its primary report for replay
    assert out.count("kernelprop root causes") == 1 and f"{len(dirs)} reports, 1 root cause(s)" in out
    assert f"{root['primary']}  (replay:" in out
    assert not any(f"{p}  (replay:" in out for p in root["linked"])
    assert f"(+ {len(root['linked'])} reports linked to a root cause above)" in out


def test_a_correct_implementation_has_no_root_cause_section(tmp_path):
    reports = tmp_path / "reports"
    run = _pytest(reports, "properties/test_attention_p1.py", "properties/test_attention_semantics.py",
                  "-k", "plain and (p1 or p7)", "--impl", f"sparse_attention={REF_ATTN}")
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    assert "passed" in out and "kernelprop root causes" not in out
    assert not list(reports.glob("**/root-causes.*"))


def test_reports_without_a_cause_write_no_root_cause_files(tmp_path):
    run = tmp_path / "run"
    for name in ("a", "b"):
        (run / name).mkdir(parents=True)
        (run / name / "report.json").write_text(json.dumps({"root_cause": None, "failure": {}}))
    found, unexplained = causes.write_root_causes(run, [str(run / "a"), str(run / "b")])
    assert found == [] and len(unexplained) == 2 and not list(run.glob("root-causes.*"))


# %% one test per signature (in process, on the P1 outcome of a planted implementation)

def _p1_signature(kind: str, target: str, inputs, replays, params):
    impl = make_impl(kind, target)
    outcome = replays.p1({"inputs": inputs}, impl, params(impl.recipe))
    ev = Evidence("P1", "impl vs golden", outcome, impl.spec, impl.kind, impl.recipe, None,
                  {"inputs": inputs}, f"{replays.__name__}:p1", params(impl.recipe))
    return check_outcome(outcome).failing, causes.signature(ev, outcome, [])


def _norm(target: str, seed: int = 0):
    return _p1_signature("rms_norm", target, make_norm_inputs(NormCase(seed=seed, rows=4, dim=64)),
                         replays_norm, lambda r: replays_norm.recipe_params(r, "cpu"))


def _norm_candidates_that_hold(target: str, seed: int = 0) -> list[str]:
    """Every alternative recipe whose golden the planted output passes P1 against."""
    impl = make_impl("rms_norm", target)
    x = make_norm_inputs(NormCase(seed=seed, rows=4, dim=64))
    params = replays_norm.recipe_params(impl.recipe, "cpu")
    outcome = replays_norm.p1({"inputs": x}, impl, params)
    ev = Evidence("P1", "p1", outcome, impl.spec, impl.kind, impl.recipe, None, {"inputs": x},
                  "kernelprop.properties.replays_norm:p1", params)
    explain = causes.explain_of("rms_norm")
    return [c.cause.id for c in explain.candidates
            if causes.alternative_holds(c, ev, outcome, explain)]


def _attn(target: str, case: AttnCase):
    return _p1_signature("sparse_attention", target, make_attn_inputs(case), replays_attention,
                         replays_attention.recipe_params)


@pytest.mark.parametrize("planted, cause_id, words", [
    ("rms_norm_rtz", "rms_norm: recipe rounding='rtz'", "truncation (rtz) of the golden's fp32"),
    ("rms_norm_llama_cast", "rms_norm: recipe round_before_weight=True",
     "NormRecipe(round_before_weight=True)"),
    ("rms_norm_gemma_offset", "rms_norm: recipe weight_offset=1.0", "(1 + w)"),
])
def test_norm_recipe_signatures(planted, cause_id, words):
    for seed in range(3):
        failing, cause = _norm(f"tests/planted/{planted}.py:rms_norm", seed)
        assert failing and cause is not None and cause.id == cause_id, cause
        assert words in cause.statement + cause.settle
    # the candidates discriminate: on the same example no other alternative recipe passes
    assert _norm_candidates_that_hold(f"tests/planted/{planted}.py:rms_norm") == [cause_id]


def test_attention_rtz_signature():
    failing, cause = _attn("tests/planted/attention_rtz.py:sparse_decode_attention", AttnCase(seed=0))
    assert failing and cause.id == "attention: recipe rounding='rtz'"
    assert "rounded toward zero" in cause.statement and "rounding='rtz'" in cause.settle


def test_attention_more_exact_than_declared_names_p_dtype():
    failing, cause = _attn("tests/planted/attention_exact_fp32.py:sparse_decode_attention",
                           AttnCase(seed=0))
    assert failing and cause.id == "attention: recipe p_dtype='fp32'"


KEYLESS = AttnCase(seed=3, batches=1, tokens_per_batch=3, heads=2, head_dim=8, page_size=4,
                   window=4, topk=4, max_cmp_len=8, min_used=1, pad_prob=0.8)


def test_nan_on_keyless_tokens_signature():
    x = make_attn_inputs(KEYLESS)
    keyless = explain_attention.keyless_tokens(x)
    assert keyless.any() and not keyless.all()  # the case has both kinds of token
    failing, cause = _attn(NAN_KEYLESS, KEYLESS)
    assert failing and cause == explain_attention.NAN_ON_KEYLESS


def test_nan_on_a_token_with_keys_is_not_the_keyless_cause():
    """tests/planted/attention_nan_token0.py writes NaN on token 0 whatever it sees: on a case
    where token 0 has valid keys the evidence does not support the keyless cause."""
    x = make_attn_inputs(KEYLESS)
    assert not bool(explain_attention.keyless_tokens(x)[0])
    failing, cause = _attn("tests/planted/attention_nan_token0.py:sparse_decode_attention", KEYLESS)
    assert failing and cause is None


def test_fails_only_on_one_autotune_config(monkeypatch):
    """tests/planted/rms_norm_autotune.py truncates in config 1 only: re-run under configs 0 and 2
    the example passes, so the cause names config 1 (the faithful backend's autotune API, or the
    planted module's stand-in of it)."""
    import importlib

    target = "tests/planted/rms_norm_autotune.py:rms_norm"
    planted = importlib.import_module(make_impl("rms_norm", target).fn.__module__)
    monkeypatch.setattr(causes, "autotune_api",
                        lambda: (planted.autotune_choices, planted.autotune_config))
    failing, cause = _norm(target)
    assert failing and cause.id == "autotune: _rms_norm_kernel config 1"
    assert "autotune config 1 of 3: BLOCK=128" in cause.statement and "BLOCK=128" in cause.settle


def test_the_same_exception_is_one_cause_numbers_aside():
    a = causes.signature(None, None, ["RuntimeError: planted crash: 2 rows"])
    b = causes.signature(None, None, ["RuntimeError: planted crash: 17 rows"])
    c = causes.signature(None, None, ["ValueError: head_dim 40 unsupported"])
    assert a.id == b.id != c.id and "planted crash: 2 rows" in a.statement


# %% the raised message in report.md / report.json

def _write_report(tmp_path, monkeypatch, error: BaseException):
    from kernelprop.core import evidence

    monkeypatch.delenv("KERNELPROP_RUN_ID", raising=False)
    x = make_norm_inputs(NormCase(rows=2, dim=3, weight=False))
    evidence.begin()
    evidence.record(Evidence(property_id="P1", check="planted", outcome=None,
                             impl="tests/planted/rms_norm_crash.py:rms_norm", impl_kind="rms_norm",
                             recipe=NormRecipe(), inputs={"inputs": x},
                             replay_fn="tests.planted.norm_replay:norm_p1"))
    config = SimpleNamespace(getoption=lambda name: str(tmp_path))
    item = SimpleNamespace(nodeid="fake.py::test_crash[a]", config=config,
                           iter_markers=lambda name: [SimpleNamespace(args=("P1",))])
    out = kreport.write_failure_report(item, SimpleNamespace(excinfo=SimpleNamespace(value=error)),
                                       SimpleNamespace(longreprtext="", duration=0.1))
    return json.loads((out / "report.json").read_text()), (out / "report.md").read_text()


def test_a_raising_kernel_has_its_message_in_the_report(tmp_path, monkeypatch):
    data, md = _write_report(tmp_path, monkeypatch, RuntimeError("planted crash: 2 rows"))
    assert data["raised"] == ["RuntimeError: planted crash: 2 rows"]
    assert data["failure"]["error"] == "RuntimeError: planted crash: 2 rows"
    assert "- raised: `RuntimeError: planted crash: 2 rows`" in md
    assert data["root_cause"]["id"].startswith("raises: RuntimeError: planted crash")


def test_a_multiple_failures_group_keeps_the_kernels_message(tmp_path, monkeypatch):
    from kernelprop.core.verdict import BaseExceptionGroup

    group = BaseExceptionGroup("Hypothesis found 2 distinct failures.", [
        AssertionError("P1 planted: 3/3 elements exceed the bound"),
        RuntimeError("planted crash: 2 rows")])
    data, md = _write_report(tmp_path, monkeypatch, group)
    assert data["raised"] == ["RuntimeError: planted crash: 2 rows"]
    assert data["failure"]["error"].startswith("RuntimeError: planted crash: 2 rows (one of 2 ")
    assert data["hypothesis"]["multiple_failures"]
    assert "- raised: `RuntimeError: planted crash: 2 rows`" in md


# %% the pre-flight call

def _impl(fn, kind: str = "rms_norm") -> Impl:
    return Impl(kind=kind, spec=f"planted.py:{fn.__name__}", fn=fn, recipe=NormRecipe(),
                accepts_recipe=False)


def test_preflight_import_and_device_errors_are_usage_errors():
    missing = make_impl("rms_norm", "tests/planted/rms_norm_missing_module.py:rms_norm")
    result = preflight.preflight(missing, "cpu")
    assert result.status == "usage" and "ModuleNotFoundError" in result.message
    assert result.message.startswith(
        "--impl rms_norm=tests/planted/rms_norm_missing_module.py:rms_norm cannot run here")

    def no_driver(x, weight=None, *, eps=1e-6):
        raise RuntimeError("Found no NVIDIA driver on your system.")

    assert preflight.preflight(_impl(no_driver), "cpu").status == "usage"


def test_preflight_lets_kernel_bugs_through_to_the_properties():
    def wrong(x, weight=None, *, eps=1e-6):
        raise ValueError("head_dim 16 unsupported")

    assert preflight.preflight(_impl(wrong), "cpu").status == "raised"
    crash = make_impl("rms_norm", "tests/planted/rms_norm_crash.py:rms_norm")  # 2+ rows only
    assert preflight.preflight(crash, "cpu").status == "ok"
    assert preflight.preflight(make_impl("sparse_attention", REF_ATTN), "cpu").status == "ok"


def test_preflight_cannot_check_skips_with_the_reason(monkeypatch):
    real = preflight.cannot_check_types()

    class StandIn(real[0] if real else Exception):
        def __init__(self, operation: str):
            super().__init__(operation if real else f"cannot be checked on this backend: {operation}")

    if not real:
        monkeypatch.setattr(preflight, "cannot_check_types", lambda: (StandIn,))

    def uses_libdevice(x, weight=None, *, eps=1e-6):
        raise RuntimeError("adapter failed") from StandIn("tl.extra.cuda.libdevice.rsqrt")

    result = preflight.preflight(_impl(uses_libdevice), "cpu")
    assert result.status == "skip" and preflight.skip_reason(result).endswith(
        "cannot be checked on this backend: tl.extra.cuda.libdevice.rsqrt")


def test_preflight_in_a_run_gives_one_usage_error_or_skips(tmp_path):
    run = _pytest(tmp_path / "r", "properties/test_rmsnorm.py", "--impl",
                  "rms_norm=tests/planted/rms_norm_missing_module.py:rms_norm")
    out = run.stdout + run.stderr
    assert run.returncode == 4, out[-3000:]  # pytest's usage error
    assert out.count("cannot run here") == 1 and "ModuleNotFoundError" in out
    assert not list((tmp_path / "r").glob("*/*/report.json"))

    run = _pytest(tmp_path / "s", "properties/test_rmsnorm.py", "-k", "p1 or p12", "--impl",
                  "rms_norm=tests/planted/rms_norm_cannot_check.py:rms_norm")
    out = run.stdout + run.stderr
    assert run.returncode == 0 and " skipped" in out and "failed" not in out, out[-3000:]
    assert out.count("cannot be checked on this backend: tl.extra.cuda.libdevice.rsqrt") == 1
    assert "kernelprop pre-flight" in out


def test_root_causes_accumulate_over_rounds_of_one_run_and_link_once(tmp_path):
    """The fuzz command's rounds share a run: a later round groups the earlier reports too, and
    linking a report again replaces its link instead of adding one."""
    run = tmp_path / "run"
    cause = causes.Cause("c", "every thing is wrong", "fix it").to_dict()
    for name, total in (("a", 3), ("b", 1), ("c", 2)):
        (run / name).mkdir(parents=True)
        (run / name / "report.json").write_text(json.dumps({
            "root_cause": cause, "failure": {"total": total}, "property_id": "P1", "check": name}))
        (run / name / "report.md").write_text(f"# P1 failed: {name}\n\nbody\n")
    causes.write_root_causes(run, [str(run / "a")])
    found, unexplained = causes.write_root_causes(run, [str(run / "c")])
    [root] = found
    assert root.primary == str(run / "b") and sorted(root.linked) == [str(run / "a"), str(run / "c")]
    assert unexplained == [] and len(root.titles) == 3
    md = (run / "a" / "report.md").read_text()
    assert md.count("Same root cause as") == 1 and md.startswith("# P1 failed: a\n\n> Same root")
    assert json.loads((run / "c" / "report.json").read_text())["root_cause"]["primary"] == str(run / "b")
