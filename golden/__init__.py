"""Golden references, precision recipes and error metrics (pure torch, CPU or GPU)."""
from kernelprop.golden.recipes import NormRecipe
from kernelprop.golden.rounding import round_to_bf16, bf16_ulp
from kernelprop.golden.rmsnorm import rms_norm_fp64, rms_norm_golden, rms_norm_trace
from kernelprop.golden.rmsnorm_bounds import NormBackend
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
