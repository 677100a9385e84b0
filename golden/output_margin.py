"""P1's margin ratio for a bf16 output, measured in the fp32 domain the output was rounded from
(docs/bounds-output-rounding.md#margin).

A bf16 output value v is the rounding OUT(x) of an fp32 x the implementation computed. The set of
fp32 values that round to v is its rounding cell C(v) (an interval); the distance d from the
golden's fp32 value c to C(v) is a lower bound on |x - c|. With the fp32 bound B_dir in the
direction of the cell (below / above c) and F its discrete share (attention's P flips):

    margin = max(0, d - F) / (B_dir - F),

> 1 exactly where v lies outside [OUT(c - below), OUT(c + above)] (OUT monotone: v is there iff
C(v) meets [c - below, c + above] iff d <= B_dir), up to ties at open cell ends and float64
rounding of d, which `margin_for_verdict` resolves in favour of the verdict. P1 checks exactly that
membership (`sided_bound`).

  Fp32Domain       centre, bounds below / above, discrete share, output rounding mode
  rounding_cell    closure [lo, hi] of C(v) per rounding mode (float64)
  reachable_ends   [OUT(c - below), OUT(c + above)]: the exact set a correct output lies in
  admissible       v in it
  sided_bound      the bound on |v - OUT(c)| on v's side of OUT(c): P1's check becomes membership
  cell_margin      the margin above, unclamped
  margin_for_verdict  cell_margin made to agree with a given pass/fail per element
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from kernelprop.golden.error_model import BF16_MIN_ULP
from kernelprop.golden.rounding import round_bf16

BF16_MAX_FINITE = 2.0 ** 128 - 2.0 ** 120
_OVERFLOW_EDGE = 2.0 ** 128  # where the next bf16 after the largest finite would sit


@dataclass(frozen=True)
class Fp32Domain:
    """The fp32 statement behind a bf16 output check: the implementation's pre-rounding value
    lies in [center - below, center + above]; `discrete` (<= both) is the share of the bound made
    of exactly known alternatives (P flips), `mode` the output rounding (rne, rna, rtz)."""

    center: torch.Tensor
    below: torch.Tensor
    above: torch.Tensor
    discrete: torch.Tensor
    mode: str = "rne"


def _neighbours(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(next bf16 below, next bf16 above) of finite bf16 magnitudes a >= 0 (float64); below 0 is
    -2^-133 (the mirror of the smallest subnormal), above the largest finite is 2^128."""
    bits = a.to(torch.bfloat16).view(torch.int16)
    up = (bits + 1).view(torch.bfloat16).double()
    down = (bits - 1).clamp(min=0).view(torch.bfloat16).double()
    up = torch.where(a == BF16_MAX_FINITE, _OVERFLOW_EDGE, up)
    return torch.where(a == 0, -BF16_MIN_ULP, down), up


def rounding_cell(v: torch.Tensor, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Closure [lo, hi] (float64) of the fp32 values x with OUT_mode(x) = v, for bf16 values v
    (bf16 or exactly-bf16 fp32/fp64). rne / rna: between the midpoints to v's neighbours;
    rtz: from v to the next bf16 away from zero; zero (either sign): the values rounding to +-0;
    +-inf: beyond the last midpoint (rne, rna) or inf itself (rtz saturates finite values);
    NaN or a value that is not bf16: the empty cell, returned as (inf, -inf)."""
    if mode not in ("rne", "rna", "rtz"):
        raise ValueError(f"mode must be one of ('rne', 'rna', 'rtz'), got {mode!r}")
    v = v.double()
    a = v.abs()
    finite = torch.isfinite(v)
    is_bf16 = finite & (a.float().to(torch.bfloat16).double() == a) & (a <= BF16_MAX_FINITE)
    safe = torch.where(is_bf16, a, 0.0)
    down, up = _neighbours(safe)
    if mode == "rtz":
        lo, hi = safe, up
        lo = torch.where(safe == 0, -up, lo)
    else:
        lo, hi = (down + safe) / 2, (safe + up) / 2
    # a negative v mirrors the magnitude's cell
    neg = v < 0
    lo, hi = torch.where(neg, -hi, lo), torch.where(neg, -lo, hi)
    inf_lo = math.inf if mode == "rtz" else (BF16_MAX_FINITE + _OVERFLOW_EDGE) / 2
    pos_inf, neg_inf = v == math.inf, v == -math.inf
    lo = torch.where(pos_inf, inf_lo, torch.where(neg_inf, -math.inf, lo))
    hi = torch.where(pos_inf, math.inf, torch.where(neg_inf, -inf_lo, hi))
    empty = ~(is_bf16 | pos_inf | neg_inf)
    return torch.where(empty, math.inf, lo), torch.where(empty, -math.inf, hi)


def reachable_ends(domain: Fp32Domain) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(OUT(c - below), OUT(c + above), finite) float64: the ends of the bf16 values a correct
    output can take (OUT monotone), each rounded from float64 once (rounding.round_bf16);
    `finite`: centre and bounds are finite (elsewhere the ends are meaningless)."""
    c, below, above = (t.double() for t in (domain.center, domain.below, domain.above))
    finite = torch.isfinite(c) & torch.isfinite(below) & torch.isfinite(above)
    # an end beyond the fp32 range stands for the largest finite fp32 value the implementation
    # can hold there (OUT of it: inf under rne / rna, the largest finite bf16 under rtz)
    top = torch.finfo(torch.float32).max
    lo = round_bf16(torch.where(finite, c - below, 0.0).clamp(-top, top), domain.mode)
    hi = round_bf16(torch.where(finite, c + above, 0.0).clamp(-top, top), domain.mode)
    return lo, hi, finite


def admissible(actual: torch.Tensor, domain: Fp32Domain) -> torch.Tensor:
    """actual in [OUT(c - below), OUT(c + above)] elementwise; a non-finite centre or bound admits
    only the value that golden.metrics' conventions call equal (same value, both NaN)."""
    lo, hi, finite = reachable_ends(domain)
    v, c = actual.double(), domain.center.double()
    same = (v == c) | (torch.isnan(v) & torch.isnan(c))
    return torch.where(finite, (lo <= v) & (v <= hi), same)


def sided_bound(actual: torch.Tensor, expected: torch.Tensor, domain: Fp32Domain,
                fallback: torch.Tensor) -> torch.Tensor:
    """A bound on |actual - expected| (expected = OUT(c), inside [lo, hi]) that makes P1's check
    exact membership of [lo, hi] = reachable_ends: hi - expected where actual >= expected, else
    expected - lo. `fallback` (the symmetric bound) where centre or bounds are not finite, or where
    actual's shape differs (the comparison then reports that)."""
    if tuple(actual.shape) != tuple(expected.shape):
        return fallback
    lo, hi, finite = reachable_ends(domain)
    e = expected.double()
    side = torch.where(actual.double() >= e, hi - e, e - lo).clamp(min=0.0)
    return torch.where(finite & torch.isfinite(e), side, fallback.double())


def cell_margin(actual: torch.Tensor, domain: Fp32Domain) -> torch.Tensor:
    """max(0, d - F) / (B_dir - F) per element (float64, unclamped): d the distance from the
    centre to actual's rounding cell, B_dir the bound on that side, F the discrete share; 0 inside
    the flips, inf for an empty cell (NaN, a non-bf16 value) or where B_dir = F < d."""
    c = domain.center.double().expand(actual.shape)
    cell_lo, cell_hi = rounding_cell(actual, domain.mode)
    gap_above, gap_below = cell_lo - c, c - cell_hi
    above = gap_above > 0
    d = torch.where(above, gap_above, gap_below.clamp(min=0.0))
    bound = torch.where(above, domain.above.double(), domain.below.double())
    f = torch.minimum(domain.discrete.double().expand(bound.shape), bound)
    num, cont = (d - f).clamp(min=0.0), (bound - f).clamp(min=0.0)
    margin = torch.where(num == 0, 0.0, num / cont)
    margin = torch.where(torch.isnan(margin), math.inf, margin)
    same = (actual.double() == c) | (torch.isnan(actual.double()) & torch.isnan(c))
    return torch.where(torch.isfinite(c), margin, torch.where(same, 0.0, math.inf))


def margin_for_verdict(margin: torch.Tensor, failing: torch.Tensor) -> torch.Tensor:
    """The margin made to give `failing`'s verdict per element: at least just above 1 where it
    fails, at most 1 where it passes (engaged only at ties and float64 rounding of d, or where a
    verdict is not exact membership; tests/test_golden_output_margin.py counts it)."""
    above_one = torch.nextafter(torch.ones_like(margin), torch.full_like(margin, 2.0))
    return torch.where(failing, torch.maximum(margin, above_one), margin.clamp(max=1.0))
