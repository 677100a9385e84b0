"""Golden references, precision recipes and error metrics (pure torch, CPU or GPU)."""
from kernelprop.golden.metrics import (
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
