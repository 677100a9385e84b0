"""P13 bad input, for both kernels through the implementation under test (`attn_impl`, `norm_impl`:
the bundled kernels or an --impl plug-in, which must validate too). Hypothesis draws a small valid
example and which argument to corrupt and how; plain parametrized cases run every corruption once
on a fixed example (device mismatch is skipped without CUDA; recipe corruptions without a recipe
keyword). Every call runs under a timeout (replays_bad_input.TIMEOUT_S). Expected behaviour:
TypeError / ValueError naming the argument (NotImplementedError for an unsupported recipe); a
non-unit last-dim stride is rejected by name or computed exactly as the contiguous input;
out-of-range indices are ignored (bitwise as -1); a VALID index whose page id lies outside its pool
(or whose block column is missing) is a ValueError naming ori_block_table / cmp_block_table.
"""
import pytest
import torch
from hypothesis import event, given, settings, strategies as st

from kernelprop.golden.inputs import AttnCase, NormCase, make_attn_inputs, make_norm_inputs
from kernelprop.properties.checks import run_property
from kernelprop.properties.replays_bad_input import (
    ATTN_TENSORS,
    BAD_DTYPES,
    BAD_RECIPES,
    BAD_SCALARS,
    NORM_TENSORS,
    SIZE_MISMATCH,
)
from kernelprop.properties.strategies import Limits, attn_cases, norm_cases

CUDA = torch.cuda.is_available()
NO_CUDA = "device mismatch needs a second device (CUDA is not available)"
SMALL = Limits(batches=2, tokens_per_batch=2, heads=3, head_dim=16, page_size=4, window=8, topk=8,
               extra=2, cmp_len=16, norm_rows=4, norm_dim=32)
ATTN_CHECK = "bad attention input: clear error naming the argument, or the documented semantics"
NORM_CHECK = "bad rms_norm input: clear error naming the argument, or the documented semantics"


def small_attn_cases():
    """Valid small examples; every batch's last token sees window slot 0, so a valid index exists."""
    return attn_cases(limits=SMALL, pads=False).map(
        lambda c: c.replace(min_used=c.tokens_per_batch + 1, max_cmp_len=max(c.max_cmp_len, 3)))


def attn_corruption_list(*, recipes: bool, cuda: bool) -> list:
    """Every attention corruption (JSON-able dicts for replays_bad_input.p13_attention)."""
    out = [{"kind": "not_tensor", "arg": a} for a in ATTN_TENSORS]
    out += [{"kind": "dtype", "arg": a, "dtype": d} for a in ATTN_TENSORS for d in BAD_DTYPES[a]]
    out += [{"kind": "rank", "arg": a, "how": h} for a in ATTN_TENSORS for h in ("add", "drop")]
    out += [{"kind": "size", "arg": a, "dim": d} for a in ATTN_TENSORS for d, _ in SIZE_MISMATCH[a]]
    out += [{"kind": "stride", "arg": a} for a in ATTN_TENSORS]
    out += [{"kind": "oob_index", "seed": s} for s in range(8)]
    out += [{"kind": "bad_page", "which": w, "page": p} for w in ("ori", "cmp")
            for p in ("n_pages", "n_pages+5", "-1", "int_max")]
    out += [{"kind": "bad_column", "which": w} for w in ("ori", "cmp")]
    out += [{"kind": "scalar", "arg": a, "value": v}
            for a in ("tokens_per_batch", "window", "softmax_scale") for v in BAD_SCALARS[a]]
    if recipes:
        out += [{"kind": "recipe", "value": v} for v in BAD_RECIPES["sparse_attention"]]
    if cuda:
        out += [{"kind": "device", "arg": a} for a in ATTN_TENSORS]
    return out


def norm_corruption_list(*, recipes: bool, cuda: bool) -> list:
    """Every rms_norm corruption (JSON-able dicts for replays_bad_input.p13_norm)."""
    out = [{"kind": "not_tensor", "arg": a} for a in NORM_TENSORS]
    out += [{"kind": "dtype", "arg": a, "dtype": d} for a in NORM_TENSORS for d in BAD_DTYPES[a]]
    out += [{"kind": "rank", "arg": "x", "how": "scalar"}]
    out += [{"kind": "rank", "arg": "weight", "how": h} for h in ("add", "drop")]
    out += [{"kind": "size", "arg": "weight", "dim": 0}, {"kind": "empty_last_dim", "arg": "x"}]
    out += [{"kind": "stride", "arg": a} for a in NORM_TENSORS]
    out += [{"kind": "scalar", "arg": "eps", "value": v} for v in BAD_SCALARS["eps"]]
    if recipes:
        out += [{"kind": "recipe", "value": v} for v in BAD_RECIPES["rms_norm"]]
        out += [{"kind": "unsupported_recipe", "approx_bits": k} for k in (8, 10, 12)]
    if cuda:
        out += [{"kind": "device", "arg": "weight"}]
    return out


def _skip_unless_validating(impl) -> None:
    if not impl.validates_inputs:
        pytest.skip(reason=f"{impl.spec} declares validates_inputs = False (it does no argument "
                           f"checks; kernelprop.check_attention_args / check_norm_args can add them)")


def _skip_unless_possible(params: dict, impl) -> None:
    _skip_unless_validating(impl)
    if params["kind"] == "device" and not CUDA:
        pytest.skip(reason=NO_CUDA)
    if params["kind"] in ("recipe", "unsupported_recipe") and impl.accepts_recipe is not True:
        pytest.skip(reason=f"{impl.spec} takes no recipe keyword (accepts_recipe is not True)")


# %% hypothesis: any argument, any corruption

@pytest.mark.spec("P13")
@given(data=st.data())
def test_p13_attention_bad_input(attn_impl, device, data):
    _skip_unless_validating(attn_impl)
    case = data.draw(small_attn_cases().map(lambda c: c.replace(device=device)), label="case")
    params = data.draw(st.sampled_from(attn_corruption_list(recipes=attn_impl.accepts_recipe is True,
                                                            cuda=CUDA)), label="corruption")
    event(f"{params['kind']} {params.get('arg', '')}".strip())
    run_property("P13", ATTN_CHECK, "kernelprop.properties.replays_bad_input:p13_attention",
                 inputs={"inputs": make_attn_inputs(case)}, impl=attn_impl, params=params, case=case)


@pytest.mark.spec("P13")
@given(data=st.data())
def test_p13_norm_bad_input(norm_impl, device, data):
    _skip_unless_validating(norm_impl)
    case = data.draw(norm_cases(limits=SMALL).map(lambda c: c.replace(device=device)), label="case")
    params = data.draw(st.sampled_from(norm_corruption_list(recipes=norm_impl.accepts_recipe is True,
                                                            cuda=CUDA)), label="corruption")
    event(f"{params['kind']} {params.get('arg', '')}".strip())
    run_property("P13", NORM_CHECK, "kernelprop.properties.replays_bad_input:p13_norm",
                 inputs={"inputs": make_norm_inputs(case)}, impl=norm_impl, params=params, case=case)


# %% plain cases: every corruption once, on a fixed example

ATTN_CASE = AttnCase(seed=1, batches=2, tokens_per_batch=2, heads=3, head_dim=16, page_size=4,
                     window=8, topk=6, max_cmp_len=12, min_used=3)
ATTN_PLAIN = attn_corruption_list(recipes=True, cuda=True)   # skipped where impossible
NORM_CASE = NormCase(seed=1, rows=3, dim=24, weight=True)
NORM_PLAIN = norm_corruption_list(recipes=True, cuda=True)


def _once(check) -> None:
    """Run `check` as a one-example hypothesis test: run_property calls target() and note(), which
    need a hypothesis context (properties/checks.py does not guard them)."""
    def body(_):
        check()

    settings(max_examples=1, database=None, deadline=None)(given(st.just(None))(body))()


def _id(params: dict) -> str:
    return "-".join(str(v) for v in params.values())


@pytest.mark.spec("P13")
@pytest.mark.parametrize("params", ATTN_PLAIN, ids=_id)
def test_p13_attention_case(attn_impl, device, params):
    _skip_unless_possible(params, attn_impl)
    case = ATTN_CASE.replace(device=device)
    _once(lambda: run_property("P13", ATTN_CHECK, "kernelprop.properties.replays_bad_input:p13_attention",
                               inputs={"inputs": make_attn_inputs(case)}, impl=attn_impl,
                               params=params, case=case))


@pytest.mark.spec("P13")
@pytest.mark.parametrize("params", NORM_PLAIN, ids=_id)
def test_p13_norm_case(norm_impl, device, params):
    _skip_unless_possible(params, norm_impl)
    case = NORM_CASE.replace(device=device)
    _once(lambda: run_property("P13", NORM_CHECK, "kernelprop.properties.replays_bad_input:p13_norm",
                               inputs={"inputs": make_norm_inputs(case)}, impl=norm_impl,
                               params=params, case=case))
