"""fp32 -> bf16 rounding inside Triton kernels, bit for bit the rule of golden/rounding.py.

Integer bit arithmetic rather than `.to(tl.bfloat16)`: the interpreter's fp32 -> bf16 cast
truncates (SPEC section 5), and on GPU the cast only knows nearest-even. With b the uint32 bits:
  rne: b + 0x7FFF + ((b >> 16) & 1), rna: b + 0x8000, rtz: b; then the low 16 bits are cleared.
uint32 arithmetic wraps exactly like the golden's `& 0xFFFFFFFF`. NaN passes through as a quiet NaN
(quiet bit set, so a later truncating cast to bf16 cannot turn a low-payload NaN into inf).
The result is an fp32 tensor holding bf16-representable values, so a following cast is exact.
"""
import triton
import triton.language as tl

# recipe.rounding -> constexpr mode code of tl_round_to_bf16
ROUNDING_CODE = {"rne": 0, "rtz": 1, "rna": 2}


@triton.jit
def tl_round_to_bf16(x, MODE: tl.constexpr):
    """x: fp32 tensor; MODE: 0 rne, 1 rtz, 2 rna. Returns fp32 with bf16-representable values."""
    bits = x.to(tl.uint32, bitcast=True)
    if MODE == 0:
        rounded = bits + (0x7FFF + ((bits >> 16) & 1))
    elif MODE == 2:
        rounded = bits + 0x8000
    else:
        rounded = bits
    rounded = rounded & 0xFFFF0000
    quiet_nan = bits | 0x00400000
    return tl.where(x != x, quiet_nan.to(tl.float32, bitcast=True), rounded.to(tl.float32, bitcast=True))
