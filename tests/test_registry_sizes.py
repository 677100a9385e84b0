"""Each registered op owns its size limits (kernelprop.core.sizes.SizePresets, named by its record's
`limits`): one limits type per op, four presets, the run's preset chosen by backend and --sizes."""
import pytest

from kernelprop.core.registry import OPS
from kernelprop.core.evidence import resolve
from kernelprop.core.sizes import PositiveLimits, SizePresets

OP_IDS = [o.label for o in OPS]


@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_every_op_names_its_own_limits_type(op):
    presets = op.size_presets
    assert isinstance(presets, SizePresets), f"{op.kind}: limits={op.limits!r}"
    types = {type(getattr(presets, name)) for name in ("cpu", "cpu_nightly", "cuda", "cuda_large")}
    assert len(types) == 1 and issubclass(types.pop(), PositiveLimits)


def test_limits_types_are_not_shared_between_ops():
    types = [type(o.size_presets.cpu) for o in OPS]
    assert len(set(types)) == len(types), types


@pytest.mark.parametrize("backend, sizes, preset", [
    ("cpu", "small", "cpu"), ("cpu", "reference", "cpu_nightly"), ("cpu", "large", "cpu_nightly"),
    ("cuda", "small", "cuda"), ("cuda", "reference", "cuda"), ("cuda", "large", "cuda_large")])
@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_current_preset_follows_backend_and_sizes(op, backend, sizes, preset, monkeypatch):
    monkeypatch.setenv("KERNELPROP_BACKEND", backend)
    monkeypatch.setenv("KERNELPROP_SIZES", sizes)
    assert op.size_presets.current() is getattr(op.size_presets, preset)


def test_limits_reject_a_non_positive_bound():
    limits_type = type(OPS[0].size_presets.cpu)
    name = next(iter(limits_type.__dataclass_fields__))
    with pytest.raises(ValueError, match=name):
        limits_type(**{name: 0})


@pytest.mark.parametrize("op", [o for o in OPS if o.by_size], ids=lambda o: o.kind)
def test_by_size_wrapper_leaves_bad_arguments_to_the_kernels_checks(op):
    """P13 at reference sizes calls the by-size wrapper with a non-tensor first argument: the work
    measure cannot read it, so the bundled kernel runs and its checks name the argument (the
    wrapper itself must not fail with an AttributeError first)."""
    wrapper = resolve(op.by_size)
    with pytest.raises((TypeError, ValueError)) as raised:
        wrapper([[1.0]], *([None] * 12))
    assert not isinstance(raised.value, AttributeError)
