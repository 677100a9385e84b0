"""Argument checks of the catalogue's base implementations: the bundled wrappers' contract (SPEC P13).

A mutant must die of its planted numerical bug, not of a missing argument check, so the bases
raise what kernels/ raises (TypeError for a type or dtype, ValueError for a shape, device, stride
or value, each naming the argument), reusing the bundled kernels' own helpers.
"""
from __future__ import annotations

from kernelprop.golden.rmsnorm_inputs import NormRecipe
from kernelprop.kernels.rms_norm import check_norm_args as kernel_norm_args


def check_recipe(recipe, recipe_type) -> None:
    if recipe is not None and not isinstance(recipe, recipe_type):
        raise TypeError(f"recipe must be a {recipe_type.__name__} or None, got {type(recipe).__name__}")


def check_norm_args(x, weight, eps, recipe) -> None:
    """Raise like kernels.rms_norm on bad input."""
    check_recipe(recipe, NormRecipe)
    kernel_norm_args(x, weight, eps)
