"""Hypothesis strategies of the fused add RMSNorm (SPEC section 9): a FusedCase with seed (tensors
follow from it: golden.fused_add_norm.make_fused_inputs), and the draw helper of its property
tests over its shape classes (FusedInputs.SHAPE_CLASSES, recognized from the inputs by
FusedInputs.shape_classes). Shrinks toward one row, D = 1, normal data, no strides."""
from __future__ import annotations

from hypothesis import strategies as st

from kernelprop.core import coverage
from kernelprop.golden.error_model import error_model_family
from kernelprop.golden.fused_add_norm import FusedCase
from kernelprop.golden.rmsnorm_bounds import eps0_tiny_data
from kernelprop.properties.fused_limits import FUSED_SIZES, REFERENCE_DIMS, REFERENCE_ROWS, FusedLimits
from kernelprop.properties.strategies import awkward_size, skip_outside_domain
from kernelprop.core.sizes import current_sizes

PLAIN_DATA = ("normal", "tiny", "huge", "zero", "cancel", "mixed_scale")


def fused_cases(*, limits: FusedLimits | None = None, data=PLAIN_DATA, dtypes=("bf16", "fp32"),
                domain=None) -> st.SearchStrategy[FusedCase]:
    lim = limits or FUSED_SIZES.current()
    strategy = st.builds(
        FusedCase, seed=st.integers(0, 2 ** 31 - 1), rows=awkward_size(lim.rows),
        dim=awkward_size(lim.dim, (1, 3, 17, 64, 127)), heads=st.one_of(st.just(0), st.integers(1, 3)),
        dtype=st.sampled_from(dtypes), data=st.sampled_from(data), weight=st.booleans(),
        eps=st.sampled_from([1e-6, 1e-5, 0.0, 1e-3]), strided_x=st.booleans(),
        strided_residual=st.booleans())
    return strategy if domain is None else strategy.map(domain.fit)


def fused_class_cases(shape_class: str, **kw) -> st.SearchStrategy[FusedCase]:
    """Cases of one class: plain; eps0_tiny (eps = 0, tiny data); eps_dominant (tiny data, eps >
    0); cancellation (residual ~ -x); reference (rows of 4096 / 8192, few rows)."""
    base = fused_cases(**kw)
    if shape_class == "plain":
        return base
    if shape_class == "eps0_tiny":
        tiny = eps0_tiny_data(error_model_family())
        return base.map(lambda c: c.replace(data=tiny, eps=0.0, rows=min(c.rows, 4), dim=min(c.dim, 64)))
    if shape_class == "eps_dominant":
        return base.map(lambda c: c.replace(data="tiny", eps=c.eps if c.eps > 0 else 1e-5))
    if shape_class == "cancellation":
        return base.map(lambda c: c.replace(data="cancel"))
    if shape_class == "reference":
        rows = REFERENCE_ROWS[current_sizes()]
        return st.tuples(base, st.sampled_from(REFERENCE_DIMS)).map(
            lambda p: p[0].replace(rows=min(max(p[0].rows, 1), rows), heads=0, dim=p[1]))
    if shape_class == "large_offsets":
        return base.map(lambda c: c.replace(rows=max(c.rows, 3), heads=0, strided_x=False,
                                            strided_residual=False, large_offsets=True))
    raise ValueError(f"shape_class must be 'plain' or one of {coverage.classes_of('fused')}, "
                     f"got {shape_class!r}")


def draw_fused_case(data, shape_class: str = "plain", *, impl=None, device: str = "cpu",
                    **kw) -> FusedCase:
    """A case of `shape_class` on `device`, fitted into the implementation's declared domain (a
    class outside it is skipped, with the reason)."""
    domain = getattr(impl, "domain", None)
    skip_outside_domain(shape_class, domain)
    coverage.expect(() if shape_class == "plain" else (shape_class,))
    strategy = fused_class_cases(shape_class, **kw)
    if domain is not None:
        strategy = strategy.map(domain.fit)
    return data.draw(strategy.map(lambda c: c.replace(device=device)), label="case")
