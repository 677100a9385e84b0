"""The fp32 / bf16 error model every bound is built from (docs/bounds.md, SPEC sections 4 and 5).

One name per quantity, used by every op's bounds:
  U_FP32            fp32 unit roundoff 2^-24: one round-to-nearest moves x by at most U_FP32 |x|
  U_BF16            bf16 unit roundoff 2^-8 (nearest-even / ties-away); truncation: 2 U_BF16
  FP32_ULP_REL      2^-23: one fp32 ulp is at most this fraction of the value (error counts in ulps)
  BF16_ROUNDOFF     bf16 rounding unit per rounding mode (rne, rna: 2^-8; rtz: 2^-7)
  FP32_MIN_NORMAL   2^-126: below it fp32 is subnormal (and flushed to zero under FTZ)
  FP32_SUBNORMAL_ULP 2^-149: spacing of subnormal fp32 (the smallest positive fp32)
  FP32_HALF_SUBNORMAL 2^-150: absolute error of one nearest rounding in the subnormal range
  BF16_MIN_ULP      2^-133: spacing of subnormal bf16
  FP32_MAX          largest finite fp32
  gamma(n, u)       Higham's gamma_n = n u / (1 - n u): n chained roundings
  probabilistic_gamma(n, lam, u)  Higham & Mary (2019): exp(lam sqrt(n) u + n u^2 / (1 - u)) - 1
  rounding_interval_gap(y, rel, mode)  the rounding gap: how far the bf16 rounding of y can move
                    when y moves by a relative `rel` (0 where the rounding is decided)
"""
from __future__ import annotations

import math

import torch

from kernelprop.golden.rounding import round_to_bf16

U_FP32 = 2.0 ** -24
U_BF16 = 2.0 ** -8
FP32_ULP_REL = 2.0 ** -23
BF16_ROUNDOFF = {"rne": U_BF16, "rna": U_BF16, "rtz": 2 * U_BF16}
FP32_MIN_NORMAL = 2.0 ** -126
FP32_SUBNORMAL_ULP = 2.0 ** -149
FP32_HALF_SUBNORMAL = 2.0 ** -150
BF16_MIN_ULP = 2.0 ** -133
FP32_MAX = torch.finfo(torch.float32).max


def gamma(n, u: float = U_FP32):
    """Higham's gamma_n = n u / (1 - n u): bound on the relative error of n chained roundings."""
    return n * u / (1 - n * u)


def probabilistic_gamma(n: int, lam: float, unit: float = U_FP32) -> float:
    """Higham & Mary's gamma~_n(lambda) = exp(lambda sqrt(n) u + n u^2 / (1 - u)) - 1."""
    return math.expm1(lam * math.sqrt(n) * unit + n * unit * unit / (1 - unit))


def rounding_interval_gap(y: torch.Tensor, rel: torch.Tensor, mode: str) -> torch.Tensor:
    """|round(y(1+rel)) - round(y(1-rel))|: the largest change of the rounded output that a
    relative perturbation up to `rel` can cause (0 where the rounding is decided)."""
    yd = y.double()
    hi = (yd + yd.abs() * rel).float()
    lo = (yd - yd.abs() * rel).float()
    # the fp32 rounding of an endpoint moves it by at most half an fp32 ulp: widen by one ulp
    hi = torch.nextafter(hi, torch.full_like(hi, float("inf")))
    lo = torch.nextafter(lo, torch.full_like(lo, -float("inf")))
    return (round_to_bf16(hi, mode) - round_to_bf16(lo, mode)).abs()


# Split-KV decode (docs/bounds.md#split-kv): the instructions its two stages add.
# log: tl.log = lg2.approx.f32 (PTX ISA: absolute error 2^-22 on (0.5, 2), relative 2^-22
# elsewhere, in log2 units) times fp32(ln 2) (one rounding, a constant off by <= u), or a
# libdevice / libm logf within 1 ulp: |fl(log x) - log x| <= LOG_ABS + LOG_REL |log x|.
LOG_ABS = 2.0 ** -22
LOG_REL = 2.0 ** -21
# x / y in Triton is div.full.f32: 2 ulp from the correctly rounded quotient (PTX ISA), so
# <= 2.5 ulp = 5 u of the exact one (IEEE division: u).
DIV_FULL_REL = 5 * U_FP32
