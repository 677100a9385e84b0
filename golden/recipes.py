"""RMSNorm's precision recipe: the numerics a kernel declares and its golden mirrors (SPEC section 3).

A recipe is a frozen, validated dataclass; every field is a named rounding or ordering decision.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

from kernelprop.golden.domain import choice as _choice
from kernelprop.golden.rounding import ROUNDINGS


INV_VARIANTS = ("rsqrt", "recip_sqrt", "recip_sqrt_rn", "rsqrt_approx")


NORM_WEIGHT_OFFSETS = (0.0, 1.0)


def _dtype_name(dtype) -> str:
    """"bf16" or "fp32" for a torch dtype or one of those names (no torch import here)."""
    name = str(dtype).replace("torch.", "")
    names = {"bf16": "bf16", "bfloat16": "bf16", "fp32": "fp32", "float32": "fp32"}
    if name not in names:
        raise ValueError(f"x dtype must be bf16 or fp32, got {dtype!r}")
    return names[name]


@dataclass(frozen=True)
class NormRecipe:
    """Numerics of RMSNorm: y = x * INV(sum(x^2)/D + eps) * (weight_offset + weight), rounded to
    `out_dtype` (SPEC section 3).

    inv:         "rsqrt" (tl.math.rsqrt), "recip_sqrt" (1 / tl.sqrt), "recip_sqrt_rn"
                 (div_rn(1, sqrt_rn)), or "rsqrt_approx": a modelled hardware rsqrt with only
                 `approx_bits` correct bits (golden only; reproduces the NPU failure of SPEC 1).
    approx_bits: correct significand bits of "rsqrt_approx" (1..23); ignored otherwise.
    chunk:       columns per fp32 partial sum of squares, summed left to right (None: one reduction).
    out_dtype:   "bf16", "fp32", or "input": the output dtype follows x (bf16 x -> bf16 y).
    rounding:    fp32 -> bf16 rounding of the output ("rne", "rtz", "rna"); the intermediate
                 roundings of round_before_weight and compute_dtype "input" use it too.
    weight_offset: 0.0 or 1.0: y uses w' = fp32(weight_offset + w) (Gemma's 1 + w; Liger `offset`);
                 ignored without a weight.
    round_before_weight: y = OUT(OUT(x * inv) * w'): x * inv is rounded to the output dtype before
                 the weight product, which is rounded again (HF LlamaRMSNorm, Liger `llama`, vLLM).
                 Without a weight it changes nothing.
    compute_dtype: "fp32", or "input": the steps run in x's dtype C, each result rounded to C
                 (Liger `none` mode; for an fp32 x this is the fp32 recipe). With C = bf16, in
                 order: sq_i = C(x_i^2); ss = fp32 sum of the sq_i (any order; chunk as above)
                 then C(ss) (torch's bf16 sum/mean accumulate in fp32 and round once); ms =
                 C(ss / D); v = C(ms + C(eps)) (eps is converted to x's dtype first, as Liger's
                 none mode does); inv = C(INV(v)) (INV in fp32 on the bf16 v); t = C(x * inv);
                 w' = C(weight_offset + w); y = C(t * w'); then OUT. Each C(a op b) is the fp32
                 operation (correctly rounded) followed by one rounding to C, which is what a GPU
                 does for bf16 arithmetic. A kernel whose reduction adds in bf16 (a tl.sum over a
                 bf16 block) rounds every addition: that is not this recipe (its bf16 partial sums
                 are not modelled); "promote" is.
                 Or "promote": Triton's type promotion on a bf16 x (Liger `none` mode): sq_i =
                 C(x_i^2) and their tl.sum in x's dtype: the squares padded with zeros to the next
                 power of two P >= D, then the pairwise tree s[i] = C(s[i] + s[i + P/2]) (the
                 faithful interpreter's order, kernelprop/faithful/arith.py tree_sum), each
                 addition rounded; ms = fl(ss / D), v = fl(ms + C(eps)), inv = INV(v), t =
                 fl(x * inv) in fp32; w' = C(weight_offset + w); y = fl(t * w'); then OUT. chunk
                 is ignored. For an fp32 x this is the fp32 recipe.
    """

    inv: str = "recip_sqrt"
    approx_bits: int = 12
    chunk: Optional[int] = None
    out_dtype: str = "bf16"
    rounding: str = "rne"
    weight_offset: float = 0.0
    round_before_weight: bool = False
    compute_dtype: str = "fp32"

    def __post_init__(self) -> None:
        _choice("inv", self.inv, INV_VARIANTS)
        if isinstance(self.approx_bits, bool) or not isinstance(self.approx_bits, int) \
                or not 1 <= self.approx_bits <= 23:
            raise ValueError(f"approx_bits must be an int in [1, 23], got {self.approx_bits!r}")
        if self.chunk is not None and (isinstance(self.chunk, bool) or not isinstance(self.chunk, int)
                                       or self.chunk < 1):
            raise ValueError(f"chunk must be None or a positive int, got {self.chunk!r}")
        _choice("out_dtype", self.out_dtype, ("bf16", "fp32", "input"))
        _choice("rounding", self.rounding, ROUNDINGS)
        if isinstance(self.weight_offset, bool) or self.weight_offset not in NORM_WEIGHT_OFFSETS:
            raise ValueError(f"weight_offset must be one of {NORM_WEIGHT_OFFSETS}, "
                             f"got {self.weight_offset!r}")
        object.__setattr__(self, "weight_offset", float(self.weight_offset))
        if not isinstance(self.round_before_weight, bool):
            raise ValueError(f"round_before_weight must be a bool, got {self.round_before_weight!r}")
        _choice("compute_dtype", self.compute_dtype, ("fp32", "input", "promote"))

    def output_dtype(self, x_dtype) -> str:
        """"bf16" or "fp32": the output dtype for an x of `x_dtype` (torch dtype or name)."""
        return _dtype_name(x_dtype) if self.out_dtype == "input" else self.out_dtype

    def compute_in(self, x_dtype) -> str:
        """"bf16" or "fp32": the dtype the steps are rounded to for an x of `x_dtype`."""
        return _dtype_name(x_dtype) if self.compute_dtype == "input" else "fp32"

    def promotes(self, x_dtype) -> bool:
        """Whether the squares and their sum run in bf16 under Triton's promotion (compute_dtype
        "promote" on a bf16 x); the later steps are fp32 (compute_in gives "fp32")."""
        return self.compute_dtype == "promote" and _dtype_name(x_dtype) == "bf16"

    def for_input(self, x_dtype) -> "NormRecipe":
        """This recipe with out_dtype and compute_dtype resolved for an x of `x_dtype` (out_dtype
        "bf16" / "fp32"; compute_dtype "fp32" where x is fp32, as the steps are then fp32)."""
        compute = "input" if self.compute_in(x_dtype) == "bf16" else \
            "promote" if self.promotes(x_dtype) else "fp32"
        return self.replace(out_dtype=self.output_dtype(x_dtype), compute_dtype=compute)

    def replace(self, **changes) -> "NormRecipe":
        return dataclasses.replace(self, **changes)  # re-runs __post_init__ validation
