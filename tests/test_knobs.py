"""Every KERNELPROP_* setting has one home, kernelprop/core/knobs.py: no other module of the package
names a KERNELPROP_* variable in code (a string constant that is one, a keyword argument named one,
an os.environ / os.getenv lookup of one); docstrings, comments and help text are prose and not read.
Every knob has a one-line doc, and docs/settings.md holds the current table."""
from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest

from kernelprop.core import knobs

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("kernelprop", "golden", "kernels", "properties", "impls")
VARIABLE = re.compile(r"KERNELPROP_[A-Z0-9_]+")


def _modules():
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path != ROOT / "kernelprop" / "core" / "knobs.py":
                yield path


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _names_a_variable(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    prose = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose:
            if VARIABLE.fullmatch(node.value.strip("$")):
                found.append(f"{os.path.relpath(path, ROOT)}:{node.lineno} string {node.value!r}")
        elif isinstance(node, ast.keyword) and node.arg and VARIABLE.fullmatch(node.arg):
            found.append(f"{os.path.relpath(path, ROOT)}:{node.value.lineno} keyword {node.arg}")
    return found


def test_no_module_outside_knobs_names_a_kernelprop_variable():
    found = [hit for path in _modules() for hit in _names_a_variable(path)]
    assert not found, "read or write KERNELPROP_* settings through kernelprop.core.knobs:\n" + "\n".join(found)


def test_the_scan_sees_a_direct_read(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('"""KERNELPROP_SIZES in prose is fine."""\nimport os\n'
                      'a = os.environ.get("KERNELPROP_SIZES")\nb = dict(os.environ, KERNELPROP_PROFILE="ci")\n')
    assert len(_names_a_variable(sample)) == 2


def test_every_knob_is_declared_once_with_a_doc_line():
    variables = [k.variable for k in knobs.KNOBS.values()]
    assert len(variables) == len(set(variables))
    for name, knob in knobs.KNOBS.items():
        assert VARIABLE.fullmatch(knob.variable), name
        assert knob.doc.strip() and "\n" not in knob.doc, f"knob {name} needs a one-line doc"


def test_settings_doc_holds_the_current_table():
    text = (ROOT / "docs" / "settings.md").read_text()
    assert knobs.table() in text, "docs/settings.md is stale: paste kernelprop.core.knobs.table()"


def test_knobs_read_the_environment_when_asked(monkeypatch):
    monkeypatch.setenv("KERNELPROP_SIZES", "large")
    assert knobs.sizes.get() == "large"
    with knobs.scope(sizes="reference", nightly_examples=7, raw_interpreter=True):
        assert os.environ["KERNELPROP_SIZES"] == "reference"
        assert knobs.nightly_examples.get() == 7 and knobs.raw_interpreter.get() is True
    assert knobs.sizes.get() == "large"
    monkeypatch.delenv("KERNELPROP_SIZES")
    assert knobs.sizes.get() is None and knobs.profile.get() == "dev"
    assert knobs.env(profile="nightly", backend=None) == {"KERNELPROP_PROFILE": "nightly"}


def test_a_bad_integer_names_its_variable(monkeypatch):
    monkeypatch.setenv("KERNELPROP_AUTOTUNE_CONFIG", "x")
    with pytest.raises(ValueError, match="KERNELPROP_AUTOTUNE_CONFIG"):
        knobs.autotune_config.get()
