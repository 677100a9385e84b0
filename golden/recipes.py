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
