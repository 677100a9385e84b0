"""Bounds of the fused residual-add RMSNorm (docs/bounds-fused-add-norm.md), beside its golden
(golden/fused_add_norm.py).

residual_out: no bound. z = RNE_in(x + r) is one correctly rounded operation, so every correct
implementation writes the same bits (F1 is bitwise).

y: y_impl = norm_impl(z) and y_golden = norm_golden(z) with the SAME z (F1 holds bitwise, so a
correct kernel normalizes exactly the golden's z): the fused op's y error is the RMSNorm's on the
input z, and the RMSNorm P1 statement (golden/rmsnorm_bounds.py: p1_interval, p1_chain_interval
for recipes with inner roundings, p1_bound; replayed by properties/replays_norm.p1) applies
unchanged with x := z, every recipe field included.
"""
from __future__ import annotations

from kernelprop.golden.fused_add_norm import residual_sum
from kernelprop.golden.rmsnorm_inputs import NormInputs
from kernelprop.golden.rmsnorm_bounds import in_domain


def norm_inputs_on_z(inputs) -> NormInputs:
    """The RMSNorm inputs the fused op normalizes: the golden z, the weight, eps."""
    return NormInputs(x=residual_sum(inputs.x, inputs.residual), weight=inputs.weight, eps=inputs.eps)


def z_in_domain(inputs, backend: str) -> bool:
    """Whether the RMSNorm model is sound on z on `backend` (rmsnorm_bounds.in_domain: v = 0 or
    v >= V_MIN)."""
    return in_domain(residual_sum(inputs.x, inputs.residual), inputs.eps, backend)
