"""Hypothesis strategies: the shape-class machinery every op's property tests share and the size
helpers of the ops' case strategies. Each op's strategies draw a
frozen Case (e.g. properties/attention_strategies.py); tensors are then built from the case's seed
in a few vectorized torch calls, never element by element, and examples shrink toward the
smallest, plainest case.

Shape classes (kernelprop.core.coverage): every property test is parametrized (`over_shape_classes`)
over "plain" and the classes of its op where real kernels differ from toy ones (its Inputs type's
SHAPE_CLASSES). Each parametrization gets a share of the
profile's examples and draws only its class (the op's draw helper), so every
class is reached under every profile. A class fixes only what defines it and keeps the other
dimensions tiny, so that it stays affordable on the Triton interpreter; "plain" draws from the
run's limits (each op's own, in properties/<op>_limits.py). Which class each
example really reached is counted from its inputs (kernelprop.core.coverage) and printed at the end of
the run.

Sizes (`--sizes small|reference|large`, KERNELPROP_SIZES; default small, nightly reference):
small draws one example of the reference class per property (its cost: docs/measurements.md):
B=1 of the DeepSeek-V4 decode shape (S=2, H=64, D=512, K=640); reference gives the class its full
share, up to the full decode shape (B=64); large is for CUDA (bigger plain limits and up to B=128 in the reference class).
"""
from __future__ import annotations

import functools
import math
from typing import Optional

import pytest
from hypothesis import Phase, given, settings, strategies as st

from kernelprop.core import coverage
from kernelprop.core.sizes import current_sizes


def awkward_size(upper: int, favourites=()) -> st.SearchStrategy[int]:
    """1..upper, with awkward favourites (odd, non powers of two) drawn often; shrinks to 1."""
    picks = [v for v in favourites if v <= upper]
    base = st.integers(1, upper)
    # 1 leads the favourites: a one-element sampled_from draws no choice, which hypothesis ranks
    # simpler than any integer, so without it examples would shrink to the favourite, not to 1
    return st.one_of(base, st.sampled_from([1, *picks])) if picks else base


seeds = st.integers(0, 2**32 - 1)


def opt_in_classes(kind: str) -> dict:
    """{class: property ids drawing it} of the op labelled `kind`: classes drawn only by the
    properties named there (its Inputs type's OPT_IN_CLASSES; shape_class_property adds them, on
    top of the others' shares)."""
    from kernelprop.core.registry import OPS

    return next((dict(getattr(o.inputs_type, "OPT_IN_CLASSES", {})) for o in OPS
                 if o.label == kind), {})


def classes_for_run(kind: str) -> tuple:
    """The shape classes of `kind` (an op's label, over_shape_classes) this run draws: every
    class but one whose `class_examples` is 0 (the reference class at small sizes runs 1) and
    the opt-in ones (`opt_in_classes`: drawn only by the properties named there)."""
    opt_in = opt_in_classes(kind)
    return tuple(c for c in coverage.classes_of(kind)
                 if class_examples(c) != 0 and c not in opt_in)


def recipes_for(impl, strategy: st.SearchStrategy, example=None) -> st.SearchStrategy:
    """`strategy` for implementations that accept any recipe keyword; for those that declare the
    fields they can vary (accepts_recipe a tuple), their declared recipe (for `example`'s shape
    when shape-dependent) with only those fields drawn; else their declared recipe."""
    if impl.accepts_recipe is True:
        return strategy
    if not impl.accepts_recipe:
        return st.just(impl.recipe_for(example))
    return strategy.map(lambda r: impl.example_recipe(r, example))


def restrict_to_domain(classes: tuple, domain) -> tuple:
    """THE place where an implementation's declared domain (SPEC 6: the op's domain type)
    restricts which shape classes are drawn: a class whose defining feature the domain excludes
    is dropped (its parametrization is then skipped with the reason). Cases of the remaining
    classes are fitted into the domain by the op's draw helper (domain.fit)."""
    if domain is None:
        return classes
    return tuple(c for c in classes if _class_in_domain(c, domain))


def _class_in_domain(shape_class: str, domain) -> bool:
    """Whether `domain` admits the feature that defines `shape_class` (the domain type's own
    `admits`, golden/domain.py)."""
    return domain.admits(shape_class)


def skip_outside_domain(shape_class: str, domain) -> None:
    """Skip (with the reason) a class parametrization the implementation's domain excludes."""
    if shape_class != "plain" and shape_class not in restrict_to_domain((shape_class,), domain):
        pytest.skip(reason=f"shape class {shape_class} lies outside the implementation's "
                           f"declared domain {domain}")




def fitted_case(case, domain):
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
    class of `kind` (an op's label) this run's sizes draw and the opt-in classes `also`, except
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
        # (kernelprop.commands.fuzz_worker runs successive rounds, each with its own count, in one process)
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
    @over_shape_classes(kind, not_applicable=..., also=..., data=st.data()); an opt-in class of
    the op (`opt_in_classes`) naming `pid` is added to `also`."""
    also = tuple(also) + tuple(c for c, pids in opt_in_classes(kind).items()
                               if pid in pids and c not in also)

    def decorate(test):
        test = over_shape_classes(kind, not_applicable=not_applicable, also=also, data=st.data())(test)
        return pytest.mark.spec(pid)(test)

    return decorate
