"""P13 bad input, for every registered op (kernelprop.core.registry.OPS) through the implementation
under test (its fixture: the bundled kernel or an --impl plug-in, which must validate too).
Hypothesis draws a small valid example and which argument to corrupt and how; plain parametrized
cases run every corruption once on a fixed example (device mismatch is skipped without CUDA; recipe
corruptions without a recipe keyword). The corruptions, the replay applying them and the fixed
example are the op's P13 argument table (properties/replays_bad_input.BadInputTable). Every call
runs under a timeout (replays_bad_input.TIMEOUT_S). Expected behaviour: TypeError / ValueError
naming the argument (NotImplementedError for an unsupported recipe); a non-unit last-dim stride is
rejected by name or computed exactly as the contiguous input; out-of-range indices are ignored
(bitwise as -1); a VALID index whose page id lies outside its pool (or whose block column is
missing) is a ValueError naming ori_block_table / cmp_block_table.
"""
import pytest
import torch
from hypothesis import event, given, settings, strategies as st

from kernelprop.properties.checks import run_property
from kernelprop.core.impl import input_checks
from kernelprop.core.registry import OPS, resolve

CUDA = torch.cuda.is_available()
NO_CUDA = "device mismatch needs a second device (CUDA is not available)"
OP_IDS = [o.label for o in OPS]


def _skip_unless_validating(impl) -> None:
    if not impl.validates_inputs:
        pytest.skip(reason=f"{impl.spec} declares validates_inputs = False (it does no argument "
                           f"checks; {input_checks()} can add them)")


def _skip_unless_possible(params: dict, impl) -> None:
    _skip_unless_validating(impl)
    if params["kind"] == "device" and not CUDA:
        pytest.skip(reason=NO_CUDA)
    if params["kind"] in ("recipe", "unsupported_recipe") and not impl.accepts_recipe:
        pytest.skip(reason=f"{impl.spec} takes no recipe keyword (accepts_recipe is not set)")


def _bad_input_run(op, table, impl, case, params) -> None:
    run_property("P13", table.check, table.replay, inputs={"inputs": resolve(op.make_inputs)(case)},
                 impl=impl, params=params, case=case)


# %% hypothesis: any argument, any corruption

@pytest.mark.spec("P13")
@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
@given(data=st.data())
def test_p13_bad_input(op, impl_of, device, data):
    impl = impl_of(op.kind)
    _skip_unless_validating(impl)
    table = resolve(op.bad_input)
    cases = resolve(op.cases)(**table.case_kwargs)
    case = table.fix_case(data.draw(cases, label="case")).replace(device=device)
    params = data.draw(st.sampled_from(table.corruptions(recipes=bool(impl.accepts_recipe),
                                                         cuda=CUDA)), label="corruption")
    event(f"{params['kind']} {params.get('arg', '')}".strip())
    _bad_input_run(op, table, impl, case, params)


# %% plain cases: every corruption once, on a fixed example

PLAIN = [(o, params) for o in OPS
         for params in resolve(o.bad_input).corruptions(recipes=True, cuda=True)]  # skipped where impossible


def _once(check) -> None:
    """Run `check` as a one-example hypothesis test: run_property calls target() and note(), which
    need a hypothesis context (properties/checks.py does not guard them)."""
    def body(_):
        check()

    settings(max_examples=1, database=None, deadline=None)(given(st.just(None))(body))()


def _id(pair) -> str:
    o, params = pair
    return o.label + "-" + "-".join(str(v) for v in params.values())


@pytest.mark.spec("P13")
@pytest.mark.parametrize("pair", PLAIN, ids=[_id(p) for p in PLAIN])
def test_p13_case(pair, impl_of, device):
    op, params = pair
    impl = impl_of(op.kind)
    _skip_unless_possible(params, impl)
    table = resolve(op.bad_input)
    case = table.fixed_case.replace(device=device)
    _once(lambda: _bad_input_run(op, table, impl, case, params))
