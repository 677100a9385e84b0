"""Bounds for a bf16 output (AttnRecipe.out_dtype "bf16"): which bf16 values a correct
implementation can return, given an fp32 bound on its pre-rounding output (docs/bounds-output-rounding.md).

An implementation with out_dtype "bf16" returns rne(o), o its fp32 result. If a property knows
|o - c| <= b for a centre c (the golden's o, a truth, a prediction), then, rne being monotone, the
bf16 result lies in [lo, hi] = [rne(c - b), rne(c + b)] and nowhere else. The check compares it
with r = rne(c) (which lies in [lo, hi]) under the bound max(hi - r, r - lo): exact (bound 0)
where the whole interval rounds to one bf16 value, else at most the gap hi - lo. The endpoints are
rounded from float64 without double rounding: fp64 -> fp32 by round-to-odd, then fp32 -> bf16
nearest-even, which equals one nearest-even rounding because fp32 keeps 16 more bits than bf16.

When the centre is itself a bf16 output of the implementation (impl vs impl: P5, P6 scaling), its
pre-rounding value is unknown: `widen_for_rounded` adds the half-spacing ulp_bf16(r) / 2 that
rne(x) = r allows for x (one ulp of r above, half an ulp below at a binade edge, both covered).
"""
from __future__ import annotations

import torch

from kernelprop.golden.error_model import BF16_MIN_ULP, FP32_MIN_NORMAL
from kernelprop.golden.rounding import round_to_bf16



def _fp32_round_to_odd(x: torch.Tensor) -> torch.Tensor:
    """fp64 -> fp32 rounded toward zero with the last bit set where inexact (round-to-odd);
    NaN and +-inf pass through, finite values beyond the fp32 range go to +-inf."""
    x = x.double()
    near = x.float()
    inexact = torch.isfinite(x) & (near.double() != x)
    toward_zero = torch.where(near.double().abs() > x.abs(),
                              torch.nextafter(near, torch.zeros_like(near)), near)
    odd = (toward_zero.view(torch.int32) | 1).view(torch.float32)
    return torch.where(inexact & torch.isfinite(near), odd, near)


def round_bf16(x: torch.Tensor, mode: str = "rne") -> torch.Tensor:
    """bf16 rounding (rne, rna or rtz) of fp32 or fp64 values as one rounding, float64: fp64 goes
    to fp32 by round-to-odd first, which neither rounding to nearest nor toward zero can tell
    from the fp64 value (16 more bits)."""
    x32 = x if x.dtype == torch.float32 else _fp32_round_to_odd(x)
    return round_to_bf16(x32.contiguous(), mode).double()


def round_bf16_rne(x: torch.Tensor) -> torch.Tensor:
    """Nearest-even bf16 rounding of fp32 or fp64 values (one rounding), as float64."""
    return round_bf16(x, "rne")


def bf16_half_spacing(r: torch.Tensor) -> torch.Tensor:
    """ulp_bf16(|r|) / 2 as float64 (at least half the subnormal spacing), the largest distance
    from r of an fp32 value whose nearest-even bf16 rounding is r."""
    a = r.double().abs()
    exponent = torch.floor(torch.log2(a.clamp_min(FP32_MIN_NORMAL)))
    return torch.exp2(exponent - 7).clamp_min(BF16_MIN_ULP) / 2


def widen_for_rounded(bound: torch.Tensor, rounded: torch.Tensor, factor=1.0) -> torch.Tensor:
    """bound + factor * ulp_bf16(rounded) / 2: `rounded` is an implementation's bf16 output whose
    fp32 value (unknown) is within half a spacing of it; `factor` scales that output's use."""
    half = bf16_half_spacing(rounded)
    half = torch.where(torch.isfinite(rounded.double()), half, 0.0)
    return bound.double() + torch.as_tensor(factor, dtype=torch.float64, device=half.device) * half


def reachable_bf16(center: torch.Tensor, bound) -> tuple[torch.Tensor, torch.Tensor]:
    """(expected, bound') for a bf16 output whose fp32 value lies within `bound` of `center`:
    expected = rne(center), bound' = max(rne(center + b) - expected, expected - rne(center - b))
    (float64, broadcast to center's shape). Non-finite centres and bounds pass through."""
    c = center.double()
    b = torch.as_tensor(bound, dtype=torch.float64, device=c.device).expand(c.shape)
    finite = torch.isfinite(c) & torch.isfinite(b)
    safe_b = torch.where(finite, b, 0.0)
    lo, r, hi = (round_bf16_rne(torch.where(finite, v, 0.0)) for v in (c - safe_b, c, c + safe_b))
    out = torch.maximum(hi - r, r - lo)
    expected = torch.where(finite, r, c)
    return expected, torch.where(finite, out, b)
