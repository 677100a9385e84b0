"""kernelprop installs as a plugin into an environment that already has torch and triton, changes
neither, and verifies a user's kernel file from another directory (issue 10, item 5).

A fresh venv sees this project's packages (torch, triton, hypothesis, pytest, setuptools, pip)
through a .pth file, as a user's CUDA environment would have them; `pip install --no-index
--no-build-isolation <copy of the repo>` must leave torch and triton where they were, and
`kernelprop verify --impl sparse_attention=my_kernel.py:fn` run there must run the catalogue and
write its counterexample reports into that directory.
"""
from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".venv", ".git", "__pycache__", "build", "dist", ".hypothesis", "reports", "fuzz-history"}

USER_KERNEL = '''
"""A user's kernel file: untiled fp32 softmax, sink through logsumexp, bf16 output, and a real
defect: the sink is capped at lse + 88, so a +inf sink gives a tiny non-zero o."""
import math
import torch
from kernelprop import AttnRecipe, flat_slot_ids


def fn(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices, seqused_kv, attn_sink,
       *, window, tokens_per_batch, softmax_scale=None):
    D, BS = q.shape[-1], ori_kv.shape[1]
    slots = flat_slot_ids(ori_block_table, cmp_block_table, sparse_indices, seqused_kv,
                          window=window, tokens_per_batch=tokens_per_batch, page_size=BS,
                          ori_pages=ori_kv.shape[0], cmp_pages=cmp_kv.shape[0])
    keys = slots.rows(ori_kv, cmp_kv).float()
    scale = D ** -0.5 if softmax_scale is None else softmax_scale
    s = torch.einsum("thd,tkd->thk", q.float(), keys) * scale
    s = torch.where(slots.valid[:, None, :], s, -math.inf)
    lse_keys = torch.logsumexp(s, dim=-1)
    has = torch.isfinite(lse_keys)
    sink = torch.minimum(attn_sink[None, :], torch.where(has, lse_keys, 0.0) + 88.0)
    lse = torch.where(has, torch.logaddexp(lse_keys, sink), 0.0)
    w = torch.where(has[..., None], torch.exp(s - lse[..., None]), 0.0)
    return torch.einsum("thk,tkd->thd", w, keys).to(torch.bfloat16)


fn.recipe = AttnRecipe(tile=None, p_dtype="fp32", l_from="unrounded", out_dtype="bf16")
fn.validates_inputs = False
'''

PROBE = "import torch, triton; print(torch.__version__, torch.__file__, triton.__version__, triton.__file__)"


def test_every_import_uses_the_kernelprop_namespace():
    """The installed package holds golden/, kernels/, impls/ and properties/ as kernelprop.*: a
    module importing `impls.x` or `golden.x` works from the checkout only, and breaks once
    installed (scripts/namespace_imports.py --check lists such imports; without --check it
    rewrites them)."""
    check = subprocess.run([sys.executable, str(ROOT / "scripts" / "namespace_imports.py"),
                            "--check"], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr


def _copy_repo(dest: Path) -> None:
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT)
        if SKIP_DIRS & set(rel.parts) or path.suffix == ".pyc" or rel.parts[0].endswith(".egg-info"):
            continue
        if path.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest / rel)


def _env() -> dict:
    return {k: v for k, v in os.environ.items()
            if k != "PYTHONPATH" and not k.startswith(("PYTEST_", "KERNELPROP_", "HYPOTHESIS_"))}


def _run(args, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_pip_install_keeps_torch_and_verifies_a_user_kernel_elsewhere(tmp_path):
    src, venv, user = tmp_path / "src", tmp_path / "venv", tmp_path / "user"
    _copy_repo(src)
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path).check_returncode()
    py = venv / "bin" / "python"
    purelib = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        tmp_path).stdout.strip())
    project_site = [p for p in site.getsitepackages() + [sysconfig.get_paths()["purelib"]]
                    if (Path(p) / "torch").is_dir()][0]
    (purelib / "project_packages.pth").write_text(project_site + "\n")  # the user's torch/triton

    before = _run([str(py), "-c", PROBE], tmp_path)
    assert before.returncode == 0, before.stderr[-2000:]
    install = _run([str(py), "-m", "pip", "install", "--no-index", "--no-build-isolation", str(src)],
                   tmp_path, timeout=600)
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    after = _run([str(py), "-c", PROBE], tmp_path)
    assert after.stdout == before.stdout, (before.stdout, after.stdout)  # versions and paths
    where = _run([str(py), "-c", "import kernelprop.golden, kernelprop.kernels as k; print(k.__file__)"],
                 tmp_path)
    assert where.returncode == 0 and str(purelib) in where.stdout, where.stdout + where.stderr

    user.mkdir()
    (user / "my_kernel.py").write_text(USER_KERNEL)
    run = _run([str(venv / "bin" / "kernelprop"), "verify", "--impl",
                "sparse_attention=my_kernel.py:fn", "-k", "test_p1_kernel", "--hypothesis-profile=ci",
                "-p", "no:xdist"], user)
    out = run.stdout + run.stderr
    assert run.returncode == 1, out[-3000:]  # the defect is found
    assert "validates_inputs=False" in out and "out_dtype='bf16'" in out  # declarations in the header
    reports = list((user / "reports").glob("*/*/report.md"))
    assert reports, out[-3000:]
    assert "+inf" in reports[0].read_text().splitlines()[2]  # the lead sentence names the defect
