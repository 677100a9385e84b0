"""libdevice functions (`triton.language.extra[.cuda].libdevice`) evaluated in the interpreter.

Raw interpreter (SPEC section 5): `triton.language.extra.libdevice` holds stubs whose body is `...`
(they return None: Liger's `rsqrt(var)` is None), and the cuda module's functions need a compiler.
Here a stub or cuda function called from a kernel runs triton's own dispatch (argument types,
broadcasting, the `__nv_*` symbol) with the interpreter's semantic, and the symbol is evaluated by
numpy: fp32 symbols in fp64 on the exact fp32 inputs, rounded once to fp32 (a correctly rounded
function value, where libdevice itself is within its documented ulps; `fast_*` and `.approx` forms
too); `_rn` arithmetic (div_rn, sqrt_rn, rcp_rn, fma_rn, ...) is IEEE-exact that way. fp64 symbols
are numpy fp64. A symbol not in the table (other rounding directions, bessel functions, bit
tricks) raises CannotCheckOnBackend naming it, and so does inline PTX (`inline_asm_elementwise`).
"""
from __future__ import annotations

import math
import types

import numpy as np
from triton.runtime import interpreter as _interp

from kernelprop.faithful.errors import CannotCheckOnBackend
from kernelprop.faithful.rounding import exact_sum_round_to_odd
from kernelprop.faithful.values import storage, values

TensorHandle = _interp.TensorHandle

_erf = np.vectorize(math.erf, otypes=[np.float64])
_erfc = np.vectorize(math.erfc, otypes=[np.float64])
_lgamma = np.vectorize(math.lgamma, otypes=[np.float64])


def _gamma(v: float) -> float:
    try:
        return math.gamma(v)
    except (ValueError, OverflowError):
        return math.copysign(math.inf, v) if v == 0 or v > 0 else math.nan


_tgamma = np.vectorize(_gamma, otypes=[np.float64])

# base name -> fp64 function; symbols __nv_<base>f (fp32), __nv_<base> (fp64), __nv_fast_<base>f
ELEMENTARY = {
    "exp": np.exp, "exp2": np.exp2, "exp10": lambda x: np.power(10.0, x), "expm1": np.expm1,
    "log": np.log, "log2": np.log2, "log10": np.log10, "log1p": np.log1p,
    "sqrt": np.sqrt, "rsqrt": lambda x: 1.0 / np.sqrt(x), "cbrt": np.cbrt, "rcbrt": lambda x: 1.0 / np.cbrt(x),
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan,
    "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh, "asinh": np.arcsinh, "acosh": np.arccosh,
    "atanh": np.arctanh, "sinpi": lambda x: np.sin(np.pi * x), "cospi": lambda x: np.cos(np.pi * x),
    "erf": _erf, "erfc": _erfc, "lgamma": _lgamma, "tgamma": _tgamma,
    "pow": np.power, "atan2": np.arctan2, "hypot": np.hypot, "fmod": np.fmod, "copysign": np.copysign,
    "remainder": np.remainder, "fdim": lambda x, y: np.where(x > y, x - y, 0.0),
    "fabs": np.abs, "floor": np.floor, "ceil": np.ceil, "trunc": np.trunc, "rint": np.rint,
    "nearbyint": np.rint, "round": lambda x: np.copysign(np.floor(np.abs(x) + 0.5), x),
    "fdivide": np.divide, "isnan": np.isnan, "isinf": np.isinf, "finite": np.isfinite,
    "isfinite": np.isfinite, "signbit": np.signbit, "saturate": lambda x: np.clip(x, 0.0, 1.0),
}
# IEEE round-to-nearest arithmetic, fp32 and fp64 spellings
ROUNDED = {"add_rn": np.add, "sub_rn": np.subtract, "mul_rn": np.multiply, "div_rn": np.divide,
           "rcp_rn": lambda x: 1.0 / x, "sqrt_rn": np.sqrt, "rsqrt_rn": lambda x: 1.0 / np.sqrt(x)}


def _symbols() -> dict:
    table = {}
    for base, fn in ELEMENTARY.items():
        for symbol in (f"__nv_{base}f", f"__nv_{base}", f"__nv_fast_{base}f", f"__nv_{base}d"):
            table[symbol] = fn
    for base, fn in ROUNDED.items():
        table[f"__nv_f{base}"] = fn
        table[f"__nv_d{base}"] = fn
    table["__nv_fast_fdividef"] = np.divide
    return table


SYMBOLS = _symbols()
FMA = ("__nv_fmaf", "__nv_fmaf_rn", "__nv_fma", "__nv_fma_rn")


def create_extern_elementwise(self, libName, libPath, symbol, argList, retType, isPure):
    ret_ty = retType.scalar
    with np.errstate(all="ignore"):
        wide = [values(h.data, h.dtype.scalar).astype(np.float64) if h.dtype.scalar.is_floating()
                else np.asarray(h.data) for h in argList]
        if symbol in FMA:
            if ret_ty.primitive_bitwidth == 64:
                return TensorHandle(wide[0] * wide[1] + wide[2], ret_ty)
            result = exact_sum_round_to_odd(wide[0] * wide[1], wide[2])
        elif symbol in SYMBOLS:
            result = np.asarray(SYMBOLS[symbol](*wide))
        else:
            raise CannotCheckOnBackend(f"libdevice symbol {symbol}")
        if ret_ty.is_floating():
            return TensorHandle(storage(result.astype(np.float64), ret_ty), ret_ty)
        return TensorHandle(result.astype(_interp._get_np_dtype(ret_ty)), ret_ty)


def create_inline_asm(self, inlineAsm, constraints, values, type, isPure, pack):
    raise CannotCheckOnBackend(f"inline_asm_elementwise ({inlineAsm.strip().splitlines()[0][:60]!r})")


def _interpreted(name: str, target):
    def call(*args, _semantic=None, **kwargs):
        if target is None:
            raise CannotCheckOnBackend(f"libdevice.{name} (no CUDA libdevice function of that name)")
        return target(*args, _semantic=_interp.interpreter_semantic, **kwargs)

    call.__name__ = name
    return call


def _modules():
    import triton.language.extra.cuda.libdevice as cuda
    import triton.language.extra.libdevice as stubs

    return stubs, cuda


def replacements() -> dict:
    """{id(original function): interpreted callable} for the stub and the cuda module's functions."""
    stubs, cuda = _modules()
    table = {}
    for module in (stubs, cuda):
        for name, fn in vars(module).items():
            if isinstance(fn, types.FunctionType) and fn.__module__ == module.__name__:
                table[id(fn)] = (fn, _interpreted(name, getattr(cuda, name, None)))
    return table


class GlobalsPatch:
    """Swaps libdevice functions imported by name into a kernel module's globals (Liger's
    `from triton.language.extra.libdevice import rsqrt`), and the modules' own attributes."""

    def __init__(self, patcher):
        self.patcher = patcher
        self.table = replacements()
        self.seen: set[int] = set()
        stubs, cuda = _modules()
        for module in (stubs, cuda):
            for name, fn in list(vars(module).items()):
                if id(fn) in self.table and self.table[id(fn)][0] is fn:
                    patcher.set_attr(module, name, self.table[id(fn)][1])

    def cover(self, fn_globals: dict) -> None:
        if id(fn_globals) in self.seen:
            return
        self.seen.add(id(fn_globals))
        for name, value in list(fn_globals.items()):
            entry = self.table.get(id(value))
            if entry is not None and entry[0] is value:
                self.patcher.set_item(fn_globals, name, entry[1])


def install(patcher) -> GlobalsPatch:
    builder = _interp.InterpreterBuilder
    patcher.set_attr(builder, "create_extern_elementwise", create_extern_elementwise)
    patcher.set_attr(builder, "create_inline_asm", create_inline_asm)
    globals_patch = GlobalsPatch(patcher)
    raw_patch_lang = _interp._patch_lang

    def patch_lang(fn):
        globals_patch.cover(fn.__globals__)
        return raw_patch_lang(fn)

    patcher.set_attr(_interp, "_patch_lang", patch_lang)
    return globals_patch

