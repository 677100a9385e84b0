"""fp32 -> bf16 rounding by integer bit arithmetic, for every recipe rounding mode.

Bit arithmetic (not `.to(torch.bfloat16)`) so that the three modes share one definition and the
Triton kernels can mirror it exactly: the interpreter's own bf16 casts truncate (SPEC section 5).
For finite x with bits b (int32 view), the low 16 bits are dropped after adding:
  rne: 0x7FFF + ((b >> 16) & 1)   (ties to the even upper half)
  rna: 0x8000                     (ties away from zero; sign-magnitude makes this symmetric)
  rtz: 0
NaN is passed through as a quiet NaN; +-inf and values that overflow behave as IEEE (overflow to
inf under rne/rna, saturate to the max finite bf16 under rtz).
"""
from __future__ import annotations

import math

import torch

ROUNDINGS = ("rne", "rtz", "rna")   # the modes of round_to_bf16 (a recipe's `rounding`)
_LOW16 = 0xFFFF


def round_to_bf16(x: torch.Tensor, mode: str = "rne") -> torch.Tensor:
    """Round an fp32 tensor to bf16-representable fp32 values under `mode`; returns fp32."""
    if x.dtype != torch.float32:
        raise TypeError(f"x must be float32, got {x.dtype}")
    bits = x.contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    if mode == "rne":
        bias = 0x7FFF + ((bits >> 16) & 1)
    elif mode == "rna":
        bias = torch.full_like(bits, 0x8000)
    elif mode == "rtz":
        bias = torch.zeros_like(bits)
    else:
        raise ValueError(f"mode must be one of ('rne', 'rtz', 'rna'), got {mode!r}")
    rounded = ((bits + bias) & ~_LOW16) & 0xFFFFFFFF
    rounded = torch.where(rounded >= 2**31, rounded - 2**32, rounded).to(torch.int32)
    out = rounded.view(torch.float32).reshape(x.shape)
    return torch.where(torch.isnan(x), x, out)


def bf16_ulp(x: torch.Tensor) -> torch.Tensor:
    """Spacing of bf16 numbers at |x| (fp32 result): 2^(exponent(x) - 7), subnormals clamped."""
    ax = x.abs().to(torch.float32).clamp_min(torch.finfo(torch.float32).tiny)
    exponent = torch.floor(torch.log2(ax))
    return torch.exp2(exponent - 7)


def fp32_round_to_odd(x: torch.Tensor) -> torch.Tensor:
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
    x32 = x if x.dtype == torch.float32 else fp32_round_to_odd(x)
    return round_to_bf16(x32.contiguous(), mode).double()


def fp32_outward(lo: torch.Tensor, hi: torch.Tensor):
    """float64 interval ends -> fp32 ends rounded outward (conversion moves them < 1 fp32 ulp)."""
    lo32, hi32 = lo.float(), hi.float()
    lo32 = torch.nextafter(lo32, torch.full_like(lo32, -math.inf))
    hi32 = torch.nextafter(hi32, torch.full_like(hi32, math.inf))
    return lo32, hi32
