"""Value <-> storage conversions of the interpreter's float types, in numpy, with the GPU's rounding.

The interpreter stores bf16 as uint16 bit patterns and fp16 as numpy float16. Every low-precision
result here is produced by one rounding of a wider exact-or-fp32 value:
  fp32 -> bf16  rne: b + 0x7FFF + ((b >> 16) & 1), then the low 16 bits dropped (cvt.rn.bf16.f32);
                rtz: the low 16 bits dropped (cvt.rz.bf16.f32); NaN -> 0x7FC0 with its sign.
  fp32 -> fp16  rne: numpy's astype (IEEE); rtz: rne, stepped one ulp toward zero when it rounded up.
  fp64 -> bf16/fp16: round to odd to fp32 first (inexact -> odd last bit), then the above: with 24
                >= 8 + 2 and 24 >= 11 + 2 bits, round-to-odd then rounding equals one direct rounding.
"""
from __future__ import annotations

import numpy as np

_QUIET_NAN_BF16 = np.uint16(0x7FC0)


def bf16_bits_to_f32(bits: np.ndarray) -> np.ndarray:
    return (np.asarray(bits).astype(np.uint32) << np.uint32(16)).view(np.float32)


def f32_to_bf16_bits(x: np.ndarray, rtz: bool = False) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)  # same itemsize: .view works on any layout, keeps 0-d
    bits = x.view(np.uint32)
    if not rtz:
        bits = bits + (np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1)))
    out = (bits >> np.uint32(16)).astype(np.uint16)
    nan = np.isnan(x)
    if nan.any():
        sign = ((x.view(np.uint32) >> np.uint32(16)) & np.uint32(0x8000)).astype(np.uint16)
        out = np.where(nan, sign | _QUIET_NAN_BF16, out)
    return out


def f32_to_f16(x: np.ndarray, rtz: bool = False) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(over="ignore"):
        out = x.astype(np.float16)
    if rtz:
        rounded_up = np.isfinite(x) & (np.abs(out.astype(np.float32)) > np.abs(x))
        out = np.where(rounded_up, (out.view(np.uint16) - np.uint16(1)).view(np.float16), out)
    return out


def f64_to_f32_round_to_odd(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        near = x.astype(np.float32)
        inexact = (near.astype(np.float64) != x) & ~np.isnan(x)
        even = (near.view(np.uint32) & np.uint32(1)) == 0
        toward = np.where(x > near.astype(np.float64), np.float32(np.inf), np.float32(-np.inf))
        return np.where(inexact & even, np.nextafter(near, toward), near)


def exact_sum_round_to_odd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b (fp64) rounded to odd in fp64: TwoSum gives the exact error of the nearest sum."""
    with np.errstate(over="ignore", invalid="ignore"):
        s = a + b
        bb = s - a
        err = (a - (s - bb)) + (b - bb)
        inexact = (err != 0) & np.isfinite(s)
        even = (s.view(np.uint64) & np.uint64(1)) == 0
        toward = np.where(err > 0, np.inf, -np.inf)
        return np.where(inexact & even, np.nextafter(s, toward), s)
