"""Hypothesis strategies: compact cases (shapes, seeds, index and data kinds) and recipes.

Strategies draw a frozen `AttnCase` (each other op's in its own properties/<op>_strategies.py); tensors are then built from the case's seed in a
few vectorized torch calls (golden.inputs), never element by element. Everything shrinks toward the
smallest, plainest example: one batch, one token, one head, head_dim 1, page 1, window 1, no
compressed indices, normal data, a finite sink, seed 0.

Shape classes (kernelprop.coverage): every property test is parametrized (`over_shape_classes`)
over "plain" and the classes where real kernels differ from toy ones: several softmax tiles of the
implementation's tile, more than one head block, MTP depth >= 3, a non-power-of-two head dim with
the default scale, large logits with a large sink, the reference decode shape (each other op's
classes: its Inputs' SHAPE_CLASSES). Each parametrization gets a share of the profile's examples
and draws only its class (`draw_attn`, or the op's draw helper), so every class is reached under
every profile. A class
fixes only what defines it and keeps the other dimensions tiny, so that it stays affordable on
the Triton interpreter; "plain" draws from the run's limits (each op's own: `AttnLimits` in
properties/attention_limits.py, ... ). Which class each example really
reached is counted from its inputs (kernelprop.coverage) and printed at the end of the run.

Sizes (`--sizes small|reference|large`, KERNELPROP_SIZES; default small, nightly reference):
small draws one example of the reference class per property (its cost: docs/measurements.md):
B=1 of the DeepSeek-V4 decode shape (S=2, H=64, D=512, K=640); reference gives the class its full
share, up to the full decode shape (B=64); large is for CUDA (bigger plain limits and up to B=128 in the reference class).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Optional

import pytest
from hypothesis import Phase, assume, given, settings, strategies as st

from kernelprop.golden.inputs import (DATA_KINDS, SINK_KINDS, TC_ADVERSARIAL, AttnCase,
                                     make_attn_inputs)
from kernelprop.golden.recipes import AttnRecipe
from kernelprop import coverage
from kernelprop.declarations import AttnDomain
from kernelprop.properties.attention_limits import ATTN_SIZES, REFERENCE, REFERENCE_BATCHES, AttnLimits
from kernelprop.sizes import current_sizes


def current_limits() -> AttnLimits:
    """The attention plain class's limits for this run's backend and sizes."""
    return ATTN_SIZES.current()


def backend_limits(backend: str, cpu: AttnLimits) -> AttnLimits:
    """A test's own interpreter-sized limits on the CPU backend at small sizes, else the run's."""
    return cpu if backend != "cuda" and current_sizes() == "small" else current_limits()


def _size(upper: int, favourites=()) -> st.SearchStrategy[int]:
    """1..upper, with awkward favourites (odd, non powers of two) drawn often; shrinks to 1."""
    picks = [v for v in favourites if v <= upper]
    base = st.integers(1, upper)
    # 1 leads the favourites: a one-element sampled_from draws no choice, which hypothesis ranks
    # simpler than any integer, so without it examples would shrink to the favourite, not to 1
    return st.one_of(base, st.sampled_from([1, *picks])) if picks else base


seeds = st.integers(0, 2**32 - 1)


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
    data, sinks: the data and sink kinds to draw from (golden.inputs.DATA_KINDS / SINK_KINDS).
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
        spare_pages=st.integers(0, 3),
        data=st.sampled_from(data),
        sink=st.sampled_from(sinks),
        softmax_scale=scales,
        nan_unused=st.just(True),
        strided=st.booleans() if strided is None else st.just(strided),
        **_index_kinds(pads),
    )


# %% shape classes (kernelprop.coverage names them and recognizes them in the inputs)

NPOW2_DIMS = (3, 5, 6, 7, 12, 17, 24, 40, 47, 96, 100, 129, 192, 320, 576)


def _tiny(pads: bool, data, sinks, strided, **fixed) -> st.SearchStrategy[AttnCase]:
    """A case with tiny dimensions everywhere except the `fixed` fields (strategies or values)."""
    fields = dict(seed=seeds, batches=st.integers(1, 2), tokens_per_batch=st.integers(1, 2),
                  heads=st.integers(1, 2), head_dim=_size(16, (3, 5)), page_size=_size(8, (3,)),
                  window=_size(8, (3,)), topk=st.integers(0, 8),
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
                     page_size=_size(32, (5, 16)),
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
                     head_dim=_size(8, (3,)))
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
        # tensor-core adversarial data (golden.inputs.TC_ADVERSARIAL) at head dims of several k16
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
                     head_dim=_size(4, (3,)), window=_size(4, (3,)), topk=st.integers(1, 3),
                     max_cmp_len=st.integers(0, 6), pad_prob=0.2 if pads else 0.0)
    if shape_class == "huge_scores":
        # every valid score below -5e4 (golden.inputs "huge_negative"), every token with a valid
        # key; a -inf sink first, so that the keys, not the sink, carry the output
        kinds = [s for s in ("neg_inf", "finite", "zero") if s in sinks] or list(sinks)
        return _tiny(pads, ["huge_negative"], kinds, strided, softmax_scale=None,
                     min_used=st.integers(2, 4), min_valid_keys=1)
    if shape_class == "large_offsets":
        # every batch reaches the compressed cache (min_used > W <= 8), whose pages the case
        # moves past 2^31 elements (golden.inputs.relocate_past_2_31); a contiguous pool
        return _tiny(pads, data, sinks, False, large_offsets=True, min_used=st.integers(9, 24),
                     max_cmp_len=st.integers(1, 16), head_dim=st.sampled_from([16, 64]))
    raise ValueError(f"shape_class must be 'plain' or one of {coverage.ATTN_CLASSES}, "
                     f"got {shape_class!r}")


def engine_table_cases(*, pads=True, data=DATA_KINDS, sinks=SINK_KINDS,
                       strided=None) -> st.SearchStrategy[AttnCase]:
    """Block tables as serving engines lay them out (golden.inputs.engine_block_tables: rows of a
    larger table, poisoned unreached columns, a page shared by batches 0 and 1). 2-3 batches that
    all see more than the window (min_used > W <= 8), so each reaches the compressed cache and the
    shared page is read by both."""
    return _tiny(pads, data, sinks, strided, batches=st.integers(2, 3), engine_tables=True,
                 min_used=st.integers(9, 24), max_cmp_len=st.integers(1, 16))


# classes drawn only by the properties named here (shape_class_property adds them, on top of the
# others' shares): the pools of large_offsets are 4 GiB of lazily allocated memory that a
# whole-pool rewrite (P8's permutation, a strided copy) would make resident; P1 and P10 (its
# garbage fill restricted to the live pages) read only the rows they reach. RMSNorm's
# large_offsets (x spread over a 4-8 GiB lazy buffer) and grid_rows (> 65535 rows, ~27 s an
# example of the bundled kernel on the interpreter) are P1's only, the fused op's
# large_offsets F1's and F2's (x and residual spread alike); each op whose classes
# include the name draws it (coverage.classes_of)
OPT_IN_CLASSES = {"large_offsets": ("P1", "P10", "F1", "F2"), "grid_rows": ("P1",)}


def classes_for_run(kind: str) -> tuple:
    """The shape classes of `kind` (an op's label, over_shape_classes) this run draws: every
    class but one whose `class_examples` is 0 (the reference class at small sizes runs 1) and
    the opt-in ones (OPT_IN_CLASSES: drawn only by the properties named there)."""
    return tuple(c for c in coverage.classes_of(kind)
                 if class_examples(c) != 0 and c not in OPT_IN_CLASSES)


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


def recipes_for(impl, strategy: st.SearchStrategy, example=None) -> st.SearchStrategy:
    """`strategy` for implementations that accept any recipe keyword; for those that declare the
    fields they can vary (accepts_recipe a tuple), their declared recipe (for `example`'s shape
    when shape-dependent) with only those fields drawn; else their declared recipe."""
    if impl.accepts_recipe is True:
        return strategy
    if not impl.accepts_recipe:
        return st.just(impl.recipe_for(example))
    return strategy.map(lambda r: impl.example_recipe(r, example))


# %% the draw helpers every property test uses

@dataclass(frozen=True)
class AttnDraw:
    """One drawn attention example: its shape class, case (on the test's device) and recipe."""

    shape_class: str
    case: AttnCase
    recipe: AttnRecipe


MULTI_TILE_TILES = (2, 8)   # tiles drawn for the multi-tile class when the recipe is free


def restrict_to_domain(classes: tuple, domain) -> tuple:
    """THE place where an implementation's declared domain (SPEC 6: the op's domain type)
    restricts which shape classes are drawn: a class whose defining feature the domain excludes
    is dropped (its parametrization is then skipped with the reason). Cases of the remaining
    classes are fitted into the domain by the op's draw helper (domain.fit)."""
    if domain is None:
        return classes
    return tuple(c for c in classes if _class_in_domain(c, domain))


def _class_in_domain(shape_class: str, domain) -> bool:
    """Whether `domain` admits the feature that defines `shape_class` (coverage.ATTN_CLASSES, or
    the domain's own `admits`)."""
    if isinstance(domain, AttnDomain):
        dims = domain.head_dims
        return {
            "many_heads": domain.max_heads is None or domain.max_heads > 16,
            "mtp_depth": domain.max_tokens_per_batch is None or domain.max_tokens_per_batch >= 3,
            "npow2_default_scale": dims is None or any(d & (d - 1) for d in dims),
            "large_logits_sink": domain.allows_sink("large"),
            "multi_tile": domain.max_indices is None or domain.max_indices >= 2,
            "reference": (dims is None or REFERENCE["head_dim"] in dims)
            and (domain.max_heads is None or domain.max_heads >= REFERENCE["heads"])
            and (domain.max_indices is None
                 or domain.max_indices >= REFERENCE["window"] + REFERENCE["topk"]),
        }.get(shape_class, True)
    if hasattr(domain, "admits"):  # an op's own domain type says which of its classes it admits
        return domain.admits(shape_class)
    raise TypeError(f"domain must be an AttnDomain or have admits(shape_class), "
                    f"got {type(domain).__name__}")


def tile_is_free(impl) -> bool:
    """Whether the suite may choose the tile: golden-only (impl None), `accepts_recipe = True`,
    or a tuple of variable recipe fields that names "tile" (SPEC 6)."""
    return impl is None or impl.varies("tile")


def skip_outside_domain(shape_class: str, domain) -> None:
    """Skip (with the reason) a class parametrization the implementation's domain excludes."""
    if shape_class != "plain" and shape_class not in restrict_to_domain((shape_class,), domain):
        pytest.skip(reason=f"shape class {shape_class} lies outside the implementation's "
                           f"declared domain {domain}")


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
    case = data.draw(class_cases(shape_class, limits=limits or current_limits(), tile=tile,
                                 pads=pads, data=data_kinds, sinks=sinks, strided=strided)
                     .map(lambda c: _fitted(c, domain).replace(device=device)), label="case")
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


def _fitted(case, domain):
    """`case` mapped into the declared `domain` (unchanged without one)."""
    return case if domain is None else domain.fit(case)


# Examples of a class parametrization that does not take an equal share: the reference class at
# small sizes costs up to ~13 s an example on the interpreter (docs/measurements.md), so ci and
# dev run one example of it per property (0 would leave it out of small-size runs); nightly
# (reference sizes) gives it its full share. many_rows (66 tokens) costs ~15 times a plain
# example on the interpreter: 1 per property; huge_scores kills what it kills on any example
# (every row below the sentinel): 3 per property. Both run on top of the other classes' shares,
# which stay what they were without them.
SMALL_SIZES_CLASS_EXAMPLES = {"reference": 1, "many_rows": 1, "huge_scores": 3, "grid_rows": 1}


# The nightly's time split at reference sizes (a stated choice): every class an equal share of a
# test's examples, except the reference class, which runs this fraction of the share (at least 1).
# An example of it costs ~10x one of the tiny classes on the interpreter (the 3-minute run:
# 4 reference examples took 20 s of a 34 s round, ~23 others 11 s), so an equal share spent over
# half of every round on it; at 1/8 it takes ~1/7 of a round and the tiny classes, where the
# catalogue's bugs are found (docs/mutants.md), get the rest.
NIGHTLY_CLASS_FRACTION = {"reference": 1 / 8, "grid_rows": 1 / 8}


def class_examples(shape_class: str, share: Optional[int] = None) -> Optional[int]:
    """The examples `shape_class` runs when not the test's equal share `share` (None: the share)."""
    if current_sizes() == "small":
        return SMALL_SIZES_CLASS_EXAMPLES.get(shape_class)
    fraction = NIGHTLY_CLASS_FRACTION.get(shape_class)
    if fraction is None or share is None or settings.get_current_profile_name() != "nightly":
        return None
    return max(1, math.ceil(share * fraction))


def over_shape_classes(kind: str, *, not_applicable: Optional[dict] = None, also: tuple = (),
                       **given_kwargs):
    """Decorator of a property test taking a `shape_class` argument and the arguments @given
    draws (`given_kwargs`, strategies by name): pytest parametrizes it over "plain" and every
    class of `kind` ("attn" / "norm") this run's sizes draw and the opt-in classes `also`, except
    `not_applicable` ({class: why}, kept for the coverage table), and each parametrization gets an equal share of the
    profile's max_examples (at least 2), so every class is reached under every profile
    (hypothesis' own choice of a sampled class is far from uniform: measured, 34 classes missed
    over 40 ci-profile runs of 50 examples), except a class with its own count
    (`class_examples`: the reference class at small sizes), which runs on top of the others'
    shares (they stay what they were without it).

    Each count is its own `@settings(...)(@given(...)(test))` of the same test function (same
    database key and seed); the test pytest sees dispatches a call to the one of its
    `shape_class`. `class_settings(shape_class)` on it gives the settings that call runs under.
    """
    not_applicable = dict(not_applicable or {})
    run = classes_for_run(kind)
    params = ("plain", *(c for c in run + tuple(also) if c not in not_applicable))
    # an opt-in class gets a share on top: the other classes' shares stay what they were
    shared = sum(class_examples(c) is None for c in params if c not in also)

    def decorate(test):
        share_test = settings(max_examples=max(2, settings.default.max_examples // shared))(
            given(**given_kwargs)(test))
        # the shares follow the profile current when the test is called, not the one at import
        # (kernelprop.fuzz_worker runs successive rounds, each with its own count, in one process)
        under: dict = {"profile": None}
        own: dict = {}   # (class, examples) -> (its settings, its test)

        def for_class(shape_class: str):
            if under["profile"] is not settings.default:
                share_settings = settings(max_examples=max(2, settings.default.max_examples // shared))
                under.update(profile=settings.default, share=(share_settings, share_settings(
                    given(**given_kwargs)(test))))
                own.clear()
            share_settings = under["share"][0]
            n = class_examples(shape_class, share=share_settings.max_examples)
            if n is None:
                return under["share"]
            if (shape_class, n) not in own:
                # no shrink phase either: the class fixes its dimensions, and every shrink step
                # would cost a full example of it; a failure is reported as drawn
                phases = [p for p in share_settings.phases if p != Phase.shrink]
                own_settings = settings(share_settings, max_examples=n, phases=phases)
                own[(shape_class, n)] = (own_settings, own_settings(given(**given_kwargs)(test)))
            return own[(shape_class, n)]

        @functools.wraps(share_test)
        def dispatch(*args, shape_class: str, **kwargs):
            return for_class(shape_class)[1](*args, shape_class=shape_class, **kwargs)

        dispatch.class_settings = lambda shape_class: for_class(shape_class)[0]
        dispatch = pytest.mark.shape_classes(kind=kind, not_applicable=not_applicable,
                                             also=tuple(also))(dispatch)
        return pytest.mark.parametrize("shape_class", params)(dispatch)

    return decorate


def shape_class_property(pid: str, kind: str, *, not_applicable: Optional[dict] = None,
                         also: tuple = ()):
    """The header of a property test over the shape classes of `kind`: its SPEC id mark,
    @over_shape_classes(kind, not_applicable=..., also=..., data=st.data()); a class of
    OPT_IN_CLASSES naming `pid` is added to `also`."""
    also = tuple(also) + tuple(c for c, pids in OPT_IN_CLASSES.items()
                               if pid in pids and c in coverage.classes_of(kind) and c not in also)

    def decorate(test):
        test = over_shape_classes(kind, not_applicable=not_applicable, also=also, data=st.data())(test)
        return pytest.mark.spec(pid)(test)

    return decorate
