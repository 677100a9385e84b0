"""The interpreter's storage of each float type <-> numpy values, rounding as the GPU does.

`values` widens exactly (bf16 bits -> fp32, fp16 -> fp32); `storage` rounds once into the type
(rounding.py). fp8 types have no faithful model here: they raise CannotCheckOnBackend."""
from __future__ import annotations

import numpy as np
import triton.language as tl

from kernelprop.faithful.errors import CannotCheckOnBackend
from kernelprop.faithful.rounding import (bf16_bits_to_f32, f32_to_bf16_bits, f32_to_f16,
                                          f64_to_f32_round_to_odd)

LOW_PRECISION = (tl.bfloat16, tl.float16)


def is_low_precision(ty) -> bool:
    return ty in LOW_PRECISION


def refuse_fp8(*types, operation: str) -> None:
    for ty in types:
        if ty.is_fp8():
            raise CannotCheckOnBackend(f"{operation} with {ty} (fp8 has no faithful model)")


def values(data: np.ndarray, ty) -> np.ndarray:
    """Numeric values of interpreter storage `data` of scalar type `ty` (exact)."""
    refuse_fp8(ty, operation="arithmetic")
    if ty == tl.bfloat16:
        return bf16_bits_to_f32(data)
    if ty == tl.float16:
        return np.asarray(data).astype(np.float32)
    return np.asarray(data)


def _f64_to_f32(x: np.ndarray, rtz: bool) -> np.ndarray:
    with np.errstate(over="ignore"):
        near = x.astype(np.float32)
    if rtz:
        up = np.isfinite(x) & (np.abs(near.astype(np.float64)) > np.abs(x))
        near = np.where(up, np.nextafter(near, np.float32(0)), near)
    return near


def storage(x: np.ndarray, ty, rtz: bool = False) -> np.ndarray:
    """Round numeric values `x` (float32 or float64) once into type `ty`'s storage."""
    refuse_fp8(ty, operation="conversion")
    x = np.asarray(x)
    if ty == tl.float64:
        return x.astype(np.float64)
    wide = x.dtype == np.float64 or x.dtype.kind in "iub"
    if ty == tl.float32:
        return _f64_to_f32(x.astype(np.float64), rtz) if wide else x.astype(np.float32)
    as_f32 = f64_to_f32_round_to_odd(x.astype(np.float64)) if wide else x.astype(np.float32)
    if ty == tl.bfloat16:
        return f32_to_bf16_bits(as_f32, rtz)
    if ty == tl.float16:
        return f32_to_f16(as_f32, rtz)
    raise TypeError(f"storage: not a float type: {ty}")
