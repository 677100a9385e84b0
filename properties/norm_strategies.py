"""Hypothesis strategies of RMSNorm (SPEC section 3): a NormCase with seed (tensors follow from it:
golden.rmsnorm_inputs.make_norm_inputs), NormRecipes, and the draw helper of its property tests
over its shape classes (NormInputs.SHAPE_CLASSES, recognized from the inputs by
NormInputs.shape_classes). Shrinks toward one row, D = 1, normal data, no strides.

The classes: "eps0_tiny" (eps = 0 with data whose fp32 squares are subnormal), "eps_dominant"
(eps above the rows' mean square), "reference" (the per-head q norm of the decode shape: [2, 64,
512] at small sizes, [128, 64, 512] at reference sizes, rows of 8192 at large sizes),
"nonfinite_rows" (rows with NaN / inf beside finite ones), and P1's opt-in classes "grid_rows"
(65536-70000 rows of at most 16 columns) and "large_offsets" (rows of x spread over a lazily
allocated buffer, the last starting past 2^31 elements).
"""
from __future__ import annotations

from hypothesis import strategies as st

from kernelprop.core import coverage
from kernelprop.golden.error_model import error_model_family
from kernelprop.golden.rmsnorm_bounds import eps0_tiny_data
from kernelprop.golden.rmsnorm_inputs import (GRID_AXIS_LIMIT, NORM_CLASSES, NORM_DATA_KINDS,
                                             NormCase, NormRecipe)
from kernelprop.properties.norm_limits import (LARGE_NORM_DIM, NORM_SIZES, REFERENCE_NORM,
                                               REFERENCE_NORM_SMALL_ROWS, NormLimits)
from kernelprop.properties.strategies import awkward_size, seeds, skip_outside_domain
from kernelprop.core.sizes import current_sizes


def norm_cases(*, limits: NormLimits | None = None, data=NORM_DATA_KINDS,
               dtypes=("bf16", "fp32")) -> st.SearchStrategy[NormCase]:
    """RMSNorm cases: rows of any length (odd, non powers of two), tiny/huge/zero/int8 data,
    with and without weight, strided views, and the per-head [T, H, Dh] layout."""
    lim = limits or NORM_SIZES.current()
    return st.builds(
        NormCase,
        seed=seeds,
        rows=awkward_size(lim.rows),
        dim=awkward_size(lim.dim, (1, 3, 17, 64, 127, 512)),
        heads=st.one_of(st.just(0), st.integers(1, 4)),
        dtype=st.sampled_from(dtypes),
        data=st.sampled_from(data),
        weight=st.booleans(),
        eps=st.sampled_from([1e-6, 1e-5, 0.0, 1e-3]),
        strided=st.booleans(),
    )


def norm_class_cases(shape_class: str, *, limits: NormLimits | None = None, data=NORM_DATA_KINDS,
                     dtypes=("bf16", "fp32")) -> st.SearchStrategy[NormCase]:
    """RMSNorm cases of one shape class: "plain" (norm_cases), "eps0_tiny" (eps = 0 with data
    whose fp32 squares are subnormal), "eps_dominant" (eps > 0 above the rows' mean square: tiny
    data, where the placement of eps decides the output scale), "reference" (the per-head q norm
    [128, 64, 512]; [2, 64, 512] at small sizes; rows of 8192 at large sizes)."""
    base = norm_cases(limits=limits, data=data, dtypes=dtypes)
    if shape_class == "plain":
        return base
    if shape_class == "eps0_tiny":
        tiny = eps0_tiny_data(error_model_family())
        return base.map(lambda c: c.replace(data=tiny, eps=0.0, rows=min(c.rows, 4),
                                            dim=min(c.dim, 64)))
    if shape_class == "eps_dominant":
        return base.map(lambda c: c.replace(data="tiny", eps=c.eps if c.eps > 0 else 1e-5))
    if shape_class == "reference":
        if current_sizes() == "large":
            return base.map(lambda c: c.replace(rows=min(c.rows, 64), heads=0, dim=LARGE_NORM_DIM))
        rows = REFERENCE_NORM_SMALL_ROWS if current_sizes() == "small" else REFERENCE_NORM["rows"]
        return base.map(lambda c: c.replace(**{**REFERENCE_NORM, "rows": rows}))
    if shape_class == "grid_rows":
        # just past CUDA's grid-axis cap; few columns: the bundled kernel runs ~1000 programs of
        # 64 rows on the interpreter, ~27 s an example (docs/measurements.md)
        return st.tuples(base, st.integers(1, GRID_ROWS_EXTRA)).map(
            lambda a: a[0].replace(rows=GRID_AXIS_LIMIT + a[1], heads=0,
                                   dim=min(a[0].dim, GRID_ROWS_MAX_DIM)))
    if shape_class == "large_offsets":
        return base.map(lambda c: c.replace(rows=max(c.rows, 3), heads=0, strided=False,
                                            large_offsets=True))
    if shape_class == "nonfinite_rows":  # >= 2 rows, so a finite row stays beside them
        return st.tuples(base, st.integers(1, 3)).map(
            lambda a: a[0].replace(rows=max(a[0].rows, 2), nonfinite_rows=a[1]))
    raise ValueError(f"shape_class must be 'plain' or one of {NORM_CLASSES}, "
                     f"got {shape_class!r}")


GRID_ROWS_EXTRA = 4465      # grid_rows draws GRID_AXIS_LIMIT + 1 .. 70000 rows
GRID_ROWS_MAX_DIM = 16


def norm_recipes(*, invs=("recip_sqrt", "rsqrt", "recip_sqrt_rn"),
                 out_dtypes=("bf16", "fp32", "input"), roundings=("rne",), max_chunk: int = 256,
                 weight_offsets=(0.0, 1.0), round_before_weight=(False, True),
                 compute_dtypes=("fp32", "input")) -> st.SearchStrategy[NormRecipe]:
    """NormRecipes over the given field values (the recipes of real models included: SPEC 3)."""
    return st.builds(NormRecipe, inv=st.sampled_from(invs),
                     chunk=st.one_of(st.none(), st.integers(1, max_chunk)),
                     out_dtype=st.sampled_from(out_dtypes), rounding=st.sampled_from(roundings),
                     weight_offset=st.sampled_from(weight_offsets),
                     round_before_weight=st.sampled_from(round_before_weight),
                     compute_dtype=st.sampled_from(compute_dtypes))


def draw_norm_case(data, shape_class: str = "plain", *, device: str = "cpu",
                   limits: NormLimits | None = None, data_kinds=NORM_DATA_KINDS,
                   dtypes=("bf16", "fp32"), domain=None) -> NormCase:
    """Draw an RMSNorm case of `shape_class` (on `device`), fitted into the declared `domain` (a
    class outside it is skipped, with the reason)."""
    skip_outside_domain(shape_class, domain)
    coverage.expect(() if shape_class == "plain" else (shape_class,))
    return data.draw(norm_class_cases(shape_class, limits=limits, data=data_kinds, dtypes=dtypes)
                     .map(lambda c: (c if domain is None else domain.fit(c)).replace(device=device)),
                     label="case")
