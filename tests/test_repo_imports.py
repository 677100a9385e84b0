"""The repo's folders are the kernelprop namespace, and never lose to same-named packages.

`kernels` is also the name of an unrelated PyPI distribution; a user who has it installed (or any
directory with a `kernels` package early on PYTHONPATH) must still get this repo's kernels/. The
folders are imported as kernelprop.kernels, kernelprop.golden, ... (installed through pyproject's
package-dir; in a clone kernelprop's __path__ reaches the repo root), and the clone's root comes
first on sys.path: pyproject's `pythonpath = ["."]`, conftest.py (sys.path[0]) and ./kp
(PYTHONPATH=<root>:...). The subprocess tests put a hostile fake `kernels` package (its __init__
raises) on PYTHONPATH.
"""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("kernels", "golden", "properties", "impls", "kernelprop")
FAKE_MESSAGE = "fake PyPI kernels imported instead of the repo's"


@pytest.fixture(scope="module")
def fake_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fake_site")
    (path / "kernels").mkdir()
    (path / "kernels" / "__init__.py").write_text(f"raise ImportError({FAKE_MESSAGE!r})\n")
    return path


def _run(args, pythonpath: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS",
                                                            "PYTEST_XDIST_WORKER")}
    env["PYTHONPATH"] = pythonpath
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def _namespaced(name: str) -> str:
    return name if name == "kernelprop" else f"kernelprop.{name}"


@pytest.mark.parametrize("name", PACKAGES)
def test_in_process_packages_are_this_repos(name):
    module = importlib.import_module(_namespaced(name))
    assert Path(module.__file__).resolve() == ROOT / name / "__init__.py", \
        f"{_namespaced(name)} resolved to {module.__file__}, not {ROOT / name}"


def test_in_process_kernels_exports_the_bundled_callables():
    from kernelprop import kernels
    from kernelprop.golden.recipes import UNSPLIT_FIELDS
    from kernelprop.kernels.rms_norm import rms_norm

    assert callable(kernels.sparse_decode_attention) and callable(rms_norm)
    assert getattr(kernels.sparse_decode_attention, "accepts_recipe", False) == UNSPLIT_FIELDS


def test_fake_kernels_is_hostile_on_its_own(fake_path):
    """Control: outside the repo, with only the fake on PYTHONPATH, `import kernels` hits it, so the
    tests below are not vacuous."""
    result = _run(["-c", "import kernels"], str(fake_path), cwd=fake_path)
    assert result.returncode != 0 and FAKE_MESSAGE in result.stderr


def test_pytest_collects_with_fake_kernels_first(fake_path):
    result = _run(["-m", "pytest", "--co", "-q", "-p", "no:cacheprovider", "tests/test_metrics.py"],
                  str(fake_path))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert FAKE_MESSAGE not in result.stdout + result.stderr


@pytest.mark.parametrize("noconftest", [False, True], ids=["with-conftest", "pyproject-pythonpath-only"])
def test_pytest_imports_repo_kernels_with_fake_first(fake_path, noconftest):
    """A pytest run with the fake first on PYTHONPATH imports this repo's packages (the in-process
    tests above, run in the child), with conftest.py and with pyproject's pythonpath alone."""
    args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_repo_imports.py",
            "-k", "in_process"]
    result = _run(args + (["--noconftest"] if noconftest else []), str(fake_path))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "passed" in result.stdout and FAKE_MESSAGE not in result.stdout + result.stderr


def test_kp_style_pythonpath_resolves_repo_packages(fake_path, tmp_path):
    """./kp exports PYTHONPATH=<root>:<caller's PYTHONPATH>: that alone (here from an unrelated
    cwd; kp itself also cd's to the root) yields the repo's packages."""
    code = "; ".join([f"import {_namespaced(name)}" for name in PACKAGES] +
                     [f"print({_namespaced(name)}.__file__)" for name in PACKAGES])
    result = _run(["-c", code], f"{ROOT}{os.pathsep}{fake_path}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    files = [Path(line).resolve() for line in result.stdout.split()]
    assert files == [ROOT / name / "__init__.py" for name in PACKAGES]
