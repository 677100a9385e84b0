"""Adding a kernel changes no shared module (docs/ARCHITECTURE.md, "Adding a kernel"): no shared
module names a registered op's own modules, its kind, its fixture or the symbols those modules
define.

The forbidden words come from kernelprop.core.registry.OPS, never from a list here:
  modules  every module a record references that is not shared (SHARED): the op's own
           (golden/<op>.py, its bounds, kernel, strategies, limits, P13 table, catalogue, ...),
           and those two or more records reference (RMSNorm's values, whose NormRecipe the fused
           add-RMSNorm declares too): their words are words of every op that references them
  symbols  the public names such a module defines at its top level (classes, functions,
           constants: NormRecipe, draw_norm_case, ...), but a name two such modules define (a
           template name: TABLE, CAUSES, reference, MUTANTS, ...), one a shared module defines
           itself (TENSORS is golden/values.py's) and a shape class name (data the coverage table
           shows for every op, kernelprop.core.coverage.all_classes)
  kind, fixture
A module names one when an import, an identifier or a string constant holds one (docstrings and
comments are prose, not dependencies, and are not read).

The shared modules (SHARED) are those every op's runs pass through: the runtime (kernelprop/*.py
but registry.py, whose job is to name every op), the package roots (__init__.py of the folders,
conftest.py), the helpers any kernel or golden builds on (kernels/_launch.py, _checks.py, _bf16.py;
golden/error_model.py, rounding.py, metrics.py, values.py, output_rounding.py), the property runner
(properties/checks.py) and the tests that run every op (properties/test_bad_input.py,
tests/test_coverage.py), and the shape-class machinery and P13 verdict rules every op's properties
use (properties/strategies.py, properties/replays_bad_input.py; golden/domain.py, sampling.py,
output_margin.py). Modules a record references are an op's own, not shared; this file is the
checker, as registry.py is the registry. There are no exemptions: every op, the first two
included, is its own files plus its record.
"""
from __future__ import annotations

import ast
import functools
import re
from dataclasses import fields
from pathlib import Path

import pytest

from kernelprop.core.coverage import all_classes
from kernelprop.core.registry import OPS, Op

ROOT = Path(__file__).resolve().parents[1]
SHARED = (
    *sorted(p.relative_to(ROOT).as_posix() for folder in ("kernelprop", "kernelprop/core", "kernelprop/commands")
            for p in (ROOT / folder).glob("*.py") if p.name != "registry.py"),
    "conftest.py", "kernels/__init__.py", "kernels/_launch.py", "kernels/_checks.py",
    "kernels/_bf16.py", "golden/__init__.py", "golden/error_model.py", "golden/rounding.py",
    "golden/metrics.py", "golden/values.py", "golden/output_rounding.py", "properties/__init__.py",
    "properties/checks.py", "properties/test_bad_input.py", "impls/__init__.py",
    "impls/mutants/__init__.py", "tests/test_coverage.py", "properties/strategies.py",
    "properties/replays_bad_input.py", "golden/domain.py", "golden/sampling.py",
    "golden/output_margin.py",
)


def record_refs(o: Op) -> list[str]:
    """Every "module[:attr]" reference of the record (a tuple field's "module:attr" entries, e.g.
    its exports, included)."""
    refs = []
    for f in fields(Op):
        value = getattr(o, f.name)
        if f.name in ("kind", "label", "fixture"):
            continue
        if isinstance(value, str):
            refs.append(value)
        elif isinstance(value, tuple):
            refs += [r for r in value if isinstance(r, str) and ":" in r]
    return refs


def ref_module(ref: str) -> str:
    return ref.partition(":")[0].removeprefix("kernelprop.")


def _path(module: str) -> Path:
    """The file of a module as ref_module names it (golden.x: golden/x.py; a runtime module x:
    kernelprop/x.py; a package: its __init__.py)."""
    for base in (ROOT / module.replace(".", "/"), ROOT / "kernelprop" / module.replace(".", "/")):
        if base.is_dir():
            return base / "__init__.py"
        if base.with_suffix(".py").is_file():
            return base.with_suffix(".py")
    raise FileNotFoundError(f"no file for module {module!r}")


def _defined(path: Path, *, top_level: bool) -> set[str]:
    """The names `path` defines: its top-level classes, functions and assigned names (every
    definition, nested ones and attributes of classes included, with top_level False)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level else ast.walk(tree)
    names = set()
    for node in nodes:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return names


def _shared_modules() -> set[str]:
    """SHARED's modules as ref_module names them."""
    return {ref_module(p.removesuffix(".py").replace("/", ".").removesuffix(".__init__")) for p in SHARED}


def op_modules() -> dict[str, set[str]]:
    """{module: kinds of the records that reference it} of every op-specific module."""
    shared = _shared_modules()
    users: dict[str, set[str]] = {}
    for o in OPS:
        for ref in record_refs(o):
            if ref_module(ref) not in shared:
                users.setdefault(ref_module(ref), set()).add(o.kind)
    return users


@functools.lru_cache(maxsize=None)
def forbidden_words() -> dict[str, frozenset[str]]:
    """{op kind: words that name it}, derived from the records."""
    users = op_modules()
    defined = {m: {n for n in _defined(_path(m), top_level=True) if not n.startswith("_")} for m in users}
    count: dict[str, int] = {}
    for names in defined.values():
        for n in names:
            count[n] = count.get(n, 0) + 1
    generic = {n for n, c in count.items() if c > 1}
    generic |= {n for p in SHARED for n in _defined(ROOT / p, top_level=False)}
    generic |= set(all_classes())
    words = {o.kind: {o.kind, o.fixture} for o in OPS}
    for module, kinds in users.items():
        for kind in kinds:
            words[kind] |= {module} | (defined[module] - generic)
    return {kind: frozenset(w) for kind, w in words.items()}


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring constants of the module, its classes and functions."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def code_words(source: str) -> tuple[set[str], list[str]]:
    """(identifiers and imported module paths, non-docstring string constants) of `source`."""
    tree = ast.parse(source)
    docs = _docstrings(tree)
    names, strings = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Import):
            names.update(a.name.removeprefix("kernelprop.") for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            module = node.module.removeprefix("kernelprop.")
            names.add(module)
            names.update(f"{module}.{a.name}" for a in node.names)
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            strings.append(node.value)
    return names, strings


def _named(word: str, names: set[str], strings: list[str]) -> bool:
    if word in names:
        return True
    path = re.escape(word).replace(r"\.", r"[./]")     # golden.indexer or golden/indexer(.py)
    pattern = re.compile(rf"(?<![\w]){path}(?![\w])")
    return any(pattern.search(s) for s in strings)


def ops_named(path: str) -> dict[str, list[str]]:
    """{op kind: the words that name it} in the shared module at `path`."""
    names, strings = code_words((ROOT / path).read_text())
    found = {}
    for kind, words in forbidden_words().items():
        hits = sorted(w for w in words if _named(w, names, strings))
        if hits:
            found[kind] = hits
    return found


def test_forbidden_words_are_derived_from_every_record():
    words = forbidden_words()
    assert set(words) == {o.kind for o in OPS}
    for o in OPS:
        assert {o.kind, o.fixture} < words[o.kind], o.kind
        assert len(words[o.kind]) > 2, f"{o.kind}: no module of its own found in its record"


def test_derived_words_include_types_and_helpers_of_modules_two_records_share():
    """The words once invisible (their modules were named by two records, or defined but not named
    by a record) are derived: the derivation cannot silently go weak."""
    words = forbidden_words()
    must = {"rms_norm": {"NormRecipe", "NormDomain", "NormCase", "NormInputs", "make_norm_inputs",
                         "draw_norm_case", "norm_class_cases", "check_norm_args",
                         ref_module("kernelprop.golden.rmsnorm_inputs"),
                         ref_module("kernelprop.properties.norm_strategies")},
            "fused_add_rms_norm": {"NormRecipe", ref_module("kernelprop.golden.rmsnorm_inputs")},
            "sparse_attention": {"AttnRecipe", "AttnInputs", "draw_attn"}}
    assert set(must) & set(words), "none of the ops this test knows is registered"
    for kind, expected in must.items():
        if kind in words:   # scripts/removal_proof.py runs this test with an op removed
            assert expected <= words[kind], f"{kind} misses {sorted(expected - words[kind])}"
    assert not {"TABLE", "CAUSES", "MUTANTS", "reference", "TENSORS"} & set().union(*words.values())


@pytest.mark.parametrize("path", SHARED)
def test_shared_module_names_no_op(path):
    named = ops_named(path)
    assert not named, f"{path} names ops it must reach through kernelprop.core.registry: {named}"


def test_detects_a_shared_module_naming_an_op():
    """The scanner itself: an import, an identifier and a module string each count; prose does not."""
    o = OPS[-1]
    own = sorted(w for w in forbidden_words()[o.kind] if "." in w)
    src = f'"""{o.kind} in a docstring"""\n# {o.fixture} in a comment\nx = 1\n'
    assert not any(_named(w, *code_words(src)) for w in forbidden_words()[o.kind])
    assert _named(o.fixture, *code_words(f"def f({o.fixture}):\n    pass\n"))
    assert _named(own[0], *code_words(f"from kernelprop.{own[0]} import x\n"))
    assert _named(own[0], *code_words(f"ref = 'kernelprop.{own[0]}:thing'\n"))
    assert _named(o.kind, *code_words(f"kind = {o.kind!r}\n"))
