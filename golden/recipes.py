"""Precision recipes: the numerics a kernel declares and its golden mirrors (SPEC sections 2 and 3).

A recipe is a frozen, validated dataclass; every field is a named rounding or ordering decision.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

ROUNDINGS = ("rne", "rtz", "rna")


def _choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


@dataclass(frozen=True)
class AttnRecipe:
    """Numerics of the tiled online-softmax sparse attention.

    tile:     rows per softmax tile (any positive int; need not divide K or be a power of two).
    tiling:   "positional": tiles over index positions, invalid lanes masked;
              "compacted": tiles over the list of valid indices in index order.
    p_dtype:  "bf16": exp weights P are rounded to BF16 before P.V; "fp32": kept in fp32.
    l_from:   "rounded": the denominator sums the (rounded) P; "unrounded": it sums fp32 exp.
    rounding: fp32 -> bf16 rounding of P: "rne" nearest-even, "rtz" toward zero, "rna" ties away.
    out_dtype: dtype of o: "fp32", or "bf16" = nearest-even rounding of the fp32 o (production
              kernels write bf16).
    tile None: untiled, one tile spanning all K index positions (a plain softmax over all rows);
              `tile_for(K)` gives the tile length in effect for K index positions.
    """

    tile: Optional[int] = 64
    tiling: str = "positional"
    p_dtype: str = "bf16"
    l_from: str = "rounded"
    rounding: str = "rne"
    out_dtype: str = "fp32"

    def __post_init__(self) -> None:
        if self.tile is not None and (isinstance(self.tile, bool) or not isinstance(self.tile, int)
                                      or self.tile < 1):
            raise ValueError(f"tile must be a positive int or None (untiled), got {self.tile!r}")
        _choice("tiling", self.tiling, ("positional", "compacted"))
        _choice("p_dtype", self.p_dtype, ("bf16", "fp32"))
        _choice("l_from", self.l_from, ("rounded", "unrounded"))
        _choice("rounding", self.rounding, ROUNDINGS)
        _choice("out_dtype", self.out_dtype, ("fp32", "bf16"))

    def tile_for(self, K: int) -> int:
        """Rows per tile in effect for K index positions: min(tile, K), K when untiled (>= 1).
        A tile longer than K is one tile, so bounds that depend on the tile length use this."""
        K = max(int(K), 1)
        return K if self.tile is None else min(self.tile, K)

    def replace(self, **changes) -> "AttnRecipe":
        return dataclasses.replace(self, **changes)  # re-runs __post_init__ validation


INV_VARIANTS = ("rsqrt", "recip_sqrt", "recip_sqrt_rn", "rsqrt_approx")


@dataclass(frozen=True)
class NormRecipe:
    """Numerics of RMSNorm: y = x * INV(sum(x^2)/D + eps) * weight, rounded once to `out_dtype`.

    inv:         "rsqrt" (tl.math.rsqrt), "recip_sqrt" (1 / tl.sqrt), "recip_sqrt_rn"
                 (div_rn(1, sqrt_rn)), or "rsqrt_approx": a modelled hardware rsqrt with only
                 `approx_bits` correct bits (golden only; reproduces the NPU failure of SPEC 1).
    approx_bits: correct significand bits of "rsqrt_approx" (1..23); ignored otherwise.
    chunk:       columns per fp32 partial sum of squares, summed left to right (None: one reduction).
    out_dtype:   "bf16" or "fp32" output.
    rounding:    fp32 -> bf16 rounding of the output ("rne", "rtz", "rna").
    """

    inv: str = "recip_sqrt"
    approx_bits: int = 12
    chunk: Optional[int] = None
    out_dtype: str = "bf16"
    rounding: str = "rne"

    def __post_init__(self) -> None:
        _choice("inv", self.inv, INV_VARIANTS)
        if isinstance(self.approx_bits, bool) or not isinstance(self.approx_bits, int) \
                or not 1 <= self.approx_bits <= 23:
            raise ValueError(f"approx_bits must be an int in [1, 23], got {self.approx_bits!r}")
        if self.chunk is not None and (isinstance(self.chunk, bool) or not isinstance(self.chunk, int)
                                       or self.chunk < 1):
            raise ValueError(f"chunk must be None or a positive int, got {self.chunk!r}")
        _choice("out_dtype", self.out_dtype, ("bf16", "fp32"))
        _choice("rounding", self.rounding, ROUNDINGS)

    def replace(self, **changes) -> "NormRecipe":
        return dataclasses.replace(self, **changes)  # re-runs __post_init__ validation
