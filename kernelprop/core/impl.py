"""Implementations under test and the `--impl name=PATH_OR_MODULE:CALLABLE` plug-in (SPEC section 6).

An `Impl` wraps a callable with the bundled signature. Its declarations (attributes of the callable):
  recipe            the op's recipe type (registry): its numerics (default: the type's defaults);
                    or a callable of the example's shape (the op's `Inputs.shape()`, e.g.
                    golden.attention_inputs.AttnShape) returning that recipe, for kernels whose arithmetic
                    depends on the shape (SPEC section 6); `Impl.recipe_for(case_or_inputs)`
                    resolves it, and every property, report and replay reads it through that
  accepts_recipe    True: any recipe keyword; a tuple of field names: only those fields may differ
                    from `recipe` (the suite varies only those); absent/False: never a keyword
  validates_inputs  default True; False: the kernel does no argument checks, P13 is skipped
  domain            the op's domain type (registry): what the strategies draw
Properties that need another recipe from an implementation that cannot take one are skipped with
the reason shown.
"""
from __future__ import annotations

import importlib
import importlib.util
import pathlib
import sys
from dataclasses import dataclass
from dataclasses import fields
from typing import Any, Callable, Optional, Union

from kernelprop.core.registry import BY_KIND, OPS
from kernelprop.core.scratch import poisoned_allocations

KINDS = tuple(o.kind for o in OPS)                  # --impl NAMEs, in registry order
BUNDLED = {o.kind: o.bundled for o in OPS}          # kind -> bundled "module:callable"


@dataclass(frozen=True)
class Impl:
    kind: str               # a registry kind (kernelprop.core.registry.OPS)
    spec: str               # what the user named: PATH_OR_MODULE:CALLABLE
    fn: Callable
    recipe: Any             # declared recipe (the op's recipe type), or a callable of the shape
    accepts_recipe: Union[bool, tuple]  # True, False, or the recipe fields it can vary
    validates_inputs: bool = True
    domain: Optional[Any] = None  # the op's domain type, None: any input

    @property
    def label(self) -> str:
        return self.spec

    @property
    def shape_dependent(self) -> bool:
        """Whether the declared recipe is a callable of the example's shape."""
        return not isinstance(self.recipe, BY_KIND[self.kind].recipe_type)

    def recipe_for(self, example=None):
        """The declared recipe in effect for `example` (a case or inputs value with `.shape()`,
        or a shape): a shape-dependent recipe is called on the shape; a fixed one is returned
        as is (example may then be None)."""
        if not self.shape_dependent:
            return self.recipe
        if example is None:
            raise ValueError(f"{self.spec} declares a shape-dependent recipe: which one is in "
                             f"effect needs the example's shape")
        shape = example.shape() if callable(getattr(example, "shape", None)) else example
        recipe = self.recipe(shape)
        recipe_type = BY_KIND[self.kind].recipe_type
        if not isinstance(recipe, recipe_type):
            raise TypeError(f"{self.spec}: its recipe callable returned {type(recipe).__name__} "
                            f"for {shape}, expected a {recipe_type.__name__}")
        return recipe

    def example_recipe(self, drawn, example=None):
        """The recipe an example runs on this implementation: its declared recipe for the
        example, with the fields it may vary taken from `drawn` (all of them for True)."""
        if self.accepts_recipe is True:
            return drawn
        declared = self.recipe_for(example)
        if not self.accepts_recipe:
            return declared
        return declared.replace(**{f: getattr(drawn, f) for f in self.accepts_recipe})

    def varies(self, field: str) -> bool:
        """Whether the suite may pass recipes that differ from the declared one in `field`."""
        return self.accepts_recipe is True or (isinstance(self.accepts_recipe, tuple)
                                               and field in self.accepts_recipe)

    def supports(self, recipe, example=None) -> bool:
        """Whether `recipe` may be passed for `example` (needed when the recipe is
        shape-dependent and the implementation does not accept every field)."""
        if self.accepts_recipe is True:
            return True
        declared = self.recipe_for(example)
        return recipe == declared or all(
            self.varies(f.name) for f in fields(recipe)
            if getattr(recipe, f.name) != getattr(declared, f.name))

    def describe_recipe(self) -> str:
        if not self.shape_dependent:
            return str(self.recipe)
        name = getattr(self.recipe, "__qualname__", None) or repr(self.recipe)
        return f"{name}(shape) (shape-dependent)"

    def unsupported_reason(self, recipe) -> str:
        return (f"{self.spec} declares recipe {self.describe_recipe()} and accepts_recipe="
                f"{self.accepts_recipe!r}; this check needs {recipe}")

    def declared(self) -> str:
        """One line: what the implementation declared (report and terminal headers)."""
        return (f"recipe={self.describe_recipe()}, accepts_recipe={self.accepts_recipe!r}, "
                f"validates_inputs={self.validates_inputs}, domain="
                f"{self.domain.describe() if self.domain is not None else 'any input'}")

    def __call__(self, *args, recipe=None, **kwargs):
        """Run the implementation; `recipe` None means its declared recipe. A recipe keyword is
        passed only to implementations that accept one (True or a tuple of fields). The call
        runs with poisoned allocations (kernelprop.core.scratch)."""
        if recipe is not None and not self.supports(recipe, self._example(args, kwargs)):
            raise ValueError(self.unsupported_reason(recipe))
        with poisoned_allocations():  # scratch the kernel never writes must not reach a result
            if recipe is None or not self.accepts_recipe:
                return self.fn(*args, **kwargs)
            return self.fn(*args, recipe=recipe, **kwargs)


    def _example(self, args, kwargs):
        """The call's arguments as the op's inputs value (what a shape-dependent recipe is
        resolved on); None when the recipe is fixed."""
        if not self.shape_dependent or self.accepts_recipe is True:
            return None
        return BY_KIND[self.kind].inputs_type(*args, **kwargs)


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


def check_targets(targets: dict) -> dict:
    """{kind: Impl} for every --impl target, loaded once; raises ValueError (one message naming
    every bad target) so that pytest reports ONE usage error, not one setup error per test."""
    impls, errors = {}, []
    for kind, target in targets.items():
        try:
            impls[kind] = make_impl(kind, target)
        except (ValueError, ImportError, SyntaxError) as err:
            errors.append(f"--impl {kind}={target}: {type(err).__name__}: {err}")
    if errors:
        raise ValueError("; ".join(errors))
    return impls


def declared_lines(targets: dict) -> list[str]:
    """One header line per kind: the target (or bundled) and what it declared."""
    lines = []
    for kind in KINDS:
        target = targets.get(kind)
        try:
            impl = make_impl(kind, target)
            lines.append(f"kernelprop {kind}: {target or 'bundled ' + BUNDLED[kind]}: {impl.declared()}")
        except Exception as err:  # noqa: BLE001 (a header must not break the run)
            lines.append(f"kernelprop {kind}: {target or 'bundled'}: cannot load ({err})")
    return lines


def make_impl(kind: str, target: str | None = None) -> Impl:
    target = target or BUNDLED[kind]
    fn = load_callable(target)
    recipe_type = BY_KIND[kind].recipe_type
    recipe = getattr(fn, "recipe", None)
    if recipe is None:
        recipe = recipe_type()
    elif not isinstance(recipe, recipe_type) and (isinstance(recipe, type) or not callable(recipe)):
        raise ValueError(f"--impl {kind}={target}: its `recipe` attribute must be a "
                         f"{recipe_type.__name__} or a callable of the shape returning one, got "
                         f"{type(recipe).__name__}")
    return Impl(kind=kind, spec=target, fn=fn, recipe=recipe,
                accepts_recipe=_accepts(kind, target, getattr(fn, "accepts_recipe", False),
                                        recipe_type),
                validates_inputs=_flag(kind, target, "validates_inputs",
                                       getattr(fn, "validates_inputs", True)),
                domain=_domain(kind, target, getattr(fn, "domain", None)))


def _accepts(kind: str, target: str, value, recipe_type) -> Union[bool, tuple]:
    if value is True or value is False or value is None:
        return bool(value)
    names = {f.name for f in fields(recipe_type)}
    if isinstance(value, (tuple, list)) and value and all(v in names for v in value):
        return tuple(value)
    raise ValueError(f"--impl {kind}={target}: accepts_recipe must be True, False or a non-empty "
                     f"tuple of {recipe_type.__name__} fields {sorted(names)}, got {value!r}")


def _flag(kind: str, target: str, name: str, value) -> bool:
    if value is not True and value is not False:
        raise ValueError(f"--impl {kind}={target}: {name} must be True or False, got {value!r}")
    return value


def _domain(kind: str, target: str, value):
    domain_type = BY_KIND[kind].domain_type
    if value is None or isinstance(value, domain_type):
        return value
    raise ValueError(f"--impl {kind}={target}: its `domain` attribute must be a "
                     f"{domain_type.__name__}, got {type(value).__name__}")


def input_checks() -> str:
    """The ops' input checks adapters import from kernelprop (for P13's hints and skip reasons):
    "kernelprop.check_a / check_b"."""
    import kernelprop

    return "kernelprop." + " / ".join(n for n in kernelprop.__all__ if n.startswith("check_"))
