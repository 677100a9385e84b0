"""Golden references, precision recipes and error metrics (pure torch, CPU or GPU)."""
from kernelprop.golden.recipes import AttnRecipe
from kernelprop.golden.rounding import round_to_bf16, bf16_ulp
from kernelprop.golden.attention import (
    gather_kv,
    sparse_attention_fp32_full,
    sparse_attention_fp64,
    sparse_attention_golden,
    sparse_attention_trace,
    valid_index_mask,
)
from kernelprop.golden.attention_bounds import AttnBackend, attention_p1_bound, attention_p2_bound
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
