"""One kernel launch, described before it runs: the wrappers build it, run it, and `./kp compile`
compiles the very same description for sm_90a without a GPU (one source of truth for configs)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class KernelLaunch:
    """kernel[grid](*args, **constexprs, **options), kept as data until `run()`."""

    kernel: Any                       # the @triton.jit function (a JITFunction when compiled)
    grid: tuple[int, ...]             # programs along each grid axis
    args: tuple                       # runtime arguments, in the kernel's order (tensors, ints, floats)
    constexprs: Mapping[str, Any]     # tl.constexpr arguments by name (the configuration)
    options: Mapping[str, Any] = field(default_factory=dict)   # num_warps, num_stages, enable_fp_fusion

    def run(self) -> None:
        self.kernel[self.grid](*self.args, **self.constexprs, **self.options)

    @property
    def programs(self) -> int:
        total = 1
        for n in self.grid:
            total *= n
        return total
