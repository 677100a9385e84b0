"""Unit tests of golden.metrics on hand-picked values (boundaries, NaN/inf, coordinates)."""
import json
import math

import pytest
import torch

from kernelprop.golden.metrics import (
    ULP_NAN_SENTINEL,
    assert_within,
    bound_ratio,
    compare,
    cosine_similarity,
    max_abs_rel_error,
    mismatch_ratio,
    nonfinite_match,
    ratio_allclose,
    ratio_rule,
    relative_l2,
    ulp_distance_bf16,
    ulp_distance_fp32,
)

NAN, INF = math.nan, math.inf
TINY_SUB = 2.0**-149  # smallest positive fp32 subnormal


def f32(*xs):
    return torch.tensor(xs, dtype=torch.float32)


# ---------------------------------------------------------------- ulp distances

def test_ulp_fp32_hand_picked():
    one = f32(1.0)
    nxt = torch.nextafter(one, f32(2.0))
    assert ulp_distance_fp32(one, nxt).tolist() == [1]
    a = f32(0.0, TINY_SUB, 1.0, 3.4028234663852886e38, -1.0)
    b = f32(-0.0, -TINY_SUB, 1.0, INF, 1.0)
    d = ulp_distance_fp32(a, b)
    assert d.dtype == torch.int64
    assert d.tolist() == [0, 2, 0, 1, 2 * 0x3F800000]


def test_ulp_fp32_nan():
    d = ulp_distance_fp32(f32(NAN, NAN, 1.0), f32(NAN, 1.0, NAN))
    assert d.tolist() == [0, ULP_NAN_SENTINEL, ULP_NAN_SENTINEL]


def test_ulp_fp32_validates():
    with pytest.raises(TypeError, match="b must be float32"):
        ulp_distance_fp32(f32(1.0), torch.tensor([1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="same shape"):
        ulp_distance_fp32(f32(1.0), f32(1.0, 2.0))


def test_ulp_bf16_neighbours():
    a = torch.tensor([1.0, 0.0, -2.0**-133], dtype=torch.bfloat16)  # last: smallest bf16 subnormal
    b = torch.tensor([1.0078125, -0.0, 2.0**-133], dtype=torch.bfloat16)  # 1 + 2^-7 is the next bf16
    assert ulp_distance_bf16(a, b).tolist() == [1, 0, 2]
    # fp32 inputs holding bf16 values give the same answer
    assert ulp_distance_bf16(a.float(), b.float()).tolist() == [1, 0, 2]
    assert ulp_distance_bf16(f32(NAN, NAN), f32(NAN, 1.0)).tolist() == [0, ULP_NAN_SENTINEL]


def test_ulp_bf16_rejects_unrepresentable_fp32():
    with pytest.raises(ValueError, match="b must hold bf16-representable"):
        ulp_distance_bf16(f32(1.0), f32(1.0 + 2.0**-10))
    with pytest.raises(TypeError, match="a must be bfloat16 or float32"):
        ulp_distance_bf16(torch.ones(1, dtype=torch.float16), f32(1.0))


# ---------------------------------------------------------------- summaries

def test_mismatch_ratio_constructed():
    # 1 + 2^-9 rounds to 1 in bf16 (a tie to even); 1 + 3 * 2^-9 rounds to 1 + 2^-7: a flip.
    a = f32(1.0, 1.0, 2.0, NAN, -0.0)
    b = f32(1.0 + 2.0**-9, 1.0 + 3 * 2.0**-9, 2.0, NAN, 0.0)
    r = mismatch_ratio(a, b)
    assert (r.count, r.total, r.ratio) == (1, 5, 0.2)
    assert r.worst_index == (1,) and r.worst_a == 1.0 and r.worst_b == 1.0078125
    assert "bfloat16 mismatch 1/5" in str(r)
    assert mismatch_ratio(a, b, dtype=torch.float32).count == 2
    none = mismatch_ratio(a, a)
    assert none.count == 0 and none.worst_index is None


def test_worst_index_3d():
    expected = torch.zeros(2, 3, 4)
    actual = expected.clone()
    actual[1, 2, 0] = 0.5
    actual[0, 1, 3] = -0.25
    r = max_abs_rel_error(actual, expected)
    assert r.max_abs == 0.5 and r.max_abs_index == (1, 2, 0)
    assert (r.actual_at_max_abs, r.expected_at_max_abs) == (0.5, 0.0)
    assert r.max_rel_index == (1, 2, 0) and r.max_rel == 0.5 / 1e-30
    assert r.rel_to_max_expected == INF  # expected all zero
    r = max_abs_rel_error(actual + 1.0, expected + 2.0, rel_floor=4.0)  # |e| = 2 < floor
    assert r.max_abs_index == (0, 1, 3) and r.max_abs == 1.25 and r.max_rel == 1.25 / 4.0
    assert r.max_expected == 2.0 and r.rel_to_max_expected == 1.25 / 2.0
    assert "at (0, 1, 3): actual 0.75, expected 2" in str(r)


def test_max_abs_rel_nan_is_worst():
    r = max_abs_rel_error(f32(1.0, NAN, INF, NAN), f32(2.0, 0.0, INF, NAN))
    assert r.max_abs == INF and r.max_abs_index == (1,)
    assert max_abs_rel_error(f32(INF, NAN), f32(INF, NAN)).max_abs == 0.0


def test_ratio_rule_boundaries():
    truth = torch.tensor([1.0, 2.0], dtype=torch.float64)
    golden = f32(1.0, 2.25)  # err_golden = 0.25
    at_limit = f32(1.5, 2.0)  # err_impl = 0.5 = 2 * 0.25 + 0
    r = ratio_rule(at_limit, golden, truth, k=2, floor=0.0)
    assert r.passed and r.err_impl == 0.5 and r.err_golden == 0.25 and r.limit == 0.5
    assert r.worst_index == (0,)
    assert (r.actual_at_worst, r.golden_at_worst, r.truth_at_worst) == (1.5, 1.0, 1.0)
    over = f32(1.5 + 2.0**-20, 2.0)
    assert not ratio_rule(over, golden, truth, k=2, floor=0.0).passed
    assert ratio_rule(over, golden, truth, k=2, floor=2.0**-20).passed
    assert not ratio_rule(f32(NAN, 2.0), golden, truth, k=2, floor=1.0).passed
    with pytest.raises(TypeError, match="truth must be float64"):
        ratio_rule(at_limit, golden, truth.float(), k=2, floor=0.0)
    with pytest.raises(ValueError, match="k must be"):
        ratio_rule(at_limit, golden, truth, k=-1, floor=0.0)


def test_ratio_allclose_boundary():
    expected = f32(1.0, 1.0, 1.0, 1.0)
    at_tol = 1.0 + 0.25 + 0.25 * 1.0  # atol + rtol |e| = 0.5, exact in binary
    actual = f32(at_tol, 1.0, 1.0, 1.0)
    r = ratio_allclose(actual, expected, atol=0.25, rtol=0.25, max_bad_fraction=0.0)
    assert r.passed and r.bad_count == 0 and r.worst_index == (0,) and r.worst_excess == 0.0
    actual = f32(1.0, float(torch.nextafter(f32(at_tol), f32(2.0))), 1.0, 1.0)
    r = ratio_allclose(actual, expected, atol=0.25, rtol=0.25, max_bad_fraction=0.25)
    assert r.passed and r.bad_count == 1 and r.fraction == 0.25 and r.worst_index == (1,)
    r = ratio_allclose(actual, expected, atol=0.25, rtol=0.25, max_bad_fraction=0.2)
    assert not r.passed and "FAIL" in str(r)
    # differing infinities are bad even though the tolerance at an inf expected is inf
    r = ratio_allclose(f32(-INF, NAN), f32(INF, NAN), atol=0.0, rtol=1.0, max_bad_fraction=0.0)
    assert r.bad_count == 1 and r.worst_index == (0,)


def test_nonfinite_mismatch():
    actual = torch.tensor([[1.0, NAN], [INF, -INF], [NAN, 0.0]])
    expected = torch.tensor([[1.0, NAN], [INF, 2.0], [INF, 0.0]])
    r = nonfinite_match(actual, expected)
    assert not r.passed
    assert (r.nan_mismatches, r.posinf_mismatches, r.neginf_mismatches) == (1, 1, 1)
    assert r.first_mismatch_index == (1, 1) and r.actual_at_first == -INF and r.expected_at_first == 2.0
    assert nonfinite_match(expected, expected).passed


def test_cosine_and_relative_l2_edges():
    z, x = torch.zeros(3), f32(1.0, 2.0, 3.0)
    assert cosine_similarity(z, z) == 1.0
    assert cosine_similarity(z, x) == 0.0 and cosine_similarity(x, z) == 0.0
    assert cosine_similarity(x, 2 * x) == pytest.approx(1.0, abs=1e-15)
    assert cosine_similarity(x, -x) == pytest.approx(-1.0, abs=1e-15)
    assert math.isnan(cosine_similarity(x, f32(1.0, NAN, 3.0)))
    assert relative_l2(z, z) == 0.0 and relative_l2(x, z) == INF
    assert relative_l2(f32(3.0, 14.0), f32(0.0, 10.0)) == 0.5


def test_shape_and_dtype_validation():
    with pytest.raises(ValueError, match="actual and expected must have the same shape"):
        max_abs_rel_error(torch.zeros(2), torch.zeros(3))
    with pytest.raises(TypeError, match="expected must be a floating-point tensor"):
        nonfinite_match(torch.zeros(2), torch.zeros(2, dtype=torch.int32))
    with pytest.raises(TypeError, match="actual must be a torch.Tensor"):
        compare([1.0], torch.zeros(1))


# ---------------------------------------------------------------- bound and assert

def test_bound_ratio_conventions():
    actual = f32(1.0, 1.0, 2.0, NAN, NAN, 1.5)
    expected = f32(1.0, 1.0, 1.0, NAN, 1.0, 1.0)
    bound = torch.tensor([0.0, 1.0, 0.0, 0.0, INF, 0.25])
    assert bound_ratio(actual, expected, bound).tolist() == [0.0, 0.0, INF, 0.0, INF, 2.0]
    assert bound_ratio(actual[:1], expected[:1], 0.5).dtype == torch.float64
    with pytest.raises(ValueError, match="bound must be >= 0"):
        bound_ratio(actual, expected, -1.0)
    with pytest.raises(ValueError, match="must broadcast"):
        bound_ratio(actual, expected, torch.ones(2))


def test_assert_within():
    expected = torch.zeros(2, 3)
    actual = expected.clone()
    actual[1, 1] = 0.3
    actual[0, 2] = 0.1
    bound = torch.full((3,), 0.1)  # broadcasts over rows; 0.1 exactly at bound passes
    assert_within(actual, expected, torch.full((3,), 0.3))
    with pytest.raises(AssertionError) as info:
        assert_within(actual, expected, bound, what="P1 attention")
    msg = str(info.value)
    assert msg.startswith("P1 attention: 1/6 elements exceed")
    assert "worst at (1, 1)" in msg and "bound 0.100000001" in msg and "max abs 3.000e-01" in msg


def test_compare_and_to_dict_json():
    torch.manual_seed(0)
    expected = torch.randn(2, 3, 4)
    actual = expected + 1e-3 * torch.randn(2, 3, 4)
    actual[0, 0, 0] = NAN
    truth = expected.double()
    c = compare(actual, expected, truth=truth)
    assert c.shape == (2, 3, 4) and c.max_ulp_fp32 == ULP_NAN_SENTINEL
    assert not c.nonfinite.passed and c.error.max_abs_index == (0, 0, 0)
    assert c.truth_at_worst == float(truth[0, 0, 0]) and c.err_expected_truth == 0.0
    text = str(c)
    assert "nonfinite MISMATCH" in text and "truth:" in text and len(text.splitlines()) == 7
    d = c.to_dict()
    assert d["error"]["max_abs_index"] == (0, 0, 0)
    json.dumps(d)
    results = [mismatch_ratio(actual, expected), max_abs_rel_error(actual, expected),
               ratio_rule(actual, actual, truth, k=1, floor=0.0),
               ratio_allclose(actual, expected, atol=1e-2, rtol=0.0, max_bad_fraction=0.1),
               nonfinite_match(actual, expected), compare(actual.bfloat16(), expected)]
    for r in results:
        json.loads(json.dumps(r.to_dict()))
        assert str(r)


def test_empty_tensors():
    e = torch.zeros(0, 3)
    c = compare(e, e)
    assert c.error.max_abs == 0.0 and c.error.max_abs_index is None and c.max_ulp_fp32 is None
    assert ratio_allclose(e, e, atol=0.0, rtol=0.0, max_bad_fraction=0.0).passed
    assert_within(e, e, 0.0)
