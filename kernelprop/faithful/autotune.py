"""@triton.autotune without a driver: one declared config per run, chosen by the caller, recorded.

Raw interpreter (SPEC section 5): a multi-config autotune benchmarks every config through the
driver ("0 active drivers"). Timing is no part of correctness, and each config is a different
kernel (block sizes, split factors), so each is a variant to verify on its own: `autotune_config(i)`
runs declared config i (default 0) of every autotuned kernel; where the kernel's own
`early_config_prune` drops config i for these arguments, the GPU could never run it there, and the
first surviving config runs instead. The config that ran is recorded per kernel
(`last_autotune_config`). @triton.heuristics needs no driver and runs unchanged.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

from triton.runtime import autotuner as _autotuner


@dataclass(frozen=True)
class AutotuneChoice:
    kernel: str      # the autotuned kernel's function name
    index: int       # position of the config that ran in the kernel's declared configs
    count: int       # how many configs the kernel declares
    config: str      # str(triton.Config): its kwargs, num_warps, num_stages, ...
    requested: int   # the index asked for (differs from index where pruning dropped it)

    def describe(self) -> str:
        return f"{self.kernel} autotune config {self.index} of {self.count}: {self.config}"


_SELECTED = [0]
_LAST: dict[str, AutotuneChoice] = {}


@contextlib.contextmanager
def autotune_config(index: int):
    """Run declared config `index` of every @triton.autotune kernel inside the block."""
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise ValueError(f"autotune_config: index must be an int >= 0, got {index!r}")
    _SELECTED.append(index)
    try:
        yield
    finally:
        _SELECTED.pop()


def _name(kernel) -> str:
    if isinstance(kernel, str):
        return kernel
    fn = getattr(kernel, "base_fn", None) or getattr(kernel, "fn", None) or kernel
    return getattr(fn, "__name__", str(fn))


def last_autotune_config(kernel) -> AutotuneChoice | None:
    """The config the autotuned `kernel` (the decorated object or its function name) last ran."""
    return _LAST.get(_name(kernel))


def autotune_choices() -> dict[str, AutotuneChoice]:
    """Every autotuned kernel run so far -> the config it last ran."""
    return dict(_LAST)


def _choose(tuner, kwargs) -> tuple[int, object]:
    requested = _SELECTED[-1]
    configs = tuner.configs
    if requested >= len(configs):
        raise ValueError(f"autotune_config({requested}): kernel {_name(tuner)} declares "
                         f"{len(configs)} config(s) (indices 0..{len(configs) - 1})")
    prune = tuner.early_config_prune
    surviving = (prune(configs, tuner.nargs, **kwargs) or configs) if prune else configs
    config = configs[requested]
    if config not in surviving:
        config = surviving[0]
    return configs.index(config), config


def run(self, *args, **kwargs):
    self.nargs = dict(zip(self.arg_names, args))
    try:
        index, config = _choose(self, kwargs)
        _LAST[_name(self)] = AutotuneChoice(_name(self), index, len(self.configs), str(config), _SELECTED[-1])
        self.best_config = config
        if config.pre_hook is not None:
            config.pre_hook({**self.nargs, **kwargs, **config.all_kwargs()})
        return self.fn.run(*args, **kwargs, **config.all_kwargs())
    finally:
        self.nargs = None


def install(patcher) -> None:
    patcher.set_attr(_autotuner.Autotuner, "run", run)
