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

CUDA (sm_90a, triton 3.6.0; docs/bounds.md#gpu-model): one figure per PTX instruction the kernels
compile to, from its primary source (`PTX_FIGURES`, read by the PTX audit kernelprop/core/ptx_audit.py),
and the tensor-core block-FMA model of bf16 dots (`TensorCoreModel`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

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


# %% which model the bounds use

ERROR_MODELS = ("cpu", "cuda")


def error_model_family(backend: Optional[str] = None) -> str:
    """The error model the bounds charge: "cuda" (the PTX figures, docs/bounds.md#gpu-model) or
    "cpu". knobs.error_model (pytest `--error-model`) when set, so the CUDA bounds can check
    an emulated GPU on the CPU backend; else the suite backend's (`backend`, else knobs.backend):
    "cuda" for cuda, "cpu" for every other backend name."""
    from kernelprop.core import knobs   # a setting, read when asked (golden/ imports no core module at import)

    chosen = knobs.error_model.get()
    if chosen is None:
        return "cuda" if (backend or knobs.backend.get()) == "cuda" else "cpu"
    if chosen not in ERROR_MODELS:
        raise ValueError(f"{knobs.error_model.variable} must be one of {ERROR_MODELS}, got {chosen!r}")
    return chosen


# %% CUDA: one figure per PTX instruction (PTX ISA 9.1 section 9.7.3; CUDA C++ Programming Guide)

LOG2E_FP32 = 1.44269502162933349609375          # 0x3FB8AA3B: tl.exp's fp32 constant
LOG2E_CONST_UNITS = abs(LOG2E_FP32 * math.log(2) - 1) / U_FP32   # 0.224: its relative error in u


@dataclass(frozen=True)
class PtxFigure:
    """The modelled error of one PTX instruction: `rel` relative to the exact result (normal
    range), `subnormal_abs` absolute where the result is subnormal, `flushes` whether subnormal
    inputs / results become 0, and where the figure comes from."""

    rel: float
    subnormal_abs: float
    flushes: bool
    source: str


# The PTX ISA states ex2.approx and div.full in ulps "from the correctly rounded result": <= 2 ulp
# from it is <= 2.5 ulp = 2.5 x 2^-23 from the exact value. rsqrt.approx: relative 2^-22.9;
# sqrt.approx: relative 2^-23; .rn forms: one IEEE rounding (u). The keys are the instruction
# stems the audit matches (modifiers .ftz / .f32 split off).
PTX_FIGURES = {
    "ex2.approx": PtxFigure(2.5 * FP32_ULP_REL, 2.5 * FP32_SUBNORMAL_ULP, False,
                            "PTX ISA 9.1 9.7.3 ex2: max 2 ulp from the correctly rounded result, full range"),
    "ex2.approx.ftz": PtxFigure(2.5 * FP32_ULP_REL, FP32_MIN_NORMAL, True,
                                "PTX ISA 9.1 9.7.3 ex2 (.ftz: subnormal inputs and results flush)"),
    "rsqrt.approx": PtxFigure(2.0 ** -22.9, 0.0, False,
                              "PTX ISA 9.1 9.7.3 rsqrt: max relative error 2^-22.9 over the positive finite range"),
    "rsqrt.approx.ftz": PtxFigure(2.0 ** -22.9, 0.0, True, "PTX ISA 9.1 9.7.3 rsqrt (.ftz: subnormal input -> inf)"),
    "sqrt.approx": PtxFigure(FP32_ULP_REL, 0.0, False, "PTX ISA 9.1 9.7.3 sqrt: max relative error 2^-23"),
    "sqrt.approx.ftz": PtxFigure(FP32_ULP_REL, 0.0, True, "PTX ISA 9.1 9.7.3 sqrt (.ftz: subnormal input -> 0)"),
    "sqrt.rn": PtxFigure(U_FP32, FP32_HALF_SUBNORMAL, False, "PTX ISA 9.1 9.7.3 sqrt.rn: IEEE 754 rounding"),
    "div.rn": PtxFigure(U_FP32, FP32_HALF_SUBNORMAL, False, "PTX ISA 9.1 9.7.3 div.rn: IEEE 754 rounding"),
    "div.full": PtxFigure(2.5 * FP32_ULP_REL, 2.5 * FP32_SUBNORMAL_ULP, False,
                          "PTX ISA 9.1 9.7.3 div.full: max 2 ulp (taken from the correctly rounded result)"),
    "div.full.ftz": PtxFigure(2.5 * FP32_ULP_REL, FP32_MIN_NORMAL, True, "PTX ISA 9.1 9.7.3 div.full (.ftz)"),
    "rcp.rn": PtxFigure(U_FP32, FP32_HALF_SUBNORMAL, False, "PTX ISA 9.1 9.7.3 rcp.rn: IEEE 754 rounding"),
    "mul.rn": PtxFigure(U_FP32, FP32_HALF_SUBNORMAL, False, "IEEE 754 binary32 multiply, gradual underflow"),
    "add.rn": PtxFigure(U_FP32, FP32_HALF_SUBNORMAL, False, "IEEE 754 binary32 add, gradual underflow"),
    "sub.rn": PtxFigure(U_FP32, FP32_HALF_SUBNORMAL, False, "IEEE 754 binary32 subtract, gradual underflow"),
    "fma.rn": PtxFigure(U_FP32, FP32_HALF_SUBNORMAL, False, "IEEE 754 fused multiply-add: one rounding"),
    # libdevice code (nvvm-reflect-ftz on: triton/backends/nvidia/compiler.py enable_reflect_ftz)
    "mul.rn.ftz": PtxFigure(U_FP32, FP32_MIN_NORMAL, True, "IEEE multiply, subnormals flushed (.ftz)"),
    "add.rn.ftz": PtxFigure(U_FP32, FP32_MIN_NORMAL, True, "IEEE add, subnormals flushed (.ftz)"),
    "sub.rn.ftz": PtxFigure(U_FP32, FP32_MIN_NORMAL, True, "IEEE subtract, subnormals flushed (.ftz)"),
    "fma.rn.ftz": PtxFigure(U_FP32, FP32_MIN_NORMAL, True, "IEEE fma, subnormals flushed (.ftz)"),
    # fp32 -> bf16 / fp16 conversions: round to nearest even (cvt.rn) or toward zero (cvt.rz)
    "cvt.rn.bf16": PtxFigure(U_BF16, BF16_MIN_ULP / 2, False, "PTX ISA cvt.rn: nearest even"),
    "cvt.rz.bf16": PtxFigure(2 * U_BF16, BF16_MIN_ULP, False, "PTX ISA cvt.rz: toward zero"),
    "cvt.rn.f16": PtxFigure(2.0 ** -11, 2.0 ** -25, False, "PTX ISA cvt.rn to binary16: nearest even"),
    "cvt.rz.f16": PtxFigure(2.0 ** -10, 2.0 ** -24, False, "PTX ISA cvt.rz to binary16: toward zero"),
}
# the instructions whose modelled error is the tensor-core block FMA (TensorCoreModel)
TENSOR_CORE_KINDS = ("wgmma.f32.bf16.bf16", "mma.f32.bf16.bf16", "wgmma.f32.f16.f16", "mma.f32.f16.f16")

# torch's fp32 exp on CUDA (expf, also the golden's on --backend cuda): 2 ulp from the correctly
# rounded result (CUDA C++ Programming Guide, single-precision functions table; "not guaranteed
# bounds"), i.e. <= 2.5 ulp = 5u from the exact value; SLEEF's 1 ulp on the CPU is inside it.
TORCH_EXPF_REL = 2.5 * FP32_ULP_REL


@dataclass(frozen=True)
class TensorCoreModel:
    """A bf16 (or fp16) tensor-core dot with fp32 accumulation as a chain of block FMAs
    (Fasi, Higham, Mikaitis, Pranesh 2021 for V100/T4/A100; wgmma k16 on sm_90a):

    the accumulator c and the `block` exact products of the next `block` coordinates are aligned to
    the largest of them in magnitude, 2^e <= max|t| < 2^(e+1): every term is truncated toward zero
    to the grid g = 2^(e - 23 - extra_bits) (no guard digits: extra_bits = 0; a term below g is
    lost), the truncated terms are added exactly, and the sum is truncated (RZ) to fp32. Blocks are
    taken in coordinate order (the wgmma chain along k). Per block the error is
        sum over the non-largest terms of min(|t|, g)  +  ulp of the result (< 2^-23 |S| = 2u|S|).
    extra_bits = 0 is the sound default: no source gives H100's bf16 count (SPEC 5)."""

    block: int = 16
    extra_bits: int = 0

    def grid(self, m: torch.Tensor) -> torch.Tensor:
        """The truncation grid for blocks whose largest |term| is m (0 where m == 0)."""
        _, e = torch.frexp(m)                   # m = f 2^e, f in [0.5, 1): 2^(e - 1) <= m < 2^e
        g = torch.ldexp(torch.ones_like(m), e - 1 - 23 - self.extra_bits)
        return torch.where(m > 0, g, torch.zeros_like(m))

    def dot_error(self, prod: torch.Tensor) -> torch.Tensor:
        """float64 [...] bound on |tc(sum prod) - sum prod| for the exact products prod [..., n]
        (float64), blocks in order along the last dim. The accumulator entering a block is bounded
        by |exact prefix| + the error so far (both the alignment and the final truncation only
        grow with it)."""
        prod = prod.double()
        n = prod.shape[-1]
        err = torch.zeros(prod.shape[:-1], dtype=torch.float64, device=prod.device)
        prefix = torch.zeros_like(err)
        for start in range(0, n, self.block):
            p = prod[..., start:start + self.block]
            c = prefix.abs() + err
            pa = p.abs()
            g = self.grid(torch.maximum(c, pa.amax(-1)))
            # every term but one (the largest, exact on its own grid) loses < min(|t|, g):
            # charging all of them costs one g more, which keeps this independent of ties
            align = torch.minimum(pa, g[..., None]).sum(-1) + torch.minimum(c, g)
            prefix = prefix + p.sum(-1)
            err = err + align + 2 * U_FP32 * (prefix.abs() + err + align)
        return err

    def sum_rel(self, n: int) -> float:
        """Worst case over every input: bound on the error of an n-term tensor-core sum relative to
        the sum of |terms| (and any accumulator) A: per block 16 g + 2u|S| <= (block 2^-extra_bits
        + 1) 2u A (g <= 2^(-23 - extra_bits) max|t| <= 2u 2^-extra_bits A, |S| <= A)."""
        blocks = -(-n // self.block)
        return blocks * (self.block * 2.0 ** -self.extra_bits + 1) * 2 * U_FP32 * (1 + 2.0 ** -20)


def tc_dot_emulate(a: torch.Tensor, b: torch.Tensor, model: TensorCoreModel = TensorCoreModel()) -> torch.Tensor:
    """fp32 [...] sum_i a_i b_i as `model` describes, bit for bit, for bf16 / fp16 a, b [..., n]
    (broadcast): exact products (16 significant bits, float64 holds them), per block alignment
    to the largest |term| with truncation toward zero, exact addition, RZ to fp32."""
    prod = a.double() * b.double()
    acc = torch.zeros(prod.shape[:-1], dtype=torch.float64, device=prod.device)
    for start in range(0, prod.shape[-1], model.block):
        terms = torch.cat([acc[..., None], prod[..., start:start + model.block]], -1)
        g = model.grid(terms.abs().amax(-1))[..., None]
        safe = torch.where(g > 0, g, torch.ones_like(g))
        aligned = torch.trunc(terms / safe) * safe      # exact: powers of two, < 2^54 steps
        acc = _rz_fp32(aligned.sum(-1))                  # <= 17 terms of < 2^(25 + extra) steps: exact
    return acc.float()


def _rz_fp32(x: torch.Tensor) -> torch.Tensor:
    """float64 -> the fp32 value toward zero (as float64)."""
    f = x.float()
    over = f.double().abs() > x.abs()
    return torch.where(over, torch.nextafter(f, torch.zeros_like(f)), f).double()


# Split-KV decode (docs/bounds.md#split-kv): the instructions its two stages add.
# log: tl.log = lg2.approx.f32 (PTX ISA: absolute error 2^-22 on (0.5, 2), relative 2^-22
# elsewhere, in log2 units) times fp32(ln 2) (one rounding, a constant off by <= u), or a
# libdevice / libm logf within 1 ulp: |fl(log x) - log x| <= LOG_ABS + LOG_REL |log x|.
LOG_ABS = 2.0 ** -22
LOG_REL = 2.0 ** -21
