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
    kv_splits: None: no split (one pass over the keys). n: split-KV decode (FlashDecoding; SGLang,
              vLLM): a token's n_valid valid keys, in index order (the compacted list: needs
              tiling "compacted"), are cut into contiguous splits of `split_len(n_valid)` keys
              (the last one shorter; splits past the end are empty). Each non-empty split i runs
              the tiled softmax above from its own first key (tiles restart at the split) and
              writes, in fp32, o_i = O_i / L_i and lse_i = M_i + log(L_i). Stage 2 merges the
              non-empty splits: X = max lse_i, w_i = exp(lse_i - X),
              o = (sum_i w_i o_i) / (sum_i w_i + exp(sink - X)). Empty splits contribute nothing
              (never a NaN); a token with no valid key gives zeros.
    split_align: split length = cdiv(n_valid, kv_splits) rounded up to a multiple of split_align
              (SGLang: kv_splits 8, split_align 32; vLLM: split_align 1, kv_splits from its
              heuristic: declare a callable recipe, SPEC section 6). Ignored without kv_splits.
    p_max:    the max P is taken against. "tile": p_j = exp(s_j - m_t), m_t the max of j's tile,
              merged with a = exp(M - M'), b = exp(m_t - M'), M' = max(M, m_t).
              "running" (FlashAttention-2; SGLang's decode kernels): p_j = exp(s_j - M'), the
              running max including this tile, so O = a O + P.V and L = a L + l_t (l_t the tile's
              sum as l_from says; b = 1, never computed). The two agree when a pass (or split) is one tile.
    """

    tile: Optional[int] = 64
    tiling: str = "positional"
    p_dtype: str = "bf16"
    l_from: str = "rounded"
    rounding: str = "rne"
    out_dtype: str = "fp32"
    kv_splits: Optional[int] = None
    split_align: int = 1
    p_max: str = "tile"

    def __post_init__(self) -> None:
        if self.tile is not None and (isinstance(self.tile, bool) or not isinstance(self.tile, int)
                                      or self.tile < 1):
            raise ValueError(f"tile must be a positive int or None (untiled), got {self.tile!r}")
        _choice("tiling", self.tiling, ("positional", "compacted"))
        _choice("p_dtype", self.p_dtype, ("bf16", "fp32"))
        _choice("l_from", self.l_from, ("rounded", "unrounded"))
        _choice("rounding", self.rounding, ROUNDINGS)
        _choice("out_dtype", self.out_dtype, ("fp32", "bf16"))
        _choice("p_max", self.p_max, ("tile", "running"))
        if self.kv_splits is not None and (isinstance(self.kv_splits, bool)
                                           or not isinstance(self.kv_splits, int)
                                           or self.kv_splits < 1):
            raise ValueError(f"kv_splits must be None (no split) or a positive int, "
                             f"got {self.kv_splits!r}")
        if isinstance(self.split_align, bool) or not isinstance(self.split_align, int) \
                or self.split_align < 1:
            raise ValueError(f"split_align must be a positive int, got {self.split_align!r}")
        if self.kv_splits is not None and self.tiling != "compacted":
            raise ValueError("kv_splits needs tiling='compacted' (splits cut the list of valid "
                             f"keys), got tiling={self.tiling!r}")

    def split_len(self, n_valid: int) -> int:
        """Keys per split for a token with n_valid valid keys: cdiv(n_valid, kv_splits) rounded
        up to a multiple of split_align (>= 1; n_valid itself when not split)."""
        n_valid = max(int(n_valid), 1)
        if self.kv_splits is None:
            return n_valid
        per = -(-n_valid // self.kv_splits)
        return -(-per // self.split_align) * self.split_align

    def tile_for(self, K: int) -> int:
        """Rows per tile in effect for K index positions: min(tile, K), K when untiled (>= 1).
        A tile longer than K is one tile, so bounds that depend on the tile length use this."""
        K = max(int(K), 1)
        return K if self.tile is None else min(self.tile, K)

    def with_tiling(self, tiling: str) -> "AttnRecipe":
        """This recipe with `tiling`; a split recipe keeps "compacted" (its splits cut the valid
        list, so the tiling of the index positions is not a choice there)."""
        return self if self.kv_splits is not None else self.replace(tiling=tiling)

    def replace(self, **changes) -> "AttnRecipe":
        return dataclasses.replace(self, **changes)  # re-runs __post_init__ validation


SPLIT_FIELDS = ("kv_splits", "split_align")
# the fields a one-pass tile-max kernel (no split-KV, P against the tile max) can vary: its
# `accepts_recipe`
UNSPLIT_FIELDS = tuple(f.name for f in dataclasses.fields(AttnRecipe)
                       if f.name not in SPLIT_FIELDS + ("p_max",))
