"""Implementations under test and the `--impl name=PATH_OR_MODULE:CALLABLE` plug-in (SPEC section 6).

An `Impl` wraps a callable with the bundled signature. Its numerics are the callable's `recipe`
attribute (or the defaults); a `recipe` keyword is passed only to callables that declare
`accepts_recipe = True`. Properties that need another recipe from an implementation that cannot take
one are skipped with the reason shown.
"""
from __future__ import annotations

import importlib
import importlib.util
import pathlib
import sys
from dataclasses import dataclass
from typing import Any, Callable

from golden.recipes import AttnRecipe, NormRecipe

KINDS = {"sparse_attention": AttnRecipe, "rms_norm": NormRecipe}
BUNDLED = {"sparse_attention": "kernels:sparse_decode_attention", "rms_norm": "kernels:rms_norm"}


@dataclass(frozen=True)
class Impl:
    kind: str               # "sparse_attention" or "rms_norm"
    spec: str               # what the user named: PATH_OR_MODULE:CALLABLE
    fn: Callable
    recipe: Any             # declared AttnRecipe / NormRecipe
    accepts_recipe: bool

    @property
    def label(self) -> str:
        return self.spec

    def supports(self, recipe) -> bool:
        return self.accepts_recipe or recipe == self.recipe

    def unsupported_reason(self, recipe) -> str:
        return (f"{self.spec} declares recipe {self.recipe} and does not accept a recipe keyword "
                f"(accepts_recipe is not True); this check needs {recipe}")

    def __call__(self, *args, recipe=None, **kwargs):
        """Run the implementation; `recipe` None means its declared recipe."""
        if recipe is None or not self.accepts_recipe:
            if recipe is not None and recipe != self.recipe:
                raise ValueError(self.unsupported_reason(recipe))
            return self.fn(*args, **kwargs)
        return self.fn(*args, recipe=recipe, **kwargs)


def parse_impl_option(value: str) -> tuple[str, str]:
    """'sparse_attention=PATH_OR_MODULE:CALLABLE' -> (kind, target); raises ValueError."""
    kind, sep, target = value.partition("=")
    if not sep or kind not in KINDS:
        raise ValueError(f"--impl expects NAME=PATH_OR_MODULE:CALLABLE with NAME in {sorted(KINDS)}, "
                         f"got {value!r}")
    if ":" not in target.rstrip(":") or target.endswith(":"):
        raise ValueError(f"--impl {kind}= needs PATH_OR_MODULE:CALLABLE, got {target!r}")
    return kind, target


def load_callable(target: str) -> Callable:
    """Import CALLABLE from a module name or a .py file path (PATH may contain ':' only on Windows
    drives, so the last ':' separates the attribute)."""
    where, _, attr = target.rpartition(":")
    if where.endswith(".py") or "/" in where or where.startswith("."):
        path = pathlib.Path(where).expanduser().resolve()
        if not path.is_file():
            raise ValueError(f"--impl file {where!r} does not exist")
        name = f"kernelprop_user_impl_{abs(hash(str(path)))}"
        module = sys.modules.get(name)
        if module is None:
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"--impl target {target!r}: {where} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"--impl target {target!r} is not callable")
    return obj


def make_impl(kind: str, target: str | None = None) -> Impl:
    target = target or BUNDLED[kind]
    fn = load_callable(target)
    recipe_type = KINDS[kind]
    recipe = getattr(fn, "recipe", None)
    if recipe is None:
        recipe = recipe_type()
    elif not isinstance(recipe, recipe_type):
        raise ValueError(f"--impl {kind}={target}: its `recipe` attribute must be a "
                         f"{recipe_type.__name__}, got {type(recipe).__name__}")
    return Impl(kind=kind, spec=target, fn=fn, recipe=recipe,
                accepts_recipe=getattr(fn, "accepts_recipe", False) is True)
