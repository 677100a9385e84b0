"""Bounds of the fused residual-add RMSNorm (docs/bounds-fused-add-norm.md), beside its golden
(golden/fused_add_norm.py).

residual_out: no bound. z = RNE_in(x + r) is one correctly rounded operation, so every correct
implementation writes the same bits (F1 is bitwise).

y: y_impl = OUT(norm_impl(z)) and y_golden = OUT(norm_golden(z)) with the SAME z (F1 holds
bitwise, so the kernel normalizes exactly the golden's z): the fused op's y error is the RMSNorm's
on the input z, and the RMSNorm P1 interval of golden/rmsnorm_bounds.py applies unchanged with
x := z (same roundings: sum of squares of z, v, INV, products, one output rounding).
"""
from __future__ import annotations

from kernelprop.golden.fused_add_norm import fused_add_norm_trace, residual_sum
from kernelprop.golden.inputs import NormInputs
from kernelprop.golden.recipes import NormRecipe
from kernelprop.golden.rmsnorm_bounds import SUM_LAMBDA, in_domain, p1_bound, p1_domain, p1_interval


def norm_inputs_on_z(inputs) -> NormInputs:
    """The RMSNorm inputs the fused op normalizes: the golden z, the weight, eps."""
    return NormInputs(x=residual_sum(inputs.x, inputs.residual), weight=inputs.weight, eps=inputs.eps)


def y_bound(inputs, recipe: NormRecipe, inv_ulps: float, sum_lambda=SUM_LAMBDA, ftz: bool = False):
    """(trace, interval, elementwise bound): the RMSNorm P1 statement on the golden z."""
    on_z = norm_inputs_on_z(inputs)
    trace = inputs.call(fused_add_norm_trace, recipe=recipe)
    iv = p1_interval(trace, on_z, recipe, inv_ulps, sum_lambda, ftz)
    return trace, iv, p1_bound(trace, on_z, recipe, inv_ulps, iv=iv)


def y_domain(trace, iv, recipe: NormRecipe):
    """The fp32 statement of a bf16 y for its margin (rmsnorm_bounds.p1_domain)."""
    return p1_domain(trace, iv, recipe)


def z_in_domain(inputs) -> bool:
    """Whether the RMSNorm model is sound on z (rmsnorm_bounds.in_domain: v = 0 or v >= V_MIN)."""
    return in_domain(residual_sum(inputs.x, inputs.residual), inputs.eps)
