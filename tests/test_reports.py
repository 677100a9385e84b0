"""Counterexample reports and replay, end to end, on planted bugs (tests/planted/).

A subprocess runs pytest on one property with `--impl` pointing at a planted failing
implementation; the failure must leave reports/<run-id>/<test-id>/ with report.md, report.json and
inputs.pt, list it in the terminal summary, hold a *shrunk* counterexample, and replay with
`python -m kernelprop replay`: exit 1 against the planted bug (without importing hypothesis),
exit 0 against a correct implementation. The two heavy tests each run one pytest subprocess
(ci profile, CPU interpreter), so the file stays well under 90 s.

Expected shrinks (ci profile: derandomized, so these are stable for a given hypothesis version):
- attention P1 vs P rounded toward zero: one token (T = 1), heads <= 3 (3 is the first of the
  strategy's favourite head counts, a one_of branch the shrinker does not leave), head_dim 1, and
  exactly 2 valid keys: with one key P = exp(0) = 1 is exact, so no rounding mode can differ; two
  is the fewest keys that show the bug. The recipe shrinks to the default (tile 64, rne).
- RMSNorm P1 vs a 10-bit rsqrt (a planted property, rows layout): one row of a few columns
  (measured: dim 5), no weight. A 10-bit INV is off by up to 2^-11 relative, which moves a bf16
  output (8 bits) across a rounding boundary only for some values: a handful of columns suffices.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import torch

from kernelprop.golden.attention_inputs import AttnInputs
from kernelprop.golden.rmsnorm_inputs import NormInputs
from kernelprop.commands import replay as replay_cli
from kernelprop.commands import report as kreport

ROOT = Path(__file__).resolve().parents[1]
RTZ = "tests/planted/attention_rtz.py:sparse_decode_attention"
RSQRT10 = "tests/planted/rms_norm_rsqrt10.py:rms_norm"
REF_ATTN = "impls/torch_reference.py:sparse_decode_attention"
REF_NORM = "impls/torch_reference.py:rms_norm"
P1 = "properties/test_attention_p1.py"
NORM_PROPERTY = "tests/planted/norm_property.py"


def _env() -> dict:
    """The caller's environment without this session's pytest/xdist/kernelprop state."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "KERNELPROP_", "HYPOTHESIS_"))}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _pytest(reports: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pytest", *args, "--backend", "cpu", "--hypothesis-profile=ci",
           "-p", "no:cacheprovider", "--reports-dir", str(reports), "-q"]
    return subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=240)


def _report_dirs(reports: Path) -> list[Path]:
    return sorted(p.parent for p in reports.glob("*/*/report.json"))


def _replay(report: Path, *extra: str) -> int:
    return replay_cli.main([str(report / "report.json"), *extra])


def test_planted_attention_bug_gives_a_shrunk_report_that_replays(tmp_path, capsys):
    reports = tmp_path / "reports"
    run = _pytest(reports, f"{P1}::test_p1_kernel_matches_golden[plain]", "--impl",
                  f"sparse_attention={RTZ}")
    out = run.stdout + run.stderr
    assert run.returncode == 1, out[-3000:]
    dirs = _report_dirs(reports)
    assert len(dirs) == 1, out[-3000:]
    rdir = dirs[0]
    assert {p.name for p in rdir.iterdir()} >= {"report.md", "report.json", "inputs.pt"}
    assert rdir.parent.parent == reports and rdir.name == \
        "properties.test_attention_p1.py__test_p1_kernel_matches_golden_plain_"
    # pytest's terminal summary lists the report and its replay command
    assert "kernelprop counterexample reports" in out and str(rdir) in out

    data = json.loads((rdir / "report.json").read_text())
    assert data["schema"] == kreport.SCHEMA
    assert data["nodeid"] == f"{P1}::test_p1_kernel_matches_golden[plain]"
    assert data["property_id"] == "P1" and data["spec_marks"] == ["P1"]
    assert data["impl"]["kind"] == "sparse_attention" and data["impl"]["spec"] == RTZ
    assert data["impl"]["declared_recipe"]["rounding"] == "rne"
    failure = data["failure"]
    assert failure["kind"] == "bound" and failure["failing"] and float(failure["worst"]) > 1
    assert failure["violations"] >= 1 and len(failure["index"]) == 3
    assert failure["truth"] is not None  # kernel, golden and fp64 truth at the worst element
    assert data["bound_doc"].startswith("P1:")
    m = data["metrics"]
    assert m["error"]["max_abs_index"] is not None and m["truth_at_worst"] is not None
    assert m["max_ulp_fp32"] > 0 and 0 <= m["bf16_mismatch"]["ratio"] <= 1
    assert 0.99 < m["cosine"] <= 1
    env = data["environment"]
    assert env["backend"] == "cpu" and "interpreter" in env["device"].lower()
    assert set(env["versions"]) >= {"python", "torch", "triton", "hypothesis"}
    hyp = data["hypothesis"]
    assert hyp["blob"].startswith("b'") and hyp["decorator"].startswith("@reproduce_failure(")
    assert data["replay"]["function"] == "kernelprop.properties.replays_attention:p1"
    assert data["replay"]["command"] == f"python -m kernelprop replay {rdir / 'report.json'}"
    md = (rdir / "report.md").read_text()
    for text in ("# P1 failed", data["replay"]["command"], hyp["decorator"], "## Shrunk input",
                 "fp64 truth", "cosine", "bfloat16 mismatch", "torch 2."):
        assert text in md

    # the counterexample is shrunk (see the module docstring for why these are the minima)
    case, recipe = data["case"], data["recipe"]
    assert case["batches"] * case["tokens_per_batch"] == 1
    assert case["heads"] <= 3 and case["head_dim"] == 1
    # 2 keys is the least that shows the bug (one key has P = exp(0) = 1, exact in every rounding);
    # the shrinker may stop one key above it: shrinking the window re-draws the seeded data, and
    # the smaller window's data need not fail.
    assert data["inputs"]["inputs"]["valid_per_token"][0] in (2, 3)
    assert recipe == {"tile": 64, "tiling": "positional", "p_dtype": "bf16",
                      "l_from": "rounded", "rounding": "rne", "out_dtype": "fp32",
                      "kv_splits": None, "split_align": 1, "p_max": "tile"}

    # the tensors load without pickled code and rebuild the same inputs
    saved = torch.load(rdir / "inputs.pt", weights_only=True)
    entry = saved["inputs"]["inputs"]
    assert entry["type"] == "kernelprop.golden.attention_inputs:AttnInputs"
    x = AttnInputs.from_state_dict(entry["state"])
    assert x.sparse_indices.tolist() == data["inputs"]["inputs"]["sparse_indices"]["values"]
    assert saved["outcome"]["actual"].shape == x.q.shape

    # replay in a fresh interpreter where importing hypothesis fails: still fails -> exit 1
    blocked = ("import sys; sys.modules['hypothesis'] = None; "
               "from kernelprop.__main__ import main; sys.exit(main(sys.argv[1:]))")
    rep = subprocess.run([sys.executable, "-c", blocked, "replay", str(rdir / "report.json"),
                          "--backend", "cpu"], cwd=tmp_path, env=_env(), capture_output=True,
                         text=True, timeout=120)
    assert rep.returncode == 1, rep.stdout + rep.stderr
    assert "STILL FAILS" in rep.stdout and f"{float(failure['worst']):.4g}" in rep.stdout

    # against correct implementations the same counterexample passes -> exit 0
    capsys.readouterr()
    assert _replay(rdir, "--impl", f"sparse_attention={REF_ATTN}") == 0
    assert _replay(rdir, "--impl", "sparse_attention=kernels:sparse_decode_attention") == 0
    assert "PASSES" in capsys.readouterr().out
    assert _replay(rdir) == 1  # and in-process against the planted bug again


def test_xdist_workers_write_distinct_reports_under_one_run(tmp_path, capsys):
    reports = tmp_path / "reports"
    run = _pytest(reports, NORM_PROPERTY, "-n", "2", "--impl", f"rms_norm={RSQRT10}")
    out = run.stdout + run.stderr
    assert run.returncode == 1, out[-3000:]
    dirs = _report_dirs(reports)
    assert len(dirs) == 2, out[-3000:]
    assert len({d.parent for d in dirs}) == 1  # one run id for the whole session
    reps = [json.loads((d / "report.json").read_text()) for d in dirs]
    assert len({r["nodeid"] for r in reps}) == 2 and len({r["run_id"] for r in reps}) == 1
    assert {r["environment"]["xdist_worker"] for r in reps} <= {"gw0", "gw1"}
    for d in dirs:
        assert str(d) in out

    assert [d.name for d in dirs] == ["tests.planted.norm_property.py__test_planted_norm_p1_per_head_",
                                      "tests.planted.norm_property.py__test_planted_norm_p1_rows_"]
    norm_dir, norm = dirs[1], reps[1]
    case = norm["case"]
    assert case["rows"] == 1 and case["heads"] == 0 and case["dim"] <= 8 and not case["weight"]
    assert NormInputs.from_state_dict(
        torch.load(norm_dir / "inputs.pt", weights_only=True)["inputs"]["inputs"]["state"]
    ).x.shape == (1, case["dim"])
    capsys.readouterr()
    assert _replay(norm_dir) == 1
    assert _replay(norm_dir, "--impl", f"rms_norm={REF_NORM}") == 0


# %% units: run id, test id, verdicts

def test_run_id_is_shared_by_xdist_workers_and_env_wins(tmp_path, monkeypatch):
    monkeypatch.delenv("KERNELPROP_RUN_ID", raising=False)

    def worker():
        return SimpleNamespace(workerinput={"testrunuid": "abc123def456"},
                               getoption=lambda name: str(tmp_path))

    a, b = kreport.run_id(worker()), kreport.run_id(worker())
    assert a == b and a.endswith("-abc123")
    plain = SimpleNamespace(getoption=lambda name: str(tmp_path))
    assert kreport.run_id(plain) != a
    monkeypatch.setenv("KERNELPROP_RUN_ID", "nightly 42")
    assert kreport.run_id(SimpleNamespace(getoption=lambda name: str(tmp_path))) == "nightly_42"


def test_test_ids_are_file_safe_and_never_collide(tmp_path):
    name = kreport.nodeid_name("properties/test_x.py::test_y[recipe=a/b c]")
    assert name == "properties.test_x.py__test_y_recipe=a.b_c_"
    assert len(kreport.nodeid_name("p.py::t[" + "x" * 500 + "]")) <= kreport.MAX_NAME + 9
    first = kreport.unique_dir(tmp_path, name)
    second = kreport.unique_dir(tmp_path, name)
    assert first.name == name and second.name == name + "-2"


def test_check_outcome_matches_the_property_check():
    from kernelprop.core.evidence import Outcome

    a = torch.tensor([1.0, 2.0, 3.0])
    e = torch.tensor([1.0, 2.5, 3.0])
    v = kreport.check_outcome(Outcome(a, e, torch.tensor([0.1, 1.0, 0.0]), "doc"))
    assert not v.failing and v.worst == 0.5 and v.index == (1,)
    v = kreport.check_outcome(Outcome(a, e, torch.tensor([0.1, 0.25, 0.0]), "doc"))
    assert v.failing and v.worst == 2.0 and v.violations == 1 and v.bound == 0.25
    v = kreport.check_outcome(Outcome(a, e, None, "bitwise"))
    assert v.failing and v.kind == "bitwise" and v.violations == 1 and v.index == (1,)
    z = torch.tensor([0.0])
    assert kreport.check_outcome(Outcome(z, -z, None, "bitwise")).failing  # -0 is another bit


def test_replay_of_a_missing_report_is_an_error(tmp_path, capsys):
    assert replay_cli.main([str(tmp_path / "nothing" / "report.json")]) == 2
    assert "no report" in capsys.readouterr().err


def test_a_failure_that_raises_after_recording_its_inputs_still_replays(tmp_path, monkeypatch,
                                                                         capsys):
    """Evidence recorded before the comparison (outcome None) and a raising implementation: the
    report saves the tensors and replay treats the exception as the failure reproducing."""
    from kernelprop.golden.rmsnorm_inputs import NormCase, NormRecipe, make_norm_inputs
    from kernelprop.core import evidence
    from kernelprop.core.impl import make_impl

    monkeypatch.delenv("KERNELPROP_RUN_ID", raising=False)
    crash = "tests/planted/rms_norm_crash.py:rms_norm"
    impl = make_impl("rms_norm", str(ROOT / crash))
    case = NormCase(rows=2, dim=3, weight=False)
    x = make_norm_inputs(case)
    params = {"recipe": {"inv": "recip_sqrt", "approx_bits": 12, "chunk": None,
                         "out_dtype": "bf16", "rounding": "rne"}}
    evidence.begin()
    evidence.record(evidence.Evidence(
        property_id="P1", check="planted", outcome=None, impl=impl.spec, impl_kind="rms_norm",
        recipe=NormRecipe(), case=case, inputs={"inputs": x},
        replay_fn="tests.planted.norm_replay:norm_p1", replay_params=params))
    try:
        impl(x.x, None, recipe=NormRecipe())
    except RuntimeError as err:
        error = err
    config = SimpleNamespace(getoption=lambda name: str(tmp_path))
    item = SimpleNamespace(nodeid="fake.py::test_crash[a]", config=config,
                           iter_markers=lambda name: [SimpleNamespace(args=("P1",))])
    call = SimpleNamespace(excinfo=SimpleNamespace(value=error))
    rep = SimpleNamespace(longreprtext="", duration=0.1)
    out = kreport.write_failure_report(item, call, rep)
    data = json.loads((out / "report.json").read_text())
    assert data["failure"]["kind"] == "exception" and "planted crash" in data["failure"]["error"]
    assert (out / "inputs.pt").is_file() and data["case"]["rows"] == 2
    capsys.readouterr()
    assert _replay(out) == 1
    assert _replay(out, "--impl", f"rms_norm={REF_NORM}") == 0


# %% fuzz

def test_fuzz_finds_the_planted_bug_and_writes_its_summaries(tmp_path):
    hist, reps = tmp_path / "history", tmp_path / "reports"
    cmd = [sys.executable, "-m", "kernelprop", "fuzz", "--minutes", "0.25", "--workers", "1",
           "--examples", "5", "--fixed-examples", "--backend", "cpu", "-k", "rows",
           "--history-dir", str(hist), "--reports-dir", str(reps),
           "--database", str(tmp_path / "db"), "--impl", f"rms_norm={RSQRT10}", NORM_PROPERTY]
    run = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=180)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    assert "round 0" in run.stdout and "FAILED" in run.stdout
    line = json.loads((hist / "history.jsonl").read_text().splitlines()[-1])
    test = "tests/planted/norm_property.py::test_planted_norm_p1"
    group = line["groups"][test]
    assert group["failures"] == 1 and group["examples"] >= 1 and group["worst"] > 1
    assert line["exit_code"] == 1 and group["reports"] and group["quantiles"]
    assert (reps / line["run_id"]).is_dir()
    assert "<svg" in (hist / "latest.html").read_text()
    assert test in (hist / "latest.md").read_text()
    assert (tmp_path / "db").is_dir()  # the nightly profile saved its examples there


def test_fuzz_summary_and_plots_from_records():
    from kernelprop.commands import fuzz
    from kernelprop.commands import fuzz_html

    records = [
        {"type": "collected", "nodeids": ["p.py::t[a]", "p.py::t[b]", "p.py::u"],
         "backend": "cpu", "device": "cpu"},
        {"type": "test", "nodeid": "p.py::t[a]", "spec": ["P1"], "outcome": "passed",
         "examples": 3, "failed": 0, "max": {"err": 0.5}, "scores": {"err": [0.0, 0.01, 0.5]}},
        {"type": "test", "nodeid": "p.py::t[b]", "spec": ["P1"], "outcome": "failed",
         "examples": 2, "failed": 1, "max": {"err": 1e300}, "scores": {"err": [0.2, 1e300]}},
    ]
    agg = fuzz.aggregate([{"records": records}], {"p.py::t[b]": ["reports/x/y"]})
    group = agg["groups"]["p.py::t"]
    assert group["cases"] == 2 and group["examples"] == 5 and group["failures"] == 1
    assert group["worst"] == 1e300 and agg["not_reached"] == ["p.py::u"]
    summary = {"run_id": "r", "started": "s", "finished": "f", "minutes": 1, "workers": 1,
               "impl": [], "backend": "cpu", "device": "cpu", "database": "db", "rounds": [],
               "collect_errors": [], "versions": {}, "exit_code": 1, **agg}
    md = fuzz.markdown(summary)
    assert "| P1 | `p.py::t` (2 cases) | 5 | 1 | 1 | inf | `reports/x/y` |" in md
    assert "Not reached" in md and "p.py::u" in md
    page = fuzz_html.render(summary, [fuzz.history_line(summary)] * 2)
    assert page.count("<svg") == 2 and "infinite score" in page
