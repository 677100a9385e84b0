"""Error metrics for comparing a kernel output against a golden or an fp64 truth.

Per-element distances (numpy.testing.nulp_diff style):
  ulp_distance_fp32, ulp_distance_bf16   ulps on the format's monotonic integer line (int64)
  bound_ratio                            |actual - expected| / bound (float64)
  margin_ratio                           distance outside the bound's discrete flips / its continuous part
Summaries: frozen dataclasses with a short `__str__` (numbers, worst element's index and values)
and `to_dict()` (plain python values for json.dumps), made for counterexample reports:
  mismatch_ratio     -> MismatchResult    elements that differ after a cast (bf16 default; P4)
  max_abs_rel_error  -> ErrorResult       max abs / rel error with coordinates
  ratio_rule         -> RatioRuleResult   err(kernel) <= k * err(golden) + floor, vs fp64 truth (P2)
  ratio_allclose     -> AllcloseResult    allclose that tolerates a fraction of bad points
  nonfinite_match    -> NonfiniteResult   NaN / +inf / -inf positions agree
  compare            -> Comparison        all of the above as one report block (FlashMLA compare)
Scalars: cosine_similarity, relative_l2. Assert: assert_within (elementwise bound).

Conventions. Arithmetic is float64 (bf16/fp16/fp32 inputs convert exactly), with no python loops
over elements; CPU or CUDA tensors (all arguments on one device). The element error is |a - e|,
except 0 where both are NaN or both the same infinity, and inf where exactly one is NaN or the
infinities differ (a NaN never hides: it is the worst element). Indices are tuples of python ints
(row-major; ties pick the first). Results hold python floats, so to_dict() may carry inf/nan,
which json.dumps writes as Infinity/NaN unless allow_nan=False.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

ULP_NAN_SENTINEL = 2**62  # ulp distance where exactly one side is NaN
DEFAULT_REL_FLOOR = 1e-30  # max_abs_rel_error denominator floor: only guards 0 / 0

Index = tuple  # tuple[int, ...]


# %% validation and small helpers

def _check_tensor(x, name: str, *, floating: bool = True) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")


def _check_pair(a, b, names=("actual", "expected"), *, floating: bool = True) -> None:
    _check_tensor(a, names[0], floating=floating)
    _check_tensor(b, names[1], floating=floating)
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, "
                         f"got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.device != b.device:
        raise ValueError(f"{names[0]} and {names[1]} must be on one device, "
                         f"got {a.device} and {b.device}")


def _check_nonneg(value, name: str) -> float:
    value = float(value)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def _unravel(flat: int, shape) -> Index:
    idx = []
    for n in reversed(shape):
        flat, r = divmod(flat, n)
        idx.append(r)
    return tuple(reversed(idx))


def _argmax(x: torch.Tensor) -> Index | None:
    """Row-major index of the first maximum of a NaN-free tensor; None when it is empty."""
    if x.numel() == 0:
        return None
    return _unravel(int(torch.argmax(x.reshape(-1)).item()), x.shape)


def _first(mask: torch.Tensor) -> Index | None:
    """Row-major index of the first True; None when there is none."""
    if not bool(mask.any()):
        return None
    return _argmax(mask.to(torch.int32))


def _at(x: torch.Tensor, index: Index | None) -> float | None:
    return None if index is None else float(x[index].item())


def _max_at(x: torch.Tensor) -> tuple[float, Index | None]:
    index = _argmax(x)
    return (0.0 if index is None else float(x[index].item())), index


def _abs_err(a: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """float64 |a - e| under the module's NaN/inf conventions (never NaN)."""
    a64, e64 = a.double(), e.double()
    err = (a64 - e64).abs()
    same = (a64 == e64) | (torch.isnan(a64) & torch.isnan(e64))
    err = torch.where(same, torch.zeros_like(err), err)
    return torch.where(torch.isnan(err), math.inf, err)


def _g(x) -> str:  # a value, enough digits to round-trip fp32
    return "None" if x is None else f"{x:.9g}"


def _e(x: float) -> str:  # an error
    return f"{x:.3e}"


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def _values_at(index: Index | None, **values: float | None) -> str:
    """'at (i, j): actual 1.5, expected 2': one element's index and values, for __str__."""
    return f"at {index}: " + ", ".join(f"{name} {_g(v)}" for name, v in values.items())


def _name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


class _Result:
    def to_dict(self) -> dict:
        """Fields as plain python values (nested results become dicts); json.dumps accepts it."""
        return dataclasses.asdict(self)


# %% ulp distances

def _ordered(bits: torch.Tensor, magnitude_mask: int) -> torch.Tensor:
    """Signed bit patterns -> monotonic int64 line: negative patterns map to -(magnitude bits)."""
    bits = bits.to(torch.int64)
    return torch.where(bits < 0, -(bits & magnitude_mask), bits)


def _line_distance(a, b, ia, ib) -> torch.Tensor:
    d = (ia - ib).abs()
    na, nb = torch.isnan(a), torch.isnan(b)
    d = torch.where(na & nb, 0, d)
    return torch.where(na ^ nb, ULP_NAN_SENTINEL, d)


def ulp_distance_fp32(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-element distance in fp32 ulps (int64), like numpy's nulp_diff.

    Bits map to the integer line i = bits for sign 0, -(bits & 0x7fffffff) for sign 1, and the
    distance is |i(a) - i(b)|: +0 and -0 are 0 apart, the two smallest subnormals of opposite
    sign 2, the max finite and inf 1. NaN: 0 where both are NaN (any payload), ULP_NAN_SENTINEL
    (2**62) where exactly one is. Both inputs must be float32 (TypeError) of one shape (ValueError).
    """
    for x, name in ((a, "a"), (b, "b")):
        _check_tensor(x, name, floating=False)
        if x.dtype != torch.float32:
            raise TypeError(f"{name} must be float32, got {x.dtype}")
    _check_pair(a, b, ("a", "b"))
    ia = _ordered(a.contiguous().view(torch.int32), 0x7FFFFFFF)
    ib = _ordered(b.contiguous().view(torch.int32), 0x7FFFFFFF)
    return _line_distance(a, b, ia, ib)


def _as_bf16(x, name: str) -> torch.Tensor:
    _check_tensor(x, name, floating=False)
    if x.dtype == torch.bfloat16:
        return x
    if x.dtype != torch.float32:
        raise TypeError(f"{name} must be bfloat16 or float32, got {x.dtype}")
    low = x.contiguous().view(torch.int32) & 0xFFFF
    index = _first((low != 0) & ~torch.isnan(x))
    if index is not None:
        raise ValueError(f"{name} must hold bf16-representable values; {name}{list(index)} = "
                         f"{_g(x[index].item())} is not")
    return x.to(torch.bfloat16)  # exact


def ulp_distance_bf16(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-element distance in bf16 ulps (int64): ulp_distance_fp32's rule on the 16-bit line.

    Accepts bf16 tensors, or float32 tensors whose values are exactly bf16 (low 16 bits zero;
    otherwise ValueError naming the argument); other dtypes raise TypeError. NaN as in the fp32 case.
    """
    a16, b16 = _as_bf16(a, "a"), _as_bf16(b, "b")
    _check_pair(a16, b16, ("a", "b"))
    ia = _ordered(a16.contiguous().view(torch.int16), 0x7FFF)
    ib = _ordered(b16.contiguous().view(torch.int16), 0x7FFF)
    return _line_distance(a16, b16, ia, ib)


# %% summaries

@dataclass(frozen=True)
class MismatchResult(_Result):
    count: int
    total: int
    ratio: float
    dtype: str
    worst_index: Index | None  # largest |a - b| after the cast; None when nothing differs
    worst_a: float | None
    worst_b: float | None

    def __str__(self) -> str:
        s = f"{self.dtype} mismatch {self.count}/{self.total} ({self.ratio:.3%})"
        if self.worst_index is not None:
            s += f"; worst at {self.worst_index}: a {_g(self.worst_a)} vs b {_g(self.worst_b)}"
        return s


def mismatch_ratio(a: torch.Tensor, b: torch.Tensor, *,
                   dtype: torch.dtype = torch.bfloat16) -> MismatchResult:
    """Fraction of elements that differ after casting both to `dtype` (torch's cast: nearest-even).

    Equality is by value: +0 == -0, and two NaNs (any payload) count as equal.
    """
    _check_pair(a, b, ("a", "b"))
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    ca, cb = a.to(dtype), b.to(dtype)
    diff = _abs_err(ca, cb)
    count, total = int((diff > 0).sum().item()), diff.numel()
    index = _argmax(diff) if count else None
    return MismatchResult(count, total, count / total if total else 0.0, _name(dtype),
                          index, _at(ca, index), _at(cb, index))


@dataclass(frozen=True)
class ErrorResult(_Result):
    max_abs: float
    max_abs_index: Index | None
    actual_at_max_abs: float | None
    expected_at_max_abs: float | None
    max_rel: float
    max_rel_index: Index | None
    rel_floor: float
    max_expected: float  # max |expected| over its finite elements
    rel_to_max_expected: float  # max_abs / max_expected

    def __str__(self) -> str:
        worst = _values_at(self.max_abs_index, actual=self.actual_at_max_abs,
                           expected=self.expected_at_max_abs)
        return (f"max abs {_e(self.max_abs)} {worst}\n"
                f"max rel {_e(self.max_rel)} at {self.max_rel_index} (floor {self.rel_floor:.1e}); "
                f"max abs / max|expected| {_e(self.rel_to_max_expected)}")


def max_abs_rel_error(actual: torch.Tensor, expected: torch.Tensor, *,
                      rel_floor: float | None = None) -> ErrorResult:
    """Max absolute and relative error, in float64, with the worst coordinates.

    abs_i = |a_i - e_i|; rel_i = abs_i / max(|e_i|, rel_floor). rel_floor (> 0) defaults to
    DEFAULT_REL_FLOOR = 1e-30, which only guards 0/0: where e_i = 0 and a_i != 0 rel_i is huge,
    so pass a floor of the output's scale when values near zero matter. Also reports
    max_abs / max|e| over the finite e (0 when max_abs is 0, inf when no finite e is nonzero).
    NaN/inf per the module conventions: a one-sided NaN gives abs = rel = inf.
    """
    _check_pair(actual, expected)
    floor = DEFAULT_REL_FLOOR if rel_floor is None else float(rel_floor)
    if not (math.isfinite(floor) and floor > 0):
        raise ValueError(f"rel_floor must be a finite number > 0, got {rel_floor}")
    err = _abs_err(actual, expected)
    e_abs = expected.double().abs()
    rel = torch.where(err == 0, 0.0, err / e_abs.clamp_min(floor))
    rel = torch.where(torch.isnan(rel), math.inf, rel)  # inf/inf, or a NaN expected
    max_abs, abs_index = _max_at(err)
    max_rel, rel_index = _max_at(rel)
    max_expected, _ = _max_at(torch.where(torch.isfinite(e_abs), e_abs, 0.0))
    rel_to_max = 0.0 if max_abs == 0 else (max_abs / max_expected if max_expected > 0 else math.inf)
    return ErrorResult(max_abs, abs_index, _at(actual, abs_index), _at(expected, abs_index),
                       max_rel, rel_index, floor, max_expected, rel_to_max)


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine of the flattened float64 vectors, clamped to [-1, 1].

    Both all-zero -> 1.0; exactly one all-zero -> 0.0; any NaN or inf element -> NaN.
    """
    _check_pair(a, b, ("a", "b"))
    x, y = a.double().reshape(-1), b.double().reshape(-1)
    nx, ny = float(x.norm()), float(y.norm())
    if nx == 0 and ny == 0:
        return 1.0
    if nx == 0 or ny == 0:
        return 0.0
    c = float(x @ y) / (nx * ny)
    return c if math.isnan(c) else max(-1.0, min(1.0, c))


def relative_l2(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """||a - e||_2 / ||e||_2 in float64; e all-zero -> 0.0 if a is all-zero else inf.

    NaN/inf elements propagate (the result is then NaN or inf); check nonfinite_match first.
    """
    _check_pair(actual, expected)
    e = expected.double()
    num, den = float((actual.double() - e).norm()), float(e.norm())
    if den == 0:
        return 0.0 if num == 0 else math.inf
    return num / den


@dataclass(frozen=True)
class RatioRuleResult(_Result):
    err_impl: float
    err_golden: float
    k: float
    floor: float
    limit: float  # k * err_golden + floor
    passed: bool
    worst_index: Index | None  # largest |actual - truth|
    actual_at_worst: float | None
    golden_at_worst: float | None
    truth_at_worst: float | None

    def __str__(self) -> str:
        return (f"ratio rule {_verdict(self.passed)}: err(impl) {_e(self.err_impl)} vs {self.k:g} * "
                f"err(golden) {_e(self.err_golden)} + floor {_e(self.floor)} = {_e(self.limit)}; worst "
                + _values_at(self.worst_index, actual=self.actual_at_worst, golden=self.golden_at_worst,
                             truth=self.truth_at_worst))


def ratio_rule(actual: torch.Tensor, golden: torch.Tensor, truth: torch.Tensor, *,
               k: float, floor: float) -> RatioRuleResult:
    """SPEC P2 ratio rule against a float64 truth (TypeError otherwise).

    err_impl = max|actual - truth|, err_golden = max|golden - truth| (float64); passes iff
    err_impl <= k * err_golden + floor (equality passes), k and floor finite and >= 0. A NaN in
    actual or golden where truth has none makes its error inf; an infinite limit fails the rule
    (the golden is broken, so the rule says nothing).
    """
    _check_pair(actual, golden, ("actual", "golden"))
    _check_pair(actual, truth, ("actual", "truth"))
    if truth.dtype != torch.float64:
        raise TypeError(f"truth must be float64, got {truth.dtype}")
    k, floor = _check_nonneg(k, "k"), _check_nonneg(floor, "floor")
    err_impl, index = _max_at(_abs_err(actual, truth))
    err_golden, _ = _max_at(_abs_err(golden, truth))
    limit = k * err_golden + floor
    passed = math.isfinite(limit) and err_impl <= limit
    return RatioRuleResult(err_impl, err_golden, k, floor, limit, passed, index,
                           _at(actual, index), _at(golden, index), _at(truth, index))


@dataclass(frozen=True)
class AllcloseResult(_Result):
    bad_count: int
    total: int
    fraction: float
    max_bad_fraction: float
    atol: float
    rtol: float
    passed: bool
    worst_index: Index | None  # largest |a - e| - (atol + rtol |e|); negative when none is bad
    worst_excess: float
    actual_at_worst: float | None
    expected_at_worst: float | None

    def __str__(self) -> str:
        return (f"allclose {_verdict(self.passed)}: {self.bad_count}/{self.total} bad "
                f"({self.fraction:.3%}, allowed {self.max_bad_fraction:.3%}) at atol {self.atol:.1e} "
                f"rtol {self.rtol:.1e}; worst excess {_e(self.worst_excess)} "
                + _values_at(self.worst_index, actual=self.actual_at_worst, expected=self.expected_at_worst))


def ratio_allclose(actual: torch.Tensor, expected: torch.Tensor, *, atol: float, rtol: float,
                   max_bad_fraction: float) -> AllcloseResult:
    """allclose that passes when bad points are at most max_bad_fraction of all (float64).

    A point is bad iff |a - e| > atol + rtol * |e| (exactly at the tolerance is fine), or its error
    is inf (a one-sided NaN or differing infinities; an inf e otherwise gives an inf tolerance).
    Passes iff bad_count <= max_bad_fraction * total.
    """
    _check_pair(actual, expected)
    atol, rtol = _check_nonneg(atol, "atol"), _check_nonneg(rtol, "rtol")
    max_bad_fraction = _check_nonneg(max_bad_fraction, "max_bad_fraction")
    if max_bad_fraction > 1:
        raise ValueError(f"max_bad_fraction must be in [0, 1], got {max_bad_fraction}")
    err = _abs_err(actual, expected)
    e_abs = expected.double().abs()
    tol = atol + rtol * torch.where(torch.isnan(e_abs), 0.0, e_abs)
    bad = (err > tol) | torch.isinf(err)
    excess = torch.where(torch.isinf(err), math.inf, err - tol)  # -inf where tol is inf
    bad_count, total = int(bad.sum().item()), err.numel()
    worst_excess, index = _max_at(excess)
    return AllcloseResult(bad_count, total, bad_count / total if total else 0.0, max_bad_fraction,
                          atol, rtol, bad_count <= max_bad_fraction * total, index, worst_excess,
                          _at(actual, index), _at(expected, index))


@dataclass(frozen=True)
class NonfiniteResult(_Result):
    passed: bool
    nan_mismatches: int  # elements NaN on exactly one side
    posinf_mismatches: int
    neginf_mismatches: int
    first_mismatch_index: Index | None
    actual_at_first: float | None
    expected_at_first: float | None

    def __str__(self) -> str:
        if self.passed:
            return "nonfinite positions match"
        return (f"nonfinite MISMATCH: NaN {self.nan_mismatches}, +inf {self.posinf_mismatches}, "
                f"-inf {self.neginf_mismatches}; first "
                + _values_at(self.first_mismatch_index, actual=self.actual_at_first,
                             expected=self.expected_at_first))


def nonfinite_match(actual: torch.Tensor, expected: torch.Tensor) -> NonfiniteResult:
    """Checks that NaN, +inf and -inf sit at the same positions (finite values are not compared).

    An element counts once per kind that differs (NaN vs +inf is both a NaN and a +inf mismatch).
    """
    _check_pair(actual, expected)
    kinds = [torch.isnan(actual) != torch.isnan(expected),
             torch.isposinf(actual) != torch.isposinf(expected),
             torch.isneginf(actual) != torch.isneginf(expected)]
    nan_m, pos_m, neg_m = (int(m.sum().item()) for m in kinds)
    index = _first(kinds[0] | kinds[1] | kinds[2])
    return NonfiniteResult(index is None, nan_m, pos_m, neg_m, index,
                           _at(actual, index), _at(expected, index))


# %% one report

@dataclass(frozen=True)
class Comparison(_Result):
    shape: Index
    actual_dtype: str
    expected_dtype: str
    nonfinite: NonfiniteResult
    error: ErrorResult
    cosine: float
    relative_l2: float
    max_ulp_fp32: int | None  # None unless both are float32
    bf16_mismatch: MismatchResult
    err_actual_truth: float | None  # max |actual - truth|; None without truth
    err_expected_truth: float | None
    truth_at_worst: float | None  # truth at error.max_abs_index

    def __str__(self) -> str:
        lines = [f"compare {self.shape}: actual {self.actual_dtype} vs expected {self.expected_dtype}",
                 f"{self.nonfinite}", *str(self.error).splitlines(),
                 f"cosine {self.cosine:.9f}, rel l2 {_e(self.relative_l2)}"
                 + ("" if self.max_ulp_fp32 is None else f", max fp32 ulp {self.max_ulp_fp32}"),
                 f"{self.bf16_mismatch}"]
        if self.err_actual_truth is not None:
            lines.append(f"truth: err(actual) {_e(self.err_actual_truth)}, err(expected) "
                         f"{_e(self.err_expected_truth)}, truth at worst {self.truth_at_worst!r}")
        return "\n  ".join(lines)


def compare(actual: torch.Tensor, expected: torch.Tensor, *,
            truth: torch.Tensor | None = None) -> Comparison:
    """All metrics of this module for one pair, as a report block (nonfinite positions first).

    With `truth` (same shape, normally float64) also max |actual - truth|, max |expected - truth|
    and the truth's value at the worst abs-error element.
    """
    _check_pair(actual, expected)
    if truth is not None:
        _check_pair(actual, truth, ("actual", "truth"))
    error = max_abs_rel_error(actual, expected)
    both_fp32 = actual.dtype == expected.dtype == torch.float32
    max_ulp = None
    if both_fp32 and actual.numel():
        max_ulp = int(ulp_distance_fp32(actual, expected).max().item())
    err_at = err_et = truth_at = None
    if truth is not None:
        err_at, _ = _max_at(_abs_err(actual, truth))
        err_et, _ = _max_at(_abs_err(expected, truth))
        truth_at = _at(truth, error.max_abs_index)
    return Comparison(tuple(actual.shape), _name(actual.dtype), _name(expected.dtype),
                      nonfinite_match(actual, expected), error,
                      cosine_similarity(actual, expected), relative_l2(actual, expected), max_ulp,
                      mismatch_ratio(actual, expected), err_at, err_et, truth_at)


# %% elementwise bound

def _as_bound(bound, actual: torch.Tensor) -> torch.Tensor:
    if isinstance(bound, (int, float)) and not isinstance(bound, bool):
        bound = torch.tensor(float(bound), dtype=torch.float64, device=actual.device)
    _check_tensor(bound, "bound", floating=False)
    if bound.dtype == torch.bool or bound.is_complex():
        raise TypeError(f"bound must be a real tensor, got {bound.dtype}")
    if bound.device != actual.device:
        raise ValueError(f"bound must be on actual's device {actual.device}, got {bound.device}")
    try:
        ok = torch.broadcast_shapes(bound.shape, actual.shape) == actual.shape
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(f"bound of shape {tuple(bound.shape)} must broadcast to actual's "
                         f"{tuple(actual.shape)}")
    b = bound.double()
    if bool((torch.isnan(b) | (b < 0)).any()):
        raise ValueError("bound must be >= 0 (and not NaN) everywhere")
    return b.expand(actual.shape)


def _ratio(err: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    ratio = torch.where(err == 0, 0.0, err / b)  # err > 0 and b == 0 -> inf
    return torch.where(torch.isnan(ratio), math.inf, ratio)  # inf error over inf bound


_BIT_VIEWS = {torch.float32: torch.int32, torch.bfloat16: torch.int16, torch.float16: torch.int16,
              torch.float64: torch.int64}


def same_bits(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Elementwise bit equality (NaN payloads and signed zeros count; other dtypes compare ==)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        raise ValueError(f"bitwise comparison needs equal dtype and shape, got "
                         f"{a.dtype}{tuple(a.shape)} and {b.dtype}{tuple(b.shape)}")
    if a.dtype not in _BIT_VIEWS:
        return a == b
    return a.contiguous().view(_BIT_VIEWS[a.dtype]) == b.contiguous().view(_BIT_VIEWS[b.dtype])


def bound_ratio(actual: torch.Tensor, expected: torch.Tensor, bound) -> torch.Tensor:
    """|a - e| / bound per element, float64; bound is >= 0 and broadcasts to actual's shape.

    0 where the error is 0 (even with bound 0); inf where error > 0 and bound == 0, and where exactly
    one side is NaN or the infinities differ (even against an inf bound). <= 1 means within bound.
    """
    _check_pair(actual, expected)
    return _ratio(_abs_err(actual, expected), _as_bound(bound, actual))


def margin_ratio(actual: torch.Tensor, expected: torch.Tensor, bound, discrete) -> torch.Tensor:
    """Distance of actual outside [e - discrete, e + discrete] over the continuous part
    bound - discrete, per element (float64); discrete (0 <= discrete <= bound) is the share of the
    bound made of discrete, exactly known alternatives (bf16 rounding flips), not noise.

    max(0, |a - e| - f) / (b - f) > 1 exactly where |a - e| / b > 1 (bound_ratio): the two ratios
    give the same verdict per element; float64 rounding at the boundary is resolved in favour of
    bound_ratio's verdict (docs/bounds.md#p1-margin). 0 where the error is within the flips, inf
    where it exceeds a bound with no continuous part (a bf16 output: every allowed value is a flip).
    """
    _check_pair(actual, expected)
    b = _as_bound(bound, actual)
    f = torch.minimum(_as_bound(discrete, actual), b)
    err = _abs_err(actual, expected)
    fails = _ratio(err, b) > 1
    margin = _ratio((err - f).clamp(min=0.0), (b - f).clamp(min=0.0))
    above_one = torch.nextafter(torch.ones_like(margin), torch.full_like(margin, 2.0))
    return torch.where(fails, torch.maximum(margin, above_one), margin.clamp(max=1.0))


def assert_within(actual: torch.Tensor, expected: torch.Tensor, bound, *, what: str = "") -> None:
    """Assert |a - e| <= bound elementwise (bound_ratio <= 1; equality passes).

    The AssertionError gives the violation count, the worst element (largest bound_ratio) with its
    index, actual, expected and bound there, and the compare() block.
    """
    __tracebackhide__ = True
    _check_pair(actual, expected)
    b = _as_bound(bound, actual)
    ratio = _ratio(_abs_err(actual, expected), b)
    n = int((ratio > 1).sum().item())
    if n == 0:
        return
    index = _argmax(ratio)
    raise AssertionError(
        f"{what + ': ' if what else ''}{n}/{ratio.numel()} elements exceed the bound "
        f"|actual - expected| <= bound; worst at {index}: |a - e| / bound {ratio[index].item():.4g}, "
        f"actual {_g(_at(actual, index))}, expected {_g(_at(expected, index))}, "
        f"bound {_g(_at(b, index))}\n"
        f"{compare(actual, expected)}")
