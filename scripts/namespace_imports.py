"""Rewrite the repo's imports of its top-level folders to the kernelprop namespace (idempotent).

    python scripts/namespace_imports.py [--check] [ROOT]

The folders kernels/, golden/, properties/ and impls/ stay where they are but install as
kernelprop.kernels, kernelprop.golden, ... (pyproject's package-dir; in a clone kernelprop's
__path__ reaches them), so that nothing imports a top-level `kernels` (PyPI has an unrelated one).
Rewrites, in every tracked-style .py file under ROOT (not .venv, not this script):
    from golden.x import y        -> from kernelprop.golden.x import y
    from kernels import y         -> from kernelprop.kernels import y
    import kernels                -> from kernelprop import kernels
    import golden.x as g          -> import kernelprop.golden.x as g
    "properties.replays_x:fn"     -> "kernelprop.properties.replays_x:fn"  (module strings)
Module strings are whole quoted module paths with an optional ':attr' ("golden.attention_inputs:AttnInputs",
"properties.replays_attention:"); file names and paths ("impls/x.py", "properties.test_x.py__t")
are left alone. --check: print the files that would change, exit 1 if any.
Running it twice changes nothing the second time.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

PACKAGES = ("kernels", "golden", "properties", "impls")
_NAMES = "|".join(PACKAGES)
_FROM = re.compile(rf"^(\s*)from ({_NAMES})(?=[.\s])", re.M)
_IMPORT_AS = re.compile(rf"^(\s*)import ({_NAMES})((?:\.\w+)+)(\s+as\s+\w+)", re.M)
_IMPORT_BARE = re.compile(rf"^(\s*)import ({_NAMES})(\s*(?:#.*)?)$", re.M)
_IMPORT_DOTTED = re.compile(rf"^\s*import ({_NAMES})\.\w+(?!.*\bas\b)", re.M)
_STRING = re.compile(rf"""(["'])({_NAMES})((?:\.[A-Za-z_]\w*)*(?::[\w.]*)?)(?=\1)""")
SKIP_DIRS = {".venv", ".git", "__pycache__", "build", "dist", ".hypothesis", "reports"}


def rewrite(text: str, where: str = "") -> str:
    if _IMPORT_DOTTED.search(text):
        raise ValueError(f"{where}: `import <pkg>.<module>` without `as` needs a manual rewrite")
    text = _FROM.sub(r"\1from kernelprop.\2", text)
    text = _IMPORT_AS.sub(r"\1import kernelprop.\2\3\4", text)
    text = _IMPORT_BARE.sub(r"\1from kernelprop import \2\3", text)
    return _STRING.sub(_module_string, text)


def _module_string(match: re.Match) -> str:
    """A whole quoted module path ("golden.attention_inputs", "kernels:fn"), not a file name (".py")."""
    quote, package, rest = match.groups()
    if not rest or ".py" in rest:
        return match.group(0)
    return f"{quote}kernelprop.{package}{rest}"


def python_files(root: Path):
    me = Path(__file__).resolve()
    for path in sorted(root.rglob("*.py")):
        if SKIP_DIRS & set(path.relative_to(root).parts) or path.resolve() == me:
            continue
        yield path


def main(argv: list[str]) -> int:
    check = "--check" in argv
    rest = [a for a in argv if a != "--check"]
    root = Path(rest[0]) if rest else Path(__file__).resolve().parents[1]
    changed = []
    for path in python_files(root):
        old = path.read_text()
        new = rewrite(old, str(path))
        if new != old:
            changed.append(path.relative_to(root))
            if not check:
                path.write_text(new)
    for path in changed:
        print(("would rewrite " if check else "rewrote ") + str(path))
    return 1 if check and changed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
