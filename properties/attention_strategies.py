"""Hypothesis strategies of sparse attention (SPEC section 2): a frozen AttnCase with seed (tensors
follow from it: golden.attention_inputs.make_attn_inputs), AttnRecipes, and the draw helper of
its property tests over its shape classes (AttnInputs.SHAPE_CLASSES, recognized from the inputs by
golden.attention_classes).

Everything shrinks toward the smallest, plainest example: one batch, one token, one head,
head_dim 1, page 1, window 1, no compressed indices, normal data, a finite sink, seed 0. A shape
class fixes only what defines it and keeps the other dimensions tiny, so that it stays affordable
on the Triton interpreter; "plain" draws from the run's limits (properties/attention_limits.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pytest
from hypothesis import assume, strategies as st

from kernelprop.core import coverage
from kernelprop.golden.attention_classes import ATTN_CLASSES
from kernelprop.golden.attention_inputs import (DATA_KINDS, REFERENCE, SINK_KINDS, AttnCase,
                                               AttnRecipe, make_attn_inputs)
from kernelprop.golden.sampling import TC_ADVERSARIAL
from kernelprop.properties.attention_limits import ATTN_SIZES, REFERENCE_BATCHES, AttnLimits
from kernelprop.properties.strategies import fitted_case, awkward_size, seeds, skip_outside_domain
from kernelprop.core.sizes import current_sizes


def current_limits() -> AttnLimits:
    """The attention plain class's limits for this run's backend and sizes."""
    return ATTN_SIZES.current()


def backend_limits(backend: str, cpu: AttnLimits) -> AttnLimits:
    """A test's own interpreter-sized limits on the CPU backend at small sizes, else the run's."""
    return cpu if backend != "cuda" and current_sizes() == "small" else current_limits()


def _check_kinds(data, sinks) -> None:
    if not set(data) <= set(DATA_KINDS) or not data:
        raise ValueError(f"data must be a non-empty subset of {DATA_KINDS}, got {data!r}")
    if not set(sinks) <= set(SINK_KINDS) or not sinks:
        raise ValueError(f"sinks must be a non-empty subset of {SINK_KINDS}, got {sinks!r}")


def _index_kinds(pads: bool) -> dict:
    """The index-corruption fields of AttnCase: pads / out-of-range / duplicates / shuffles."""
    probs = st.sampled_from([0.0, 0.05, 0.2, 0.6]) if pads else st.just(0.0)
    return dict(pad_prob=probs, oob_prob=probs, dup_prob=probs,
                shuffle=st.booleans() if pads else st.just(False))


def attn_cases(*, limits: AttnLimits | None = None, pads: bool = True, data=DATA_KINDS,
               sinks=SINK_KINDS, strided=None) -> st.SearchStrategy[AttnCase]:
    """Sparse-attention cases within `limits` (the "plain" shape class).

    pads: draw pad / out-of-range / duplicate / shuffled indices (False: a clean valid prefix).
    data, sinks: the data and sink kinds to draw from (golden.attention_inputs.DATA_KINDS / SINK_KINDS).
    strided: None draws both contiguous and strided views; True / False forces one.
    An implementation's declared domain is applied by `draw_attn` (domain.fit), not here.
    """
    lim = limits or current_limits()
    _check_kinds(data, sinks)
    scales = st.one_of(st.none(), st.sampled_from([0.1, 1 / 3, 0.0883883476, 0.7]),
                       st.floats(0.01, 1.5, allow_nan=False, allow_infinity=False))
    return st.builds(
        AttnCase,
        seed=seeds,
        batches=awkward_size(lim.batches),
        tokens_per_batch=awkward_size(lim.tokens_per_batch),
        heads=awkward_size(lim.heads, (3, 16, 64)),
        head_dim=awkward_size(lim.head_dim, (3, 17, 40, 48, 64, 512)),
        page_size=awkward_size(lim.page_size, (1, 5, 53, 128)),
        window=awkward_size(lim.window, (3, 128)),
        topk=st.integers(0, lim.topk),
        extra=st.integers(0, lim.extra) if pads else st.just(0),
        max_cmp_len=st.integers(0, lim.cmp_len),
        min_used=st.integers(0, 2),
        spare_pages=st.integers(0, 3),
        data=st.sampled_from(data),
        sink=st.sampled_from(sinks),
        softmax_scale=scales,
        nan_unused=st.just(True),
        strided=st.booleans() if strided is None else st.just(strided),
        **_index_kinds(pads),
    )


# %% shape classes (golden.attention_classes names them and recognizes them in the inputs)

NPOW2_DIMS = (3, 5, 6, 7, 12, 17, 24, 40, 47, 96, 100, 129, 192, 320, 576)


def _tiny(pads: bool, data, sinks, strided, **fixed) -> st.SearchStrategy[AttnCase]:
    """A case with tiny dimensions everywhere except the `fixed` fields (strategies or values)."""
    fields = dict(seed=seeds, batches=st.integers(1, 2), tokens_per_batch=st.integers(1, 2),
                  heads=st.integers(1, 2), head_dim=awkward_size(16, (3, 5)), page_size=awkward_size(8, (3,)),
                  window=awkward_size(8, (3,)), topk=st.integers(0, 8),
                  extra=st.integers(0, 2) if pads else st.just(0), max_cmp_len=st.integers(0, 16),
                  min_used=st.integers(0, 2), spare_pages=st.integers(0, 2),
                  data=st.sampled_from(data), sink=st.sampled_from(sinks),
                  softmax_scale=st.none(), nan_unused=st.just(True),
                  strided=st.booleans() if strided is None else st.just(strided),
                  **_index_kinds(pads))
    fields.update({k: v if isinstance(v, st.SearchStrategy) else st.just(v)
                   for k, v in fixed.items()})
    return st.builds(AttnCase, **fields)


def multi_tile_cases(tile: int, *, pads=True, data=DATA_KINDS, sinks=SINK_KINDS,
                     strided=None) -> st.SearchStrategy[AttnCase]:
    """2 to 4 positional tiles of `tile` index positions, nearly all valid (every row visible,
    rare pads), so that tiles after the first hold rows and, with random data, usually raise the
    running max. One batch, <= 2 tokens and heads, D <= 16."""
    if tile < 1:
        raise ValueError(f"tile must be >= 1, got {tile}")

    def build(n_tiles: int, short: int, window: int, extra: int):
        K = max(tile + 1, n_tiles * tile - short)
        W = max(1, min(window, K - 1))
        topk = max(0, K - W - extra)
        return _tiny(pads, data, sinks, strided, batches=1, window=W, topk=topk,
                     extra=K - W - topk, max_cmp_len=topk + 2, min_used=W + topk + 4,
                     page_size=awkward_size(32, (5, 16)),
                     pad_prob=st.sampled_from([0.0, 0.05]) if pads else 0.0,
                     oob_prob=st.sampled_from([0.0, 0.05]) if pads else 0.0,
                     dup_prob=st.sampled_from([0.0, 0.05]) if pads else 0.0)

    return st.tuples(st.integers(2, 4), st.integers(0, max(0, tile - 1)),
                     st.integers(1, 2 * tile), st.integers(0, 2) if pads else st.just(0)) \
        .flatmap(lambda a: build(*a))


def class_cases(shape_class: str, *, limits: AttnLimits, tile: Optional[int] = None, pads=True,
                data=DATA_KINDS, sinks=SINK_KINDS, strided=None) -> st.SearchStrategy[AttnCase]:
    """Cases of one shape class (see the module docstring); "plain" is `attn_cases(limits)`."""
    _check_kinds(data, sinks)
    if shape_class == "plain":
        return attn_cases(limits=limits, pads=pads, data=data, sinks=sinks, strided=strided)
    if shape_class == "multi_tile":
        return multi_tile_cases(tile or 64, pads=pads, data=data, sinks=sinks, strided=strided)
    if shape_class == "many_heads":
        return _tiny(pads, data, sinks, strided, batches=1, heads=st.integers(17, 64),
                     head_dim=awkward_size(8, (3,)))
    if shape_class == "mtp_depth":
        # small window and cache: visibility boundaries differ between a batch's positions
        return _tiny(pads, data, sinks, strided, tokens_per_batch=st.integers(3, 6),
                     max_cmp_len=st.integers(0, 12), min_used=st.integers(0, 8))
    if shape_class == "npow2_default_scale":
        dims = [d for d in NPOW2_DIMS if d <= max(limits.head_dim, 3)]
        return _tiny(pads, data, sinks, strided, head_dim=st.sampled_from(dims),
                     heads=st.integers(1, 3), softmax_scale=None)
    if shape_class == "large_logits_sink":
        kinds = [s for s in ("large",) if s in sinks] or list(sinks)
        return _tiny(pads, ["large_logits"] if "large_logits" in data else data, kinds, strided,
                     heads=st.integers(1, 4), softmax_scale=None)
    if shape_class == "tc_adversarial":
        # tensor-core adversarial data (golden.sampling.TC_ADVERSARIAL) at head dims of several k16
        # blocks; a test that restricts its data kinds keeps its own
        dims = [d for d in (64, 128) if d <= max(limits.head_dim, 64)]
        return _tiny(pads, [TC_ADVERSARIAL] if set(data) == set(DATA_KINDS) else data, sinks, strided,
                     head_dim=st.sampled_from(dims), heads=st.integers(1, 3))
    if shape_class == "reference":
        batches = REFERENCE_BATCHES.get(current_sizes(), 1)
        shape = dict(REFERENCE)
        if current_sizes() == "large":  # CUDA: also the larger variants of the decode shape
            shape.update(heads=st.sampled_from([64, 128]), head_dim=st.sampled_from([512, 576]),
                         topk=st.sampled_from([512, 1024]))
        return _tiny(pads, data, sinks, strided, batches=st.integers(1, batches), extra=0,
                     max_cmp_len=st.integers(2 * REFERENCE["topk"], 4 * REFERENCE["topk"]),
                     min_used=REFERENCE["window"] + 2 * REFERENCE["topk"], **shape)
    if shape_class == "engine_tables":
        return engine_table_cases(pads=pads, data=data, sinks=sinks, strided=strided)
    if shape_class == "many_rows":
        # 66 query rows, each with invalid lanes (pads): kernels that switch path above 64
        # rows (sglang #39288) run their other path on masked candidates
        return _tiny(pads, data, sinks, strided, batches=33, tokens_per_batch=2, heads=1,
                     head_dim=awkward_size(4, (3,)), window=awkward_size(4, (3,)), topk=st.integers(1, 3),
                     max_cmp_len=st.integers(0, 6), pad_prob=0.2 if pads else 0.0)
    if shape_class == "huge_scores":
        # every valid score below -5e4 (golden.attention_inputs "huge_negative"), every token with a valid
        # key; a -inf sink first, so that the keys, not the sink, carry the output
        kinds = [s for s in ("neg_inf", "finite", "zero") if s in sinks] or list(sinks)
        return _tiny(pads, ["huge_negative"], kinds, strided, softmax_scale=None,
                     min_used=st.integers(2, 4), min_valid_keys=1)
    if shape_class == "large_offsets":
        # every batch reaches the compressed cache (min_used > W <= 8), whose pages the case
        # moves past 2^31 elements (golden.attention_inputs.relocate_past_2_31); a contiguous pool
        return _tiny(pads, data, sinks, False, large_offsets=True, min_used=st.integers(9, 24),
                     max_cmp_len=st.integers(1, 16), head_dim=st.sampled_from([16, 64]))
    raise ValueError(f"shape_class must be 'plain' or one of {ATTN_CLASSES}, "
                     f"got {shape_class!r}")


def engine_table_cases(*, pads=True, data=DATA_KINDS, sinks=SINK_KINDS,
                       strided=None) -> st.SearchStrategy[AttnCase]:
    """Block tables as serving engines lay them out (golden.attention_inputs.engine_block_tables: rows of a
    larger table, poisoned unreached columns, a page shared by batches 0 and 1). 2-3 batches that
    all see more than the window (min_used > W <= 8), so each reaches the compressed cache and the
    shared page is read by both."""
    return _tiny(pads, data, sinks, strided, batches=st.integers(2, 3), engine_tables=True,
                 min_used=st.integers(9, 24), max_cmp_len=st.integers(1, 16))


# %% recipes

def tiles(*, max_tile: int = 100, untiled: bool = True) -> st.SearchStrategy[Optional[int]]:
    """Tile sizes: 1, odd, non-divisors, the default 64, larger than K, and None (untiled: one
    tile of all K positions) unless `untiled` is False."""
    fixed = [64, 1, 3, 7, 16, 33] + ([None] if untiled else [])
    return st.one_of(st.sampled_from(fixed), st.integers(1, max_tile))


def attn_recipes(*, tilings=("positional",), roundings=("rne", "rtz", "rna"),
                 p_dtypes=("bf16", "fp32"), max_tile: int = 100,
                 splits: bool = False, p_maxes=("tile",)) -> st.SearchStrategy[AttnRecipe]:
    """Attention recipes; shrinks to the default recipe (tile 64 first, then small tiles).
    splits: also draw split-KV recipes (kv_splits, split_align; tiling then "compacted").
    p_maxes: the p_max values drawn (the first is the one it shrinks to)."""
    base = st.builds(AttnRecipe, tile=tiles(max_tile=max_tile), tiling=st.sampled_from(tilings),
                     p_dtype=st.sampled_from(p_dtypes),
                     l_from=st.sampled_from(["rounded", "unrounded"]),
                     rounding=st.sampled_from(roundings),
                     out_dtype=st.sampled_from(["fp32", "bf16"]),
                     p_max=st.sampled_from(p_maxes))
    if not splits:
        return base
    return st.tuples(base, split_counts(), split_aligns()).map(
        lambda r: r[0] if r[1] is None else
        r[0].replace(tiling="compacted", kv_splits=r[1], split_align=r[2]))


def split_counts() -> st.SearchStrategy[Optional[int]]:
    """kv_splits: None (no split) first, then SGLang's 8, 1, 2, 3 and up to 16: small cases have
    fewer keys than splits (empty splits) as well as more."""
    return st.one_of(st.none(), st.sampled_from([8, 1, 2, 3]), st.integers(1, 16))


def split_aligns() -> st.SearchStrategy[int]:
    """split_align: 1 (vLLM), SGLang's 32, and small odd alignments."""
    return st.sampled_from([1, 32, 2, 3, 4])


# %% the draw helper every attention property test uses

@dataclass(frozen=True)
class AttnDraw:
    """One drawn attention example: its shape class, case (on the test's device) and recipe."""

    shape_class: str
    case: AttnCase
    recipe: AttnRecipe


MULTI_TILE_TILES = (2, 8)   # tiles drawn for the multi-tile class when the recipe is free


def tile_is_free(impl) -> bool:
    """Whether the suite may choose the tile: golden-only (impl None), `accepts_recipe = True`,
    or a tuple of variable recipe fields that names "tile" (SPEC 6)."""
    return impl is None or impl.varies("tile")


def draw_attn(data, shape_class: str = "plain", *, impl=None, backend: str = "cpu",
              device: str = "cpu", limits: AttnLimits | None = None,
              recipes: st.SearchStrategy | None = None, pads: bool = True,
              data_kinds=DATA_KINDS, sinks=SINK_KINDS, strided=None, domain=None) -> AttnDraw:
    """Draw a recipe (the implementation's declared one unless it accepts a recipe; `recipes`
    otherwise, default attn_recipes()) and a case of `shape_class` (the test's parameter, see
    `over_shape_classes`).

    impl: the implementation under test (None: a golden-only property, the recipe is free).
    limits: the plain class's limits (default: the run's). multi_tile uses the implementation's
    declared tile when it does not accept a recipe (e.g. a fixed 64), else a small drawn tile
    (2..8) put into the recipe, so that 2-4 tiles stay cheap on the interpreter.
    domain: the declared input domain (default: impl.domain; None: no restriction): classes it
    excludes are skipped (restrict_to_domain), drawn cases are fitted into it (domain.fit).
    """
    domain = domain if domain is not None else getattr(impl, "domain", None)
    skip_outside_domain(shape_class, domain)
    coverage.expect(() if shape_class == "plain" else (shape_class,))
    strategy = recipes if recipes is not None else \
        attn_recipes(splits=_draws_splits(impl), p_maxes=_p_maxes(impl))
    drawn = data.draw(strategy if impl is None or impl.accepts_recipe else st.none(), label="recipe")
    # the tile the multi-tile class cuts the list by: a shape-dependent recipe's (SPEC section 6)
    # is only known with the case, so its value at the default case's shape stands in for it
    tile = drawn.tile if drawn is not None and tile_is_free(impl) else \
        impl.recipe_for(AttnCase()).tile
    if shape_class == "multi_tile" and tile_is_free(impl):
        tile = data.draw(st.integers(*MULTI_TILE_TILES), label="multi-tile tile")
        drawn = drawn.replace(tile=tile)
    elif shape_class == "multi_tile" and tile is None:
        # one softmax over the whole key list: no example is of the class (coverage.classify),
        # and drawing until one is would only fail hypothesis' filter health check
        pytest.skip(reason=f"shape class multi_tile: {impl.spec} declares an untiled recipe "
                           f"({impl.describe_recipe()}) and accepts_recipe={impl.accepts_recipe!r}, "
                           "so no key list crosses a tile boundary")
    case = data.draw(class_cases(shape_class, limits=limits or current_limits(), tile=tile,
                                 pads=pads, data=data_kinds, sinks=sinks, strided=strided)
                     .map(lambda c: fitted_case(c, domain).replace(device=device)), label="case")
    recipe = drawn if impl is None else impl.example_recipe(drawn, case)
    if shape_class == "multi_tile":
        # the class is its data's (a later tile raises the running max, coverage.classify), which
        # random values give only some of the time: an example without it is not one of the class
        assume("multi_tile" in coverage.classify(make_attn_inputs(case.replace(device="cpu")), recipe))
    return AttnDraw(shape_class, case, recipe)


def _draws_splits(impl) -> bool:
    """Whether split-KV recipes are drawn: golden-only properties (impl None) and implementations
    that vary `kv_splits` (a one-pass kernel, e.g. the bundled Triton one, declares
    accepts_recipe without it and is never asked for a split)."""
    return impl is None or impl.varies("kv_splits")


def _p_maxes(impl) -> tuple:
    """The p_max values drawn: both for golden-only properties (impl None) and implementations
    that vary `p_max`, else the default "tile" alone."""
    return ("tile", "running") if impl is None or impl.varies("p_max") else ("tile",)

