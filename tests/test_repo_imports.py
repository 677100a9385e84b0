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
    from kernelprop.golden.attention_inputs import UNSPLIT_FIELDS
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


# %% no private name crosses a module boundary

SCANNED = PACKAGES + ("tests", "benchmarks", "scripts")
NOT_SOURCE = {".venv", ".git", "reports", ".hypothesis", "__pycache__", "node_modules"}


def _project_module(name: str) -> str | None:
    """The repo-relative dotted module of an import name (kernelprop.golden.x -> golden.x), None
    where it is not this repo's."""
    parts = name.split(".")
    if parts[0] == "kernelprop" and len(parts) > 1 and parts[1] in SCANNED:
        parts = parts[1:]
    return ".".join(parts) if parts[0] in SCANNED else None


def _is_module(dotted: str) -> bool:
    """Whether a dotted repo module names a module file or package (a private module name such as
    kernels._bf16 is a module, not a name, and may be imported)."""
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _source_files():
    for path in sorted(ROOT.rglob("*.py")):
        if not NOT_SOURCE & set(path.relative_to(ROOT).parts):
            yield path


def private_imports(path: Path, root: Path = ROOT) -> list[str]:
    """Each `from <repo module> import _name` of a name (not a module) defined in another module,
    and each `<imported repo module>._name` attribute read, in one file, as "file:line: what"."""
    import ast

    rel = path.relative_to(root)
    parts = list(rel.with_suffix("").parts)
    package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    here = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    tree = ast.parse(path.read_text(), str(path))
    found, modules = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = _project_module(node.module or "")
            if source is None:
                continue
            for alias in node.names:
                name = alias.name
                if _is_module(f"{source}.{name}"):
                    modules[alias.asname or name] = f"{source}.{name}"
                elif name.startswith("_") and not name.startswith("__") and source != here:
                    found.append(f"{rel}:{node.lineno}: from {source} import {name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                source = _project_module(alias.name)
                if source is not None:
                    modules[alias.asname or alias.name.split(".")[0]] = \
                        source if alias.asname else alias.name.split(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") \
                and not node.attr.startswith("__"):
            chain, value = [], node.value
            while isinstance(value, ast.Attribute):
                chain.append(value.attr)
                value = value.value
            if not (isinstance(value, ast.Name) and value.id in modules):
                continue
            owner = _project_module(".".join([modules[value.id], *reversed(chain)]))
            if owner is not None and _is_module(owner):
                found.append(f"{rel}:{node.lineno}: {ast.unparse(node)} ({owner})")
    return found


def test_no_private_name_is_imported_across_modules():
    """A name starting with "_" is its module's own: no other module of the repo (the packages,
    tests/, benchmarks/, scripts/) imports it or reads it off an imported module. A name another
    module needs is public."""
    found = [hit for path in _source_files() for hit in private_imports(path)]
    assert not found, "private names used across modules:\n" + "\n".join(found)


def test_private_import_scan_sees_both_forms(tmp_path):
    """Control: the scan reports a private name imported from a repo module and one read off an
    imported repo module, and lets a private module name and a dunder through."""
    probe = tmp_path / "tests" / "probe.py"
    probe.parent.mkdir()
    probe.write_text("from kernelprop.golden.rounding import _LOW16\n"
                     "from kernelprop.kernels import _bf16\n"
                     "from kernelprop.golden import __name__ as n\n"
                     "import kernelprop.golden.rounding as r\n"
                     "import kernelprop.golden.metrics\n"
                     "x = r._LOW16 + kernelprop.golden.metrics._ratio + _bf16.ROUNDING_CODE\n")
    found = private_imports(probe, tmp_path)
    assert [h.split(": ", 1)[1] for h in found] == [
        "from golden.rounding import _LOW16", "r._LOW16 (golden.rounding)",
        "kernelprop.golden.metrics._ratio (golden.metrics)"], found


def test_pyproject_installs_every_package_folder():
    """An installed kernelprop has every package of the clone (pyproject lists them one by one)."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    dirs = {v: k for k, v in config["package-dir"].items()}
    found = set()
    for init in ROOT.glob("*/**/__init__.py"):
        rel = init.parent.relative_to(ROOT).as_posix()
        if rel.split("/")[0] not in PACKAGES:
            continue
        top = next((d for d in sorted(dirs, key=len, reverse=True) if rel == d or rel.startswith(d + "/")), None)
        if top is None:
            continue
        rest = rel[len(top):].strip("/")
        found.add(dirs[top] + ("." + rest.replace("/", ".") if rest else ""))
    assert found <= listed, f"pyproject.toml's packages misses {sorted(found - listed)}"
