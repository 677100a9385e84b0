"""Bad input (P13) for the fused add RMSNorm: its corruptions, their replay, and its P13 argument
table (kernelprop.core.registry: Op.bad_input). Same verdict rules as properties/replays_bad_input.py."""
from __future__ import annotations

import torch

from kernelprop.core.evidence import Outcome
from kernelprop.golden.fused_add_norm import FusedCase
from kernelprop.golden.attention_inputs import AttnRecipe
from kernelprop.golden.rmsnorm_inputs import NormRecipe
from kernelprop.properties.fused_limits import FusedLimits
from kernelprop.properties.replays_bad_input import (BadInputTable, corrupt_tensor, raise_outcome,
                                                     same_outcome, strided_last, call_with_timeout)

TENSORS = ("x", "residual", "weight")
BAD_DTYPES = {"x": ("float16", "float64", "int32"), "residual": ("float16", "float64", "int32"),
              "weight": ("int32", "bool")}
BAD_EPS = (-1e-6, float("nan"), float("inf"), "1e-6", None)
BAD_RECIPES = {"AttnRecipe": AttnRecipe(), "str": "recip_sqrt", "dict": {"inv": "rsqrt"}, "int": 1}


def corruption_list(*, recipes: bool, cuda: bool) -> list:
    out = [{"kind": "not_tensor", "arg": a} for a in TENSORS]
    out += [{"kind": "dtype", "arg": a, "dtype": d} for a in TENSORS for d in BAD_DTYPES[a]]
    out += [{"kind": "rank", "arg": a, "how": h} for a in ("residual", "weight") for h in ("add", "drop")]
    out += [{"kind": "size", "arg": a, "dim": -1} for a in ("residual", "weight")]
    out += [{"kind": "size", "arg": "residual", "dim": 0}]
    out += [{"kind": "stride", "arg": a} for a in TENSORS]
    out += [{"kind": "empty_last_dim"}, {"kind": "dtype_pair"}]
    out += [{"kind": "scalar", "arg": "eps", "value": v} for v in BAD_EPS]
    if recipes:
        out += [{"kind": "recipe", "value": v} for v in BAD_RECIPES]
        out += [{"kind": "unsupported_recipe"}]
    if cuda:
        out += [{"kind": "device", "arg": a} for a in ("residual", "weight")]
    return out


def _call(fn, inputs, recipe=None, **over):
    w = over.pop("weight", inputs.weight)
    args = (over.pop("x", inputs.x), over.pop("residual", inputs.residual), w)
    kwargs = {"eps": over.pop("eps", inputs.eps)}
    if recipe is not None:
        kwargs["recipe"] = recipe
    return call_with_timeout(fn, args, kwargs)


def p13_fused(inputs: dict, impl, params: dict) -> Outcome:
    x = inputs["inputs"]
    if x.weight is None:  # weight corruptions need a weight
        x = x.replace(weight=torch.ones(x.x.shape[-1], dtype=x.x.dtype, device=x.x.device))
    fn, kind, arg = impl.fn, params["kind"], params.get("arg")
    desc = f"{kind} {arg or ''}".strip()
    if kind == "scalar":
        return raise_outcome(f"eps={params['value']!r}", *_call(fn, x, eps=params["value"]), ("eps",), False)
    if kind == "recipe":
        return raise_outcome(f"recipe of type {params['value']}",
                              *_call(fn, x, recipe=BAD_RECIPES[params["value"]]), ("recipe",), False)
    if kind == "unsupported_recipe":
        return raise_outcome("recipe inv='rsqrt_approx' (golden only)",
                              *_call(fn, x, recipe=NormRecipe(inv="rsqrt_approx")),
                              ("recipe", "inv", "rsqrt_approx"), True)
    if kind == "empty_last_dim":
        return raise_outcome("x and residual with last dim 0",
                              *_call(fn, x, x=x.x[..., :0], residual=x.residual[..., :0]), ("x",), False)
    if kind == "dtype_pair":  # each valid alone, not together
        other = torch.float32 if x.x.dtype == torch.bfloat16 else torch.bfloat16
        return raise_outcome("residual's dtype differs from x's",
                              *_call(fn, x, residual=x.residual.to(other)), ("residual",), False)
    names = (arg, "x") if kind in ("size", "device", "rank") else (arg,)
    if kind == "stride":
        return _same(desc, fn, x, arg, names)
    bad = corrupt_tensor(getattr(x, arg), params)
    return raise_outcome(desc, *_call(fn, x, **{arg: bad}), names, False)


def _results(fn, inputs, inplace: bool, **over):
    """(status, value): the outputs of a call on clones of x and residual, as one flat fp64
    tensor ((y, residual_out), or the written x and residual buffers when in place)."""
    xb, rb = over.pop("x", inputs.x.clone()), over.pop("residual", inputs.residual.clone())
    status, value = _call(fn, inputs, x=xb, residual=rb, **over)
    if status != "ok":
        return status, value
    outs = (xb, rb) if inplace else value
    if not (isinstance(outs, (tuple, list)) and len(outs) == 2
            and all(isinstance(t, torch.Tensor) for t in outs)):
        return status, value
    return status, torch.cat([t.reshape(-1).double().cpu() for t in outs])


def _same(desc, fn, x, arg, names) -> Outcome:
    """A non-unit last-dim stride: rejected naming the argument, or accepted with the contiguous
    call's outputs bitwise (written buffers for an in-place implementation)."""
    inplace = bool(getattr(fn, "inplace", False))
    bad = strided_last(getattr(x, arg).clone())
    got = _results(fn, x, inplace, **{arg: bad})
    ref = _results(fn, x, inplace)
    return same_outcome(desc, *got, ref[1] if ref[0] == "ok" else None, names, True)


TABLE = BadInputTable(
    TENSORS, corruption_list, "kernelprop.properties.replays_fused_bad_input:p13_fused",
    "bad fused add-norm input: clear error naming the argument",
    FusedCase(seed=5, rows=3, dim=16),
    case_kwargs={"limits": FusedLimits(rows=3, dim=24)})
