"""One kernel launch, described before it runs: the wrappers build it, run it, and `./kp compile`
compiles the very same description for sm_90a without a GPU (one source of truth for configs)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

# CUDA's grid limits (programs per axis): x up to 2^31 - 1, y and z up to 65535
GRID_LIMITS = (2**31 - 1, 65535, 65535)


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

    def grid_problems(self) -> list[str]:
        """Why this grid cannot launch on CUDA (empty: it can): more than 3 axes, or an axis with
        more programs than GRID_LIMITS allows."""
        if len(self.grid) > len(GRID_LIMITS):
            return [f"grid {self.grid} has {len(self.grid)} axes; CUDA allows 3"]
        return [f"grid axis {axis} has {n} programs; CUDA allows at most {limit}"
                for axis, (n, limit) in enumerate(zip(self.grid, GRID_LIMITS)) if n > limit]
