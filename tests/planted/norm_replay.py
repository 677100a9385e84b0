"""Replay function of the planted RMSNorm property (no hypothesis here, like properties/replays_*).

Kept beside the planted property so the report tests do not depend on the catalogue's own RMSNorm
properties; `python -m kernelprop replay` imports it as tests.planted.norm_replay.
"""
from __future__ import annotations

from kernelprop.golden.rmsnorm import rms_norm_trace
from kernelprop.golden.rmsnorm_bounds import INV_ULPS, p1_bound
from kernelprop.core.evidence import Outcome
from kernelprop.properties.replays_norm import recipe_of

DOC = ("P1 (planted copy): |impl - golden| <= the output roundings that the fp32 relative gap "
       "(sum of squares, INV, two products, both sides) makes possible; golden/rmsnorm_bounds.py")


def norm_p1(inputs: dict, impl, params: dict) -> Outcome:
    x = inputs["inputs"]
    recipe = recipe_of(params)
    actual = x.call(impl, recipe=recipe)
    trace = x.call(rms_norm_trace, recipe=recipe)
    bound = p1_bound(trace, x, recipe, INV_ULPS["cpu"])
    return Outcome(actual=actual.float(), expected=trace.y.float(), bound=bound, bound_doc=DOC)
