"""P13 (bad input) for rms_norm: its corruptions, their replay, and its P13 argument table
(kernelprop.core.registry: Op.bad_input). Same verdict rules as properties/replays_bad_input.py."""
from __future__ import annotations

import torch

from kernelprop.core.evidence import Outcome
from kernelprop.golden.attention_inputs import AttnRecipe
from kernelprop.golden.rmsnorm_inputs import NormCase, NormRecipe
from kernelprop.properties.norm_limits import NormLimits
from kernelprop.properties.replays_bad_input import (BadInputTable, call_with_timeout, corrupt_tensor,
                                                     raise_outcome, same_outcome)

TENSORS = ("x", "weight")
BAD_DTYPES = {"x": ("float16", "float64", "int32", "int8"),   # the contract (SPEC 3) excludes these
              "weight": ("int32", "int64", "bool")}
BAD_EPS = (-1e-6, -1.0, float("nan"), float("inf"), float("-inf"), "1e-6", None)
# a recipe of the wrong type, by name: another op's recipe, a string, a dict, an int
BAD_RECIPES = {"AttnRecipe": AttnRecipe(), "str": "recip_sqrt", "dict": {"tile": 64, "inv": "rsqrt"},
               "int": 1}


def corruption_list(*, recipes: bool, cuda: bool) -> list:
    """Every rms_norm corruption (JSON-able dicts for p13_norm)."""
    out = [{"kind": "not_tensor", "arg": a} for a in TENSORS]
    out += [{"kind": "dtype", "arg": a, "dtype": d} for a in TENSORS for d in BAD_DTYPES[a]]
    out += [{"kind": "rank", "arg": "x", "how": "scalar"}]
    out += [{"kind": "rank", "arg": "weight", "how": h} for h in ("add", "drop")]
    out += [{"kind": "size", "arg": "weight", "dim": 0}, {"kind": "empty_last_dim", "arg": "x"}]
    out += [{"kind": "stride", "arg": a} for a in TENSORS]
    out += [{"kind": "scalar", "arg": "eps", "value": v} for v in BAD_EPS]
    if recipes:
        out += [{"kind": "recipe", "value": v} for v in BAD_RECIPES]
        out += [{"kind": "unsupported_recipe", "approx_bits": k} for k in (8, 10, 12)]
    if cuda:
        out += [{"kind": "device", "arg": "weight"}]
    return out


def _names(arg: str, params: dict) -> tuple:
    """The arguments a message may name: a weight of the wrong length may be reported against x."""
    return (arg, "x") if params["kind"] in ("size", "device") else (arg,)


def p13_norm(inputs: dict, impl, params: dict) -> Outcome:
    """P13 for rms_norm: apply the corruption `params` to the valid inputs."""
    x = inputs["inputs"]
    fn = impl.fn
    kind, arg = params["kind"], params.get("arg")
    desc = f"{kind} {arg or ''} {params.get('detail', '')}".strip()
    xt = x.x
    w = x.weight
    if arg == "weight" and w is None:  # weight corruptions need a weight
        w = torch.ones(xt.shape[-1], dtype=xt.dtype, device=xt.device)
    call = lambda **kw: call_with_timeout(fn, (kw.pop("x", xt), kw.pop("weight", w)),  # noqa: E731
                                          dict(eps=kw.pop("eps", x.eps), **kw))
    if kind == "scalar":
        value = params["value"]
        return raise_outcome(f"eps={value!r}", *call(eps=value), ("eps",), False)
    if kind == "recipe":
        return raise_outcome(f"recipe of type {params['value']}",
                              *call(recipe=BAD_RECIPES[params["value"]]), ("recipe",), False)
    if kind == "unsupported_recipe":
        recipe = NormRecipe(inv="rsqrt_approx", approx_bits=params["approx_bits"])
        return raise_outcome("recipe inv='rsqrt_approx' (golden only)", *call(recipe=recipe),
                              ("recipe", "inv", "rsqrt_approx"), True)
    if kind == "empty_last_dim":
        return raise_outcome("x with last dim 0", *call(x=xt[..., :0]), ("x",), False)
    target = xt if arg == "x" else w
    bad = corrupt_tensor(target, params)
    got = call(**{arg: bad})
    names = _names(arg, params)
    if kind == "stride":
        ref = call()
        return same_outcome(desc, *got, ref[1] if ref[0] == "ok" else None, names, True)
    return raise_outcome(desc, *got, names, False)


TABLE = BadInputTable(
    TENSORS, corruption_list, "kernelprop.properties.replays_norm_bad_input:p13_norm",
    "bad rms_norm input: clear error naming the argument, or the documented semantics",
    NormCase(seed=1, rows=3, dim=24, weight=True), case_kwargs={"limits": NormLimits(rows=4, dim=32)})
