"""Bounds for a bf16 output: which bf16 values a correct implementation can return, given an fp32
bound on its pre-rounding output (docs/bounds-output-rounding.md), and the one place that decides
what an implementation's output dtype does to a check.

An implementation with out_dtype "bf16" returns rne(o), o its fp32 result. If a property knows
|o - c| <= b for a centre c (the golden's o, a truth, a prediction), then, rne being monotone, the
bf16 result lies in [lo, hi] = [rne(c - b), rne(c + b)] and nowhere else. The check compares it
with r = rne(c) (which lies in [lo, hi]) under the bound max(hi - r, r - lo): exact (bound 0)
where the whole interval rounds to one bf16 value, else at most the gap hi - lo. The endpoints are
rounded from float64 without double rounding: fp64 -> fp32 by round-to-odd, then fp32 -> bf16
nearest-even, which equals one nearest-even rounding because fp32 keeps 16 more bits than bf16.

When the centre is itself a bf16 output of the implementation (impl vs impl: P5, P6 scaling), its
pre-rounding value is unknown: `widen_for_rounded` adds the half-spacing ulp_bf16(r) / 2 that
rne(x) = r allows for x (one ulp of r above, half an ulp below at a binade edge, both covered).

`output_numerics(out_dtype, rounding)` is the only code that branches on the output dtype: it
returns the dtype's rule (Fp32Output, Bf16Output), whose methods give a replay its Expectation
(expected, bound, the bound's doc, the discrete share, the margin's rule, metrics) and the ends of
an interval of outputs; the verdict measures the margin with the rule the Expectation names
(ExpectedMargin, or CellMargin in the fp32 domain of a bf16 output), without asking the dtype.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar, Optional

import torch

from kernelprop.golden.error_model import BF16_MIN_ULP, FP32_MIN_NORMAL
from kernelprop.golden.metrics import margin_ratio
from kernelprop.golden.output_margin import Fp32Domain, cell_margin, margin_for_verdict, sided_bound
from kernelprop.golden.rounding import fp32_outward, round_bf16, round_to_bf16



def round_bf16_rne(x: torch.Tensor) -> torch.Tensor:
    """Nearest-even bf16 rounding of fp32 or fp64 values (one rounding), as float64."""
    return round_bf16(x, "rne")


def bf16_half_spacing(r: torch.Tensor) -> torch.Tensor:
    """ulp_bf16(|r|) / 2 as float64 (at least half the subnormal spacing), the largest distance
    from r of an fp32 value whose nearest-even bf16 rounding is r."""
    a = r.double().abs()
    exponent = torch.floor(torch.log2(a.clamp_min(FP32_MIN_NORMAL)))
    return torch.exp2(exponent - 7).clamp_min(BF16_MIN_ULP) / 2


def widen_for_rounded(bound: torch.Tensor, rounded: torch.Tensor, factor=1.0) -> torch.Tensor:
    """bound + factor * ulp_bf16(rounded) / 2: `rounded` is an implementation's bf16 output whose
    fp32 value (unknown) is within half a spacing of it; `factor` scales that output's use."""
    half = bf16_half_spacing(rounded)
    half = torch.where(torch.isfinite(rounded.double()), half, 0.0)
    return bound.double() + torch.as_tensor(factor, dtype=torch.float64, device=half.device) * half


def reachable_bf16(center: torch.Tensor, bound) -> tuple[torch.Tensor, torch.Tensor]:
    """(expected, bound') for a bf16 output whose fp32 value lies within `bound` of `center`:
    expected = rne(center), bound' = max(rne(center + b) - expected, expected - rne(center - b))
    (float64, broadcast to center's shape). Non-finite centres and bounds pass through."""
    c = center.double()
    b = torch.as_tensor(bound, dtype=torch.float64, device=c.device).expand(c.shape)
    finite = torch.isfinite(c) & torch.isfinite(b)
    safe_b = torch.where(finite, b, 0.0)
    lo, r, hi = (round_bf16_rne(torch.where(finite, v, 0.0)) for v in (c - safe_b, c, c + safe_b))
    out = torch.maximum(hi - r, r - lo)
    expected = torch.where(finite, r, c)
    return expected, torch.where(finite, out, b)


# %% what the output dtype does to a check: decided here, in `output_numerics`, and nowhere else

BF16_OUT_DOC = (" [out_dtype bf16: the bf16 values reachable from the fp32 interval, exact where it "
                "rounds to one value; golden/output_rounding.py]")
SIDED_DOC = (" [bf16 output: the bound on the output's side of expected, so the check is exact "
             "membership of [OUT(c - below), OUT(c + above)]; docs/bounds-output-rounding.md#margin]")
EXPECTED_MARGIN_DOC = ("how far the value lies outside expected +- the bf16 flips a correct "
                       "implementation may make, in units of the bound's remaining (fp32 noise) "
                       "part; > 1 exactly where the bound is exceeded")
CELL_MARGIN_DOC = ("how far the fp32 values that round to the output lie outside the golden's fp32 "
                   "value +- the P flips, in units of the fp32 bound's remaining part; > 1 exactly "
                   "where the check fails")


@dataclass(frozen=True)
class ExpectedMargin:
    """The margin of an output compared as it is (golden.metrics.margin_ratio): the distance outside
    expected +- the bound's discrete share, over the bound's remaining part."""

    in_fp32: ClassVar[bool] = False
    doc: ClassVar[str] = EXPECTED_MARGIN_DOC

    def margin(self, actual, expected, bound, discrete, failing: torch.Tensor) -> torch.Tensor:
        return margin_ratio(actual, expected, bound, discrete)


@dataclass(frozen=True)
class CellMargin:
    """The margin of a bf16 output measured in the fp32 domain it was rounded from
    (golden.output_margin.cell_margin), made to agree with the check's verdict per element."""

    domain: Fp32Domain
    in_fp32: ClassVar[bool] = True
    doc: ClassVar[str] = CELL_MARGIN_DOC

    def margin(self, actual, expected, bound, discrete, failing: torch.Tensor) -> torch.Tensor:
        return margin_for_verdict(cell_margin(actual, self.domain), failing)


@dataclass(frozen=True)
class Expectation:
    """What an output is checked against: |actual - expected| <= bound elementwise, the bound's
    one-line derivation, its discrete share (None: no margin), the margin's rule, extra metrics."""

    expected: torch.Tensor
    bound: torch.Tensor
    doc: str
    discrete: Optional[torch.Tensor] = None
    margin: object = ExpectedMargin()
    metrics: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Fp32Output:
    """An fp32 output: compared as it is, with the fp32 bound."""

    rounding: str = "rne"
    dtype: ClassVar[str] = "fp32"
    torch_dtype: ClassVar[torch.dtype] = torch.float32

    def ends(self, lo: torch.Tensor, hi: torch.Tensor):
        """The ends of the outputs of an implementation whose value lies in [lo, hi] (float64)."""
        return lo, hi

    def around(self, center, bound, doc: str, *, from_output=None, factor=1.0) -> Expectation:
        """An output whose fp32 value lies within `bound` of `center` (from_output: the centre is
        built from this output of the implementation, scaled by `factor`)."""
        return Expectation(center, bound, doc)

    def interval(self, golden, center, lo, hi, doc: str) -> Expectation:
        """An output whose value lies in [lo, hi] (float64) around the golden's fp32 `center`,
        compared with the golden's output `golden`: the larger distance from the centre."""
        c = center.double()
        return Expectation(golden, nan_free(torch.maximum(hi - c, c - lo)), doc)

    def golden_check(self, actual, domain: Fp32Domain, within: Expectation) -> Expectation:
        """P1 (the golden's output, its fp32 statement `domain`): `within` as it is, with the
        domain's discrete share for the margin."""
        return dataclasses.replace(within, discrete=domain.discrete, margin=ExpectedMargin())

    def rounded_beyond_declaration(self, actual, expected) -> bool:
        """The output looks rounded to bf16 although fp32 is declared: a bf16 tensor, or every
        finite non-zero value on the bf16 grid while some expected value there is not (a random
        fp32 value lies on the bf16 grid with probability 2^-16)."""
        if actual.dtype == torch.bfloat16:
            return True
        if actual.dtype != torch.float32 or expected.shape != actual.shape:
            return False
        where = torch.isfinite(actual) & (actual != 0)
        if not bool(where.any()):
            return False
        a = actual[where].contiguous()
        e = expected[where].float().contiguous()
        on_grid = bool((round_to_bf16(a, "rne") == a).all())
        return on_grid and bool((round_to_bf16(e, "rne") != e).any())


@dataclass(frozen=True)
class Bf16Output:
    """A bf16 output, rounded from the implementation's fp32 value by `rounding`: compared with
    the bf16 values the fp32 statement can reach."""

    rounding: str = "rne"
    dtype: ClassVar[str] = "bf16"
    torch_dtype: ClassVar[torch.dtype] = torch.bfloat16

    def ends(self, lo: torch.Tensor, hi: torch.Tensor):
        lo32, hi32 = fp32_outward(lo, hi)
        return (round_to_bf16(lo32, self.rounding).double(),
                round_to_bf16(hi32, self.rounding).double())

    def around(self, center, bound, doc: str, *, from_output=None, factor=1.0) -> Expectation:
        if self.rounding != "rne":
            raise ValueError(f"around() bounds a nearest-even output rounding, got rounding "
                             f"{self.rounding!r}")
        if from_output is not None:
            bound = widen_for_rounded(bound, from_output, factor)
        expected, bound = reachable_bf16(center, bound)
        return Expectation(expected, bound, doc + BF16_OUT_DOC)

    def interval(self, golden, center, lo, hi, doc: str) -> Expectation:
        lo, hi = self.ends(lo, hi)
        return Expectation(golden, nan_free(hi - lo), doc)

    def golden_check(self, actual, domain: Fp32Domain, within: Expectation) -> Expectation:
        """P1 on a bf16 output: exact membership of [OUT(c - below), OUT(c + above)] (the bound on
        actual's side of expected); every allowed value is a flip of the output rounding, and
        the margin is measured in fp32, from the centre to the output's rounding cell."""
        sided = sided_bound(actual, within.expected, domain, within.bound)
        return Expectation(within.expected, sided, within.doc + SIDED_DOC, discrete=sided,
                           margin=CellMargin(domain),
                           metrics={"undecided": int((within.bound > 0).sum())})

    def rounded_beyond_declaration(self, actual, expected) -> bool:
        return False


def output_numerics(out_dtype: str, rounding: str = "rne"):
    """The rule of an implementation's output of dtype `out_dtype` rounded by `rounding`:
    Fp32Output or Bf16Output. `out_dtype` is resolved: "fp32" or "bf16" (an op whose recipe says
    "input" resolves it against the input dtype first)."""
    rules = {"fp32": Fp32Output, "bf16": Bf16Output}
    if out_dtype not in rules:
        raise ValueError(f"out_dtype must be one of {tuple(rules)} (resolved), got {out_dtype!r}")
    return rules[out_dtype](rounding)


def nan_free(bound: torch.Tensor) -> torch.Tensor:
    """bound with every NaN replaced by 0 (a NaN interval: both sides must then be NaN)."""
    return torch.where(torch.isnan(bound), torch.zeros_like(bound), bound)
