"""Replay functions of the fused add RMSNorm properties F1-F5 (SPEC section 9; bad input is P13
through the op's table, properties/replays_fused_bad_input.py). No hypothesis here. `inputs` maps
names to FusedInputs; `params` holds the recipe (the object, or a report's dict: recipe_of) and
the backend's INV ulp bound.

In-place implementations (`fn.inplace = True`: y is written into x, z into residual; the return
value is None or those two tensors) are run on clones here, so F1-F4 judge every implementation
the same way; F5 checks the in-place (or out-of-place) promise itself on guarded buffers.
Bounds: golden/fused_add_norm_bounds.py, docs/bounds-fused-add-norm.md.
"""
from __future__ import annotations

import dataclasses

import torch

from kernelprop.core.evidence import Outcome
from kernelprop.golden.fused_add_norm import FusedInputs, residual_sum
from kernelprop.golden.fused_add_norm_bounds import norm_inputs_on_z
from kernelprop.golden.rmsnorm_inputs import NormRecipe, spread_row_stride, spread_rows
from kernelprop.golden.output_rounding import output_numerics
from kernelprop.properties.replays_norm import p1 as norm_p1, recipe_of, recipe_params

F1_DOC = "F1: residual_out == RNE_in(x + residual) bitwise (one correctly rounded fp32 add)"
F2_DOC = ("F2: y within the RMSNorm P1 bound of the golden rms_norm on the golden z "
          "(docs/bounds-fused-add-norm.md; P1: docs/bounds-rmsnorm.md#p1)")
F3_DOC = ("F3: residual = 0: residual_out == RNE_in(x + 0) and y(x, 0) == y(0, x) bitwise (z is the "
          "same, so a correct implementation computes the same norm; docs/bounds-fused-add-norm.md#f3)")
F4_DOC = "F4: rows of y and residual_out whose x and residual rows are unchanged stay bitwise unchanged"
F5_DOC = ("F5: in place: x's buffer holds y and residual's holds z, bitwise the out-of-place result "
          "of the same implementation; every other element of the buffers (guards, row padding) "
          "and the weight are bitwise unchanged; out of place: no input element is written")


def params_for(recipe: NormRecipe, backend: str, impl=None, **extra) -> dict:
    """The RMSNorm params of `recipe` under this run's error model (replays_norm.recipe_params:
    `--error-model`, else the backend's): F2 holds y to RMSNorm's P1 bound on z, so both ops
    charge the same figures (INV per variant, flush, v's division, an impl's declared PTX)."""
    return recipe_params(recipe, backend, impl=impl, **extra)




def is_inplace(impl) -> bool:
    return bool(getattr(getattr(impl, "fn", impl), "inplace", False))


def _y_dtype(x: FusedInputs, recipe: NormRecipe) -> torch.dtype:
    return output_numerics(recipe.output_dtype(x.x.dtype)).torch_dtype


def clone_keeping_strides(t: torch.Tensor) -> torch.Tensor:
    """A copy with t's layout: rows spread past 2^31 elements (large_offsets) stay spread."""
    stride = spread_row_stride(t)
    return t.clone() if stride is None else spread_rows(t.contiguous(), stride)


def outputs(x: FusedInputs, impl, recipe: NormRecipe):
    """(y, z) of the implementation on CPU, or a string saying what it returned instead."""
    if is_inplace(impl):
        xb, rb = clone_keeping_strides(x.x), clone_keeping_strides(x.residual)
        x.replace(x=xb, residual=rb).call(impl, recipe=recipe)
        y, z = xb, rb
    else:
        out = x.call(impl, recipe=recipe)
        if not (isinstance(out, (tuple, list)) and len(out) == 2
                and all(isinstance(t, torch.Tensor) for t in out)):
            return f"returned {type(out).__name__}, expected (y, residual_out)"
        y, z = out
    shape = tuple(x.x.shape)
    if tuple(y.shape) != shape or tuple(z.shape) != shape:
        return f"returned shapes {tuple(y.shape)}, {tuple(z.shape)}, expected {shape} both"
    if z.dtype != x.x.dtype:
        return f"residual_out has dtype {z.dtype}, expected x's {x.x.dtype}"
    if not is_inplace(impl) and y.dtype != _y_dtype(x, recipe):
        return f"y has dtype {y.dtype}, expected {_y_dtype(x, recipe)} (recipe.out_dtype)"
    return y.detach().cpu(), z.detach().cpu()


def broken_outcome(why: str, doc: str) -> Outcome:
    return Outcome(actual=torch.ones(1), expected=torch.zeros(1), bound=None,
                   bound_doc=f"{doc}; the implementation {why}", metrics={"got": why})


def f1_residual(inputs: dict, impl, params: dict) -> Outcome:
    x = inputs["inputs"]
    expected = residual_sum(x.x, x.residual).cpu()      # before the call: F5 judges input writes
    truth = (x.x.double() + x.residual.double()).cpu()
    out = outputs(x, impl, recipe_of(params))
    if isinstance(out, str):
        return broken_outcome(out, F1_DOC)
    return Outcome(actual=out[1], expected=expected, bound=None, bound_doc=F1_DOC, truth=truth)


def f2_norm(inputs: dict, impl, params: dict) -> Outcome:
    """The RMSNorm P1 replay (properties/replays_norm.p1) on the golden z, judging this y."""
    x = inputs["inputs"]
    recipe = recipe_of(params)
    on_z = norm_inputs_on_z(x)
    out = outputs(x, impl, recipe)
    if isinstance(out, str):
        return broken_outcome(out, F2_DOC)
    y = out[0]
    if y.dtype != _y_dtype(x, recipe):  # in place: y lands in x's dtype
        return broken_outcome(f"wrote y as {y.dtype}, the recipe's output is {_y_dtype(x, recipe)}", F2_DOC)
    outcome = norm_p1({"inputs": on_z}, lambda *args, **kw: y, params)
    return dataclasses.replace(outcome, bound_doc=F2_DOC + ": " + outcome.bound_doc)


def f3_zero_residual(inputs: dict, impl, params: dict) -> Outcome:
    """inputs["inputs"] has residual = 0; inputs["swapped"] is (x, residual) = (0, x)."""
    x, swapped = inputs["inputs"], inputs["swapped"]
    recipe = recipe_of(params)
    z_ok = residual_sum(x.x, x.residual).cpu()
    a, b = outputs(x, impl, recipe), outputs(swapped, impl, recipe)
    for out in (a, b):
        if isinstance(out, str):
            return broken_outcome(out, F3_DOC)
    actual = torch.cat([a[1].reshape(-1).view(torch.uint8), b[1].reshape(-1).view(torch.uint8),
                        a[0].reshape(-1).view(torch.uint8)])
    expected = torch.cat([z_ok.reshape(-1).view(torch.uint8), z_ok.reshape(-1).view(torch.uint8),
                          b[0].reshape(-1).view(torch.uint8)])
    return Outcome(actual=actual, expected=expected, bound=None,
                   bound_doc=F3_DOC + " (bytes of: residual_out(x, 0), residual_out(0, x), y(x, 0))")


def _rows(t: torch.Tensor, keep) -> torch.Tensor:
    return t.reshape(-1, t.shape[-1])[keep] if t.dim() else t


def f4_rows(inputs: dict, impl, params: dict) -> Outcome:
    a, b = inputs["a"], inputs["b"]
    recipe, keep = recipe_of(params), params["keep"]
    oa, ob = outputs(a, impl, recipe), outputs(b, impl, recipe)
    for out in (oa, ob):
        if isinstance(out, str):
            return broken_outcome(out, F4_DOC)
    bytes_of = lambda o: torch.cat([_rows(o[0], keep).reshape(-1).view(torch.uint8),  # noqa: E731
                                    _rows(o[1], keep).reshape(-1).view(torch.uint8)])
    return Outcome(actual=bytes_of(ob), expected=bytes_of(oa), bound=None,
                   bound_doc=F4_DOC + f" (kept rows {keep}; bytes of y then residual_out)")


# %% F5: guarded buffers

GUARD = 7                      # elements before and after each buffer, and per row when strided


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int16 if t.element_size() == 2 else torch.int32)


def guarded(t: torch.Tensor, pad: int, fill: float):
    """(buffer, view): `t`'s values as rows [R, D] of stride D + pad inside a flat buffer with
    GUARD elements of `fill` before and after (and in each row's padding)."""
    rows = t.reshape(-1, t.shape[-1])
    R, D = rows.shape
    stride = D + pad
    buf = torch.full((2 * GUARD + max(R * stride, 1),), fill, dtype=t.dtype, device=t.device)
    view = buf[GUARD:GUARD + R * stride].view(R, stride)[:, :D] if R else buf[GUARD:GUARD].view(0, D)
    view.copy_(rows)
    return buf, view.view(t.shape)


def f5_buffers(inputs: dict, impl, params: dict) -> Outcome:
    x = inputs["inputs"]
    recipe = recipe_of(params)
    pad = params["pad"]
    inplace = is_inplace(impl)
    reference = outputs(x, impl, recipe)           # on clones (in place) or out of place
    if isinstance(reference, str):
        return broken_outcome(reference, F5_DOC)
    fill = -12345.0
    xbuf, xv = guarded(x.x, pad, fill)
    rbuf, rv = guarded(x.residual, pad, fill)
    w0 = None if x.weight is None else x.weight.clone()
    xbuf0, rbuf0 = xbuf.clone(), rbuf.clone()
    ret = x.replace(x=xv, residual=rv).call(impl, recipe=recipe)
    D = x.x.shape[-1]
    want_x, want_r = xbuf0.clone(), rbuf0.clone()
    if inplace:
        for want, value in ((want_x, reference[0]), (want_r, reference[1])):
            rows = value.reshape(-1, D)
            R = rows.shape[0]
            if R:
                want[GUARD:GUARD + R * (D + pad)].view(R, D + pad)[:, :D].copy_(rows)
    parts_a = [_bits(xbuf).cpu(), _bits(rbuf).cpu()]
    parts_e = [_bits(want_x).cpu(), _bits(want_r).cpu()]
    if w0 is not None:
        parts_a.append(_bits(x.weight).reshape(-1).cpu())
        parts_e.append(_bits(w0).reshape(-1).cpu())
    if inplace and isinstance(ret, (tuple, list)):     # returned tensors must be the buffers' values
        for got, want in zip(ret, (xv, rv)):
            if isinstance(got, torch.Tensor) and got.shape == want.shape and got.dtype == want.dtype:
                parts_a.append(_bits(got).reshape(-1).cpu().to(torch.int32))
                parts_e.append(_bits(want).reshape(-1).cpu().to(torch.int32))
    actual = torch.cat([p.to(torch.int64) for p in parts_a])
    expected = torch.cat([p.to(torch.int64) for p in parts_e])
    return Outcome(actual=actual, expected=expected, bound=None,
                   bound_doc=F5_DOC + f" ({'in place' if inplace else 'out of place'}; bits of: "
                   f"x buffer, residual buffer, weight{', returned tensors' if inplace else ''}; "
                   f"{GUARD} guard elements, row padding {pad})")
