"""Issue 10's false alarm, shrunk: sink - M > ~88.7 overflows the golden's fp32 L + exp(sink - M),
the golden returns 0, and an implementation that folds the sink in through logsumexp returns the
exact subnormal value rounded to the 2^-149 grid. The bound there must allow that value with its
relative slack and an absolute subnormal floor (golden.attention_bounds.subnormal_floor), and still
reject a wrong one. Counterexample: one key row k = 3 (D = 1), sink = s + 102, so o = 3 e^-102.
"""
from __future__ import annotations

import math

import torch

from kernelprop.golden.attention import sparse_attention_fp64, sparse_attention_trace
from kernelprop.golden.attention_bounds import attention_p1_bound, attention_p2_bound, sensitivity
from kernelprop.golden.attention_inputs import AttnCase, AttnInputs, AttnRecipe, make_attn_inputs
from kernelprop.golden.error_model import FP32_MIN_NORMAL
from kernelprop.core.verdict import check_outcome
from kernelprop.properties.replays_attention import p1, p6_sink_scaling_impl, p7_empty_rows, recipe_params
from tests.lse_sink_impl import lse_sink_attention


def _one_key(k_value: float, sink_offset: float) -> AttnInputs:
    """T = H = D = K = 1: q = 1, the one key row k_value, sink = score + sink_offset."""
    kv = torch.full((1, 1, 1), k_value, dtype=torch.bfloat16)
    table = torch.zeros(1, 1, dtype=torch.int32)
    return AttnInputs(q=torch.ones(1, 1, 1, dtype=torch.bfloat16), ori_kv=kv, ori_block_table=table,
                      cmp_kv=kv.clone(), cmp_block_table=table.clone(),
                      sparse_indices=torch.zeros(1, 1, dtype=torch.int32),
                      seqused_kv=torch.ones(1, dtype=torch.int32),
                      attn_sink=torch.tensor([k_value + sink_offset]), window=1, tokens_per_batch=1,
                      softmax_scale=None)


SHRUNK = _one_key(3.0, 102.0)


def test_golden_overflows_and_lse_fold_returns_the_subnormal_value():
    recipe = AttnRecipe()
    trace = SHRUNK.call(sparse_attention_trace, recipe=recipe)
    assert math.isinf(float(trace.denom)) and float(trace.o) == 0.0
    exact = float(SHRUNK.call(sparse_attention_fp64))
    got = float(SHRUNK.call(lse_sink_attention, recipe=recipe))
    assert 0 < exact < 2.0 ** -140 and abs(got - exact) <= 2 * 2.0 ** -149  # 1.2 steps
    # the pre-fix allowance was exactly the exact magnitude A / Lt: the rounded value exceeds it
    sens = sensitivity(trace, SHRUNK.attn_sink)
    old = float((sens.w * trace.p.double()).sum() * 3.0 / (trace.L.double() + sens.sigma))
    assert got > old


def test_p1_p7_p6_pass_on_the_lse_fold():
    params = recipe_params(AttnRecipe())
    for replay in (p1, p7_empty_rows, p6_sink_scaling_impl):
        verdict = check_outcome(replay({"inputs": SHRUNK}, lse_sink_attention, params))
        assert not verdict.failing, (replay.__name__, verdict)


def test_overflow_bound_still_rejects_a_wrong_tiny_value():
    recipe = AttnRecipe()
    trace = SHRUNK.call(sparse_attention_trace, recipe=recipe)
    bound = float(attention_p1_bound(trace, SHRUNK.q, SHRUNK.attn_sink, recipe))
    exact = float(SHRUNK.call(sparse_attention_fp64))
    assert exact <= bound < 2 * exact   # twice the value (e.g. the sink counted half) fails
    assert bound < 2.0 ** -140          # a floor, not a hole: a normal-range value fails


# The 1500-example nightly's false alarm on impls/flat_slot_reference.py (P5 duplicates, golden
# side, tc_adversarial): sink - M = 80.7 puts L + exp(sink - M) at ~1e35 and o of a small v column
# at ~6e-43, where the golden's fp32 quotient rounds to the 2^-149 grid (0.27 of a step off the
# fp64 truth) while the relative-only bound allowed 0.0027 of a step.
NIGHTLY = AttnCase(seed=11, batches=2, tokens_per_batch=2, heads=2, head_dim=64, page_size=1,
                   window=3, topk=0, extra=1, max_cmp_len=11, min_used=0, pad_prob=0.05,
                   oob_prob=0.05, dup_prob=0.05, shuffle=True, spare_pages=0, data="tc_adversarial",
                   sink="large", min_valid_keys=0)
FLAT = AttnRecipe(tile=None, p_dtype="fp32", l_from="unrounded", out_dtype="bf16")
GRID = 2.0 ** -149


def test_subnormal_output_short_of_overflow_is_within_p2_and_a_flush_is_not():
    x = make_attn_inputs(NIGHTLY)
    trace = x.call(sparse_attention_trace, recipe=FLAT)
    assert bool(torch.isfinite(trace.denom).all())            # no overflow: the new branch
    o, exact = trace.o.double(), x.call(sparse_attention_fp64)
    bound = attention_p2_bound(trace, x.attn_sink, FLAT)
    tiny = (o != 0) & (o.abs() < FP32_MIN_NORMAL)
    err = (o - exact).abs()
    assert bool(tiny.any()) and float(err[tiny].max()) > 10 * 2.0 ** -24 * float(o[tiny].abs().max())
    assert bool((err <= bound).all())
    # still tight there: flushing those outputs to zero (an FTZ output) exceeds the bound
    assert bool((exact[tiny].abs() > bound[tiny]).all()), float((bound[tiny] / GRID).max())
