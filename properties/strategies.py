"""Hypothesis strategies: compact cases (shapes, seeds, index and data kinds) and recipes.

Strategies draw a frozen `AttnCase` / `NormCase`; tensors are then built from the case's seed in a
few vectorized torch calls (golden.inputs), never element by element. Everything shrinks toward the
smallest, plainest example: one batch, one token, one head, head_dim 1, page 1, window 1, no
compressed indices, normal data, a finite sink, seed 0.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from hypothesis import strategies as st

from golden.inputs import DATA_KINDS, NORM_DATA_KINDS, SINK_KINDS, AttnCase, NormCase
from golden.recipes import AttnRecipe, NormRecipe


@dataclass(frozen=True)
class Limits:
    """Upper bounds on generated sizes (one example must stay fast on the backend)."""

    batches: int = 2
    tokens_per_batch: int = 2
    heads: int = 4
    head_dim: int = 48
    page_size: int = 16
    window: int = 24
    topk: int = 40
    extra: int = 6
    cmp_len: int = 64
    norm_rows: int = 8
    norm_dim: int = 200

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Limits.{name} must be a positive int, got {value!r}")


CPU_LIMITS = Limits()
CPU_NIGHTLY_LIMITS = Limits(batches=3, heads=6, head_dim=80, page_size=24, window=40, topk=80,
                            extra=10, cmp_len=128, norm_rows=16, norm_dim=600)
CUDA_LIMITS = Limits(batches=4, tokens_per_batch=2, heads=64, head_dim=576, page_size=64,
                     window=128, topk=512, extra=16, cmp_len=1024, norm_rows=256, norm_dim=8192)


def current_limits() -> Limits:
    """The limits for this run's backend and profile (read from the environment conftest sets)."""
    if os.environ.get("KERNELPROP_BACKEND") == "cuda":
        return CUDA_LIMITS
    if os.environ.get("KERNELPROP_PROFILE_ACTIVE") == "nightly":
        return CPU_NIGHTLY_LIMITS
    return CPU_LIMITS


def _size(upper: int, favourites=()) -> st.SearchStrategy[int]:
    """1..upper, with awkward favourites (odd, non powers of two) drawn often; shrinks to 1."""
    picks = [v for v in favourites if v <= upper]
    base = st.integers(1, upper)
    # 1 leads the favourites: a one-element sampled_from draws no choice, which hypothesis ranks
    # simpler than any integer, so without it examples would shrink to the favourite, not to 1
    return st.one_of(base, st.sampled_from([1, *picks])) if picks else base


seeds = st.integers(0, 2**32 - 1)


def attn_cases(*, limits: Limits | None = None, pads: bool = True, data=DATA_KINDS,
               sinks=SINK_KINDS, strided=None, domain=None) -> st.SearchStrategy[AttnCase]:
    """Sparse-attention cases within `limits`.

    pads: draw pad / out-of-range / duplicate / shuffled indices (False: a clean valid prefix).
    data, sinks: the data and sink kinds to draw from (golden.inputs.DATA_KINDS / SINK_KINDS).
    strided: None draws both contiguous and strided views; True / False forces one.
    domain: an implementation's AttnDomain (kernelprop.declarations): cases are fitted into it.
    """
    lim = limits or current_limits()
    if not set(data) <= set(DATA_KINDS) or not data:
        raise ValueError(f"data must be a non-empty subset of {DATA_KINDS}, got {data!r}")
    if not set(sinks) <= set(SINK_KINDS) or not sinks:
        raise ValueError(f"sinks must be a non-empty subset of {SINK_KINDS}, got {sinks!r}")
    probs = st.sampled_from([0.0, 0.05, 0.2, 0.6]) if pads else st.just(0.0)
    scales = st.one_of(st.none(), st.sampled_from([0.1, 1 / 3, 0.0883883476, 0.7]),
                       st.floats(0.01, 1.5, allow_nan=False, allow_infinity=False))
    return st.builds(
        AttnCase,
        seed=seeds,
        batches=_size(lim.batches),
        tokens_per_batch=_size(lim.tokens_per_batch),
        heads=_size(lim.heads, (3, 16, 64)),
        head_dim=_size(lim.head_dim, (3, 17, 40, 48, 64, 512)),
        page_size=_size(lim.page_size, (1, 5, 53, 128)),
        window=_size(lim.window, (3, 128)),
        topk=st.integers(0, lim.topk),
        extra=st.integers(0, lim.extra) if pads else st.just(0),
        max_cmp_len=st.integers(0, lim.cmp_len),
        min_used=st.integers(0, 2),
        pad_prob=probs,
        oob_prob=probs,
        dup_prob=probs,
        shuffle=st.booleans() if pads else st.just(False),
        spare_pages=st.integers(0, 3),
        data=st.sampled_from(data),
        sink=st.sampled_from(sinks),
        softmax_scale=scales,
        nan_unused=st.just(True),
        strided=st.booleans() if strided is None else st.just(strided),
    ).map(lambda case: case if domain is None else domain.fit(case))


def tiles(*, max_tile: int = 100) -> st.SearchStrategy[int]:
    """Tile sizes: 1, odd, non-divisors, the default 64, and larger than K."""
    return st.one_of(st.sampled_from([64, 1, 3, 7, 16, 33]), st.integers(1, max_tile))


def attn_recipes(*, tilings=("positional",), roundings=("rne", "rtz", "rna"),
                 p_dtypes=("bf16", "fp32"), max_tile: int = 100) -> st.SearchStrategy[AttnRecipe]:
    """Attention recipes; shrinks to the default recipe (tile 64 first, then small tiles)."""
    return st.builds(AttnRecipe, tile=tiles(max_tile=max_tile), tiling=st.sampled_from(tilings),
                     p_dtype=st.sampled_from(p_dtypes),
                     l_from=st.sampled_from(["rounded", "unrounded"]),
                     rounding=st.sampled_from(roundings))


def norm_cases(*, limits: Limits | None = None, data=NORM_DATA_KINDS,
               dtypes=("bf16", "fp32"), domain=None) -> st.SearchStrategy[NormCase]:
    """RMSNorm cases: rows of any length (odd, non powers of two), tiny/huge/zero/int8 data,
    with and without weight, strided views, and the per-head [T, H, Dh] layout."""
    lim = limits or current_limits()
    return st.builds(
        NormCase,
        seed=seeds,
        rows=_size(lim.norm_rows),
        dim=_size(lim.norm_dim, (1, 3, 17, 64, 127, 512)),
        heads=st.one_of(st.just(0), st.integers(1, 4)),
        dtype=st.sampled_from(dtypes),
        data=st.sampled_from(data),
        weight=st.booleans(),
        eps=st.sampled_from([1e-6, 1e-5, 0.0, 1e-3]),
        strided=st.booleans(),
    ).map(lambda case: case if domain is None else domain.fit(case))


def norm_recipes(*, invs=("recip_sqrt", "rsqrt", "recip_sqrt_rn"), out_dtypes=("bf16", "fp32"),
                 roundings=("rne",), max_chunk: int = 256) -> st.SearchStrategy[NormRecipe]:
    return st.builds(NormRecipe, inv=st.sampled_from(invs),
                     chunk=st.one_of(st.none(), st.integers(1, max_chunk)),
                     out_dtype=st.sampled_from(out_dtypes), rounding=st.sampled_from(roundings))


def recipes_for(impl, strategy: st.SearchStrategy) -> st.SearchStrategy:
    """`strategy` for implementations that accept any recipe keyword; for those that declare the
    fields they can vary (accepts_recipe a tuple), their declared recipe with only those fields
    drawn; else their declared recipe."""
    if impl.accepts_recipe is True:
        return strategy
    if not impl.accepts_recipe:
        return st.just(impl.recipe)
    varied = impl.accepts_recipe
    return strategy.map(lambda r: impl.recipe.replace(**{f: getattr(r, f) for f in varied}))
