"""The norm, fused and stack half of the bug zoo (impls/zoo/norm.py, fused.py, stack.py): each
entry's mechanism fires on its trigger and stays silent off it, the controls are right, and the
launch properties' replays fail on the bugs they were built for (cheap direct calls, no hypothesis;
the kill matrix runs the suite: `kp mutants --zoo`)."""
import os

import pytest
import torch

from kernelprop.faithful import autotune_config, faithful_interpreter, raw_interpreter
from kernelprop.golden.fused_add_norm import FusedCase, make_fused_inputs
from kernelprop.golden.rmsnorm_inputs import NormCase, NormRecipe, make_norm_inputs
from kernelprop.core.impl import make_impl
from kernelprop.impls import zoo
from kernelprop.impls.mutants.rmsnorm import reference
from kernelprop.impls.zoo import fused, norm, stack
from kernelprop.properties.replays_norm import recipe_params
from kernelprop.properties.replays_norm_launch import f4_batch_invariance, p11_reruns, p9_batch_invariance
from kernelprop.core.scratch import poisoned_allocations
from kernelprop.core.verdict import check_outcome

FP32 = NormRecipe(out_dtype="fp32")


def _x(**kw):
    return make_norm_inputs(NormCase(**{"seed": 3, "rows": 7, "dim": 100, **kw}))


def _ref(x, recipe=None):
    return reference(x.x, x.weight, eps=x.eps, recipe=recipe)


def test_every_bug_of_this_half_has_an_entry():
    bugs = {e.bug for e in zoo.zoo()}
    assert bugs >= set(range(18, 31))
    for e in norm.ZOO + stack.ZOO + fused.ZOO:
        assert all(u.startswith("https://github.com/") for u in e.threads), e.name


def test_batch_invariance_replay_fails_only_on_the_token_count_block():
    impl = make_impl("rms_norm", "impls/zoo/norm.py:zoo_vllm_48271_block_by_tokens")
    control = make_impl("rms_norm", "impls/zoo/norm.py:block_256")
    w = make_norm_inputs(NormCase(seed=0, rows=300, dim=4096, dtype="fp32"))
    inputs = {"inputs": w, "part": w.replace(x=w.x[:60])}
    params = recipe_params(FP32, "cpu", start=0, counts=[100, 300])
    assert check_outcome(p9_batch_invariance(inputs, impl, params)).failing
    assert not check_outcome(p9_batch_invariance(inputs, control, params)).failing


def test_fused_batch_invariance_replay():
    x = make_fused_inputs(FusedCase(seed=0, rows=300, dim=4096, dtype="fp32"))
    params = recipe_params(FP32, "cpu", part_rows=60, counts=[300])
    bad = make_impl("fused_add_rms_norm", "impls/zoo/fused.py:zoo_vllm_48271_fused_block_by_tokens")
    good = make_impl("fused_add_rms_norm", "impls/zoo/fused.py:fused_block_256")
    assert check_outcome(f4_batch_invariance({"inputs": x}, bad, params)).failing
    assert not check_outcome(f4_batch_invariance({"inputs": x}, good, params)).failing


def test_reruns_replay_sees_an_overwritten_input():
    x = _x(dtype="fp32")
    bad = make_impl("rms_norm", "impls/zoo/norm.py:zoo_nanovllm_170_input_overwritten")
    assert check_outcome(p11_reruns({"inputs": x}, bad, recipe_params(FP32, "cpu"))).failing
    x = _x(dtype="fp32")
    good = make_impl("rms_norm", "impls/zoo/norm.py:block_256")
    assert not check_outcome(p11_reruns({"inputs": x}, good, recipe_params(FP32, "cpu"))).failing


def test_pipelined_sum_reads_poison_or_stale_tiles():
    with poisoned_allocations():
        assert torch.isnan(norm.zoo_vllm_44692_pipelined_sum(*_args(_x(dim=64)))).all()
        right = norm.zoo_vllm_44692_pipelined_sum(*_args(_x(dim=96)))
    assert torch.equal(right, _ref(_x(dim=96)))
    assert not torch.equal(norm.zoo_vllm_44692_pipelined_sum(*_args(_x(dim=200))), _ref(_x(dim=200)))


def _args(x):
    return x.x, x.weight


def test_layout_entries_need_their_trigger():
    dense, strided = _x(), _x(strided=True)
    for fn in (norm.zoo_unsloth_10617_dense_rows, norm.zoo_lightllm_1467_x_stride1):
        assert torch.equal(fn(dense.x, dense.weight, eps=dense.eps), _ref(dense))
    assert not torch.equal(norm.zoo_unsloth_10617_dense_rows(strided.x, strided.weight, eps=strided.eps),
                           _ref(strided))
    cols = dense.x[:, ::2]
    assert not torch.equal(norm.zoo_lightllm_1467_x_stride1(cols, None), reference(cols.contiguous(), None))
    odd = _x(dim=101)
    y = norm.zoo_aiter_5044_odd_hidden(odd.x, odd.weight, eps=odd.eps)
    assert (y[1:, 0] == 0).all() and torch.equal(y[:, 1:], _ref(odd)[:, 1:])


def test_stack_torch_entries_need_their_trigger():
    narrow = NormRecipe(compute_dtype="input", out_dtype="input")
    x = _x()
    assert not torch.equal(stack.zoo_triton_11217_bf16_mul_rtz(x.x, x.weight, eps=x.eps), _ref(x, narrow))
    tiny = make_norm_inputs(NormCase(seed=1, rows=2, dim=8, data="tiny", eps=0.0, dtype="fp32"))
    flushed = stack.zoo_triton_8557_ftz_div_sqrt(tiny.x, tiny.weight, eps=0.0, recipe=FP32)
    assert not torch.isfinite(flushed).all() and torch.isfinite(_ref(tiny, FP32)).all()
    assert torch.equal(stack.zoo_fla_1082_int32_offsets(x.x, x.weight, eps=x.eps), _ref(x))


def test_triton_controls_and_their_bugs():
    x = _x(rows=9)
    ref = _ref(x)
    with faithful_interpreter():
        assert (stack.gram_rms_norm(*_args(x)).float() - ref.float()).abs().max() <= 2 ** -7
        assert (stack.zoo_triton_11584_dot_bits(*_args(x)).float() - ref.float()).abs().max() > 1
        for index in (0, 1):
            with autotune_config(index):
                assert torch.equal(stack.rows_rms_norm(*_args(x)), stack.zoo_fla_1077_grid_axis(*_args(x)))
        with autotune_config(1), poisoned_allocations():
            tail = stack.zoo_triton_9230_autotune_tail(*_args(x))
        assert torch.isnan(tail[8:]).all() and not torch.isnan(tail[:8]).any()


@pytest.mark.skipif(os.environ.get("KERNELPROP_RAW_INTERPRETER", "") not in ("", "0"),
                    reason="compares the raw interpreter with the faithful one")
def test_raw_interpreter_blames_the_correct_gram_kernel():
    """triton #11584: the raw interpreter's bf16 dot multiplies bit patterns, so the correct
    Gram-dot kernel is far off there (the false alarm the faithful interpreter removes)."""
    x = _x(rows=9)
    with faithful_interpreter(), raw_interpreter():
        raw = stack.gram_rms_norm(*_args(x))
    assert (raw.float() - _ref(x).float()).abs().max() > 1
