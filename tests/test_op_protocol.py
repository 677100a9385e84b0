"""Every registered op answers golden/values.py's per-op protocol (OpCase / OpInputs): what shared
code (coverage, reports, the kill matrix) asks of an op instead of testing its type or attributes."""
import pytest

from kernelprop.golden.values import CaseValue, OpCase, OpInputs, TensorArgs
from kernelprop.core.registry import OPS
from kernelprop.core.evidence import resolve


@pytest.mark.parametrize("op", OPS, ids=[o.label for o in OPS])
def test_case_and_inputs_answer_the_protocol(op):
    case = resolve(op.bad_input).fixed_case
    assert isinstance(case, op.case_type) and isinstance(case, CaseValue) and isinstance(case, OpCase)
    assert op.case_type.from_dict(case.to_dict()) == case
    size, shape = case.size()
    assert (size is None or (isinstance(size, int) and size >= 0)) and isinstance(shape, str)
    inputs = resolve(op.make_inputs)(case)
    assert isinstance(inputs, op.inputs_type) and isinstance(inputs, TensorArgs) and isinstance(inputs, OpInputs)
    found = inputs.shape_classes(op.recipe_type())
    assert isinstance(found, frozenset) and found <= set(inputs.SHAPE_CLASSES), op.kind
    assert isinstance(inputs.describe(), dict)
    assert set(inputs.DESCRIBE_LABELS) <= set(inputs.describe())
    assert inputs.truth() is not None
