"""Planted autotune bug: an RMSNorm "autotuned" over three configs whose config 1 truncates its
bf16 output (rtz) while configs 0 and 2 round to nearest (impls/torch_reference.py). With it, a
stand-in of the faithful backend's autotune API (`autotune_choices`, `autotune_config`) that
tests/test_root_causes.py installs where kernelprop has none; the kernel runs config 1 unless a
caller chooses another."""
import contextlib
from dataclasses import dataclass

from kernelprop.impls.torch_reference import rms_norm as _reference

CONFIGS = ("BLOCK=64", "BLOCK=128", "BLOCK=256")
_SELECTED = [1]
_LAST: dict = {}


@dataclass(frozen=True)
class Choice:
    kernel: str
    index: int
    count: int
    config: str

    def describe(self) -> str:
        return f"{self.kernel} autotune config {self.index} of {self.count}: {self.config}"


@contextlib.contextmanager
def autotune_config(index: int):
    _SELECTED.append(index)
    try:
        yield
    finally:
        _SELECTED.pop()


def autotune_choices() -> dict:
    return dict(_LAST)


def rms_norm(x, weight=None, *, eps=1e-6, recipe=None):
    index = _SELECTED[-1]
    _LAST["_rms_norm_kernel"] = Choice("_rms_norm_kernel", index, len(CONFIGS), CONFIGS[index])
    recipe = recipe or rms_norm.recipe
    return _reference(x, weight, eps=eps,
                      recipe=recipe.replace(rounding="rtz") if index == 1 else recipe)


rms_norm.recipe = _reference.recipe
rms_norm.accepts_recipe = True
