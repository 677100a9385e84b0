"""Casts, stores, constants and float arguments as compiled Triton has them.

Raw interpreter (SPEC section 5): fp32 -> bf16 truncates (even with rounding 'rtne'), casts between
bf16 and anything but fp32 reinterpret numbers as integers, `get_bf16` is missing, and a Python
float argument stays a Python float. Here every float conversion is one rounding to nearest even
(`cvt.rn`), or toward zero where the kernel asks (`fp_downcast_rounding="rtz"`); a store casts
through the same path; a float argument is an fp32 scalar, as `mangle_type` specializes it."""
from __future__ import annotations

import numpy as np
import triton.language as tl
from triton._C.libtriton import ir as _ir
from triton.runtime import interpreter as _interp

from kernelprop.faithful.values import refuse_fp8, storage, values

TensorHandle = _interp.TensorHandle


def _convert(data: np.ndarray, src, dst, rtz: bool) -> np.ndarray:
    refuse_fp8(src, dst, operation=f"conversion {src} -> {dst}")
    if dst.is_floating():
        if src.is_floating():
            return storage(values(data, src), dst, rtz)
        # int -> bf16 goes through fp32 (Triton's SIToFP lowering: sitofp f32, then cvt.rn.bf16.f32)
        wide = np.float32 if dst == tl.bfloat16 else np.float64
        return storage(np.asarray(data).astype(wide), dst, rtz)
    if src.is_floating():  # fp -> int: toward zero (cvt.rzi)
        with np.errstate(invalid="ignore"):
            return values(data, src).astype(_interp._get_np_dtype(dst))
    return None


def cast_impl(self, src, dst_type):
    src_ty, dst_ty = src.dtype.scalar, dst_type.scalar
    converted = _convert(src.data, src_ty, dst_ty, rtz=False)
    if converted is None:
        return RAW["cast_impl"](self, src, dst_type)
    return TensorHandle(converted, dst_ty)


def create_fp_to_fp(self, src, dst_type, rounding_mode):
    rtz = rounding_mode == _ir.ROUNDING_MODE.RTZ
    return TensorHandle(_convert(src.data, src.dtype.scalar, dst_type.scalar, rtz), dst_type.scalar)


def get_bf16(self, value):
    return TensorHandle(storage(np.array([value], dtype=np.float64), tl.bfloat16), tl.bfloat16)


def implicit_cvt(arg):
    if isinstance(arg, float):
        return tl.tensor(TensorHandle(np.array([arg], dtype=np.float32), tl.float32), tl.float32)
    return RAW["_implicit_cvt"](arg)


RAW: dict = {}


def install(patcher) -> None:
    builder = _interp.InterpreterBuilder
    RAW["cast_impl"] = builder.cast_impl
    RAW["_implicit_cvt"] = _interp._implicit_cvt
    patcher.set_attr(builder, "cast_impl", cast_impl)  # every create_*_to_* and create_fp_trunc/ext
    patcher.set_attr(builder, "create_fp_to_fp", create_fp_to_fp)
    patcher.set_attr(builder, "get_bf16", get_bf16)
    patcher.set_attr(_interp, "_implicit_cvt", implicit_cvt)
