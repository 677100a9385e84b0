"""Replay functions of the attention properties (no hypothesis here: `kernelprop replay` imports
this after any hypothesis upgrade). Each is `fn(inputs, impl, params) -> Outcome`; `inputs` maps
names to AttnInputs, `params` is JSON-able (recipes as dicts)."""
from __future__ import annotations

from dataclasses import asdict

import torch

from golden.attention import sparse_attention_trace
from golden.attention_bounds import attention_p1_bound
from golden.recipes import AttnRecipe
from kernelprop.evidence import Outcome

P1_DOC = ("P1: |impl - golden| <= flips the fp32 error model makes possible (gamma_D score error, "
          "2^-21 + u|x| exp error, both sides) + fp32 noise (tile count x merge error); "
          "docs/bounds.md#p1")


def recipe_params(recipe: AttnRecipe) -> dict:
    return {"recipe": asdict(recipe)}


def _recipe(params: dict) -> AttnRecipe:
    return AttnRecipe(**params["recipe"]) if params.get("recipe") else AttnRecipe()


def p1(inputs: dict, impl, params: dict) -> Outcome:
    """Kernel vs golden under one recipe, within the sound-and-tight P1 bound."""
    x = inputs["inputs"]
    recipe = _recipe(params)
    actual = x.call(impl, recipe=recipe)
    trace = x.call(sparse_attention_trace, recipe=recipe)
    bound = attention_p1_bound(trace, x.q, x.attn_sink, recipe, softmax_scale=x.softmax_scale)
    return Outcome(actual=actual, expected=trace.o, bound=bound, bound_doc=P1_DOC)
