"""The removal proof of one op (docs/ARCHITECTURE.md, "Adding a kernel"): in a temporary copy of
the repository, delete the op's own files and its one registry record, then run the ci-profile
tests every op shares; the op is "added through the registry only" when they pass.

    .venv/bin/python scripts/removal_proof.py [--op KIND] [--keep] [-- extra pytest args]

The op's own files are derived, never listed: the modules its record references that no other
record references (tests/test_registry_isolation.forbidden_words' rule), then, to a fixed point,
every repository file that imports one of them or names it in a "module:attr" string (its tests,
replays, adapters), and every docs/*.md file that only deleted files mention. A shared module
(tests/test_registry_isolation.SHARED) that would have to go is reported and fails the proof.
Prints the deleted files with their line counts, the registry lines removed, and the pytest
summary; exits with pytest's status (1 when a shared module depends on the op).
"""
from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED_TESTS = ("tests/test_registry_isolation.py", "tests/test_registry_sizes.py",
                "tests/test_coverage.py", "tests/test_compile.py", "tests/test_mutants_fast.py",
                "tests/test_plugins.py", "tests/test_repo_imports.py", "tests/test_install.py",
                "properties/test_bad_input.py")
FOLDERS = ("golden", "kernels", "properties", "impls", "tests", "kernelprop", "scripts", "benchmarks")


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return [p for p in out.splitlines() if (ROOT / p).is_file()]


def module_of(path: str) -> str | None:
    """A repository file's module name under the kernelprop namespace, without that prefix (the
    form registry references take after `ref_module`); None for a file that is no module."""
    if not path.endswith(".py") or path.split("/")[0] not in FOLDERS:
        return None
    name = path.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
    return name.removeprefix("kernelprop.") if path.startswith("kernelprop/") else name


def references(source: str) -> set[str]:
    """Module names (without the kernelprop. prefix) that `source` imports or names in a
    "module:attr" / "path.py:attr" string (docstrings and comments are prose, not read)."""
    from tests.test_registry_isolation import code_words

    try:
        names, strings = code_words(source)
    except SyntaxError:
        return set()
    found = set(names)
    for text in strings:
        found.update(re.findall(r"[A-Za-z_][\w.]*(?=:)", text))
        found.update(m.removesuffix(".py").replace("/", ".") for m in re.findall(r"[\w/]+\.py(?=:)", text))
    return {f.removeprefix("kernelprop.") for f in found}


def own_files(kind: str, files: list[str]) -> tuple[list[str], list[str]]:
    """(the op's own files, shared modules that depend on them)."""
    from kernelprop.core.registry import OPS
    from tests.test_registry_isolation import SHARED, ref_module, record_refs

    users: dict[str, set] = {}
    for o in OPS:
        for ref in record_refs(o):
            users.setdefault(ref_module(ref), set()).add(o.kind)
    record = next(o for o in OPS if o.kind == kind)
    modules = {ref_module(r) for r in record_refs(record) if users[ref_module(r)] == {kind}}
    by_module = {module_of(p): p for p in files if module_of(p)}
    gone = {by_module[m] for m in modules if m in by_module}
    bad: set = set()
    changed = True
    while changed:
        changed = False
        dead = {module_of(p) for p in gone}
        for p in files:
            if p in gone or not p.endswith(".py") or p == "kernelprop/core/registry.py":
                continue
            if references((ROOT / p).read_text()) & dead:
                if p in SHARED:
                    bad.add(p)
                    continue
                gone.add(p)
                changed = True
    kept_text = "\n".join((ROOT / p).read_text(errors="replace") for p in files
                          if p not in gone and (p.endswith(".py") or p.endswith(".md")))
    gone_text = "\n".join((ROOT / p).read_text(errors="replace") for p in gone)
    for p in files:
        if p.startswith("docs/") and p.endswith(".md") and p in gone_text and p not in kept_text:
            gone.add(p)
    return sorted(gone), sorted(bad)


def remove_record(registry: Path, kind: str) -> int:
    """Delete the Op(...) record of `kind` from registry.py; returns the lines removed."""
    source = registry.read_text()
    lines = source.splitlines(keepends=True)
    for node in ast.walk(ast.parse(source)):
        kinds = [k.value for k in node.keywords if k.arg == "kind"] if isinstance(node, ast.Call) else []
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Op" \
                and any(isinstance(v, ast.Constant) and v.value == kind for v in kinds):
            start, end = node.lineno - 1, node.end_lineno
            registry.write_text("".join(lines[:start] + lines[end:]))
            return end - start
    raise SystemExit(f"no Op record of kind {kind!r} in {registry}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--op", default="fused_add_rms_norm", help="the op kind to remove")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)
    files = tracked_files()
    gone, bad = own_files(args.op, files)
    tmp = Path(tempfile.mkdtemp(prefix=f"kernelprop-without-{args.op}-"))
    for p in files:
        if p not in gone:
            (tmp / p).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / p, tmp / p)
    if (ROOT / ".venv").exists():
        os.symlink((ROOT / ".venv").resolve(), tmp / ".venv")
    removed = remove_record(tmp / "kernelprop/core/registry.py", args.op)
    print(f"removal proof of {args.op!r} in {tmp}")
    total = 0
    for p in gone:
        n = len((ROOT / p).read_text(errors="replace").splitlines())
        total += n
        print(f"  deleted {p} ({n} lines)")
    print(f"  kernelprop/core/registry.py: its Op record, {removed} lines")
    print(f"  {len(gone)} files of its own ({total} lines) and one record")
    if bad:
        print("FAIL: shared modules depend on the op: " + ", ".join(bad))
    cmd = [sys.executable, "-m", "pytest", "-p", "no:xdist", "-q", "--hypothesis-profile=ci",
           "-p", "no:cacheprovider", *SHARED_TESTS, *args.pytest_args]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    run = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
    tail = [line for line in run.stdout.splitlines() if line.strip()][-15:]
    print("\n".join(tail))
    print(f"pytest exit status {run.returncode}: {'PASS' if run.returncode == 0 and not bad else 'FAIL'}")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if bad else run.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
