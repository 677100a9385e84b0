"""Fused add RMSNorm sizes: the plain class's limits per backend and --sizes (no hypothesis
import: P13's table holds limits). The interpreter runs one program per row, so rows cost little;
the reference class (rows of 4096 / 8192) draws its own dims."""
from __future__ import annotations

from kernelprop.core.sizes import SizePresets, limits_type

FusedLimits = limits_type("FusedLimits", __name__, "Upper bounds on a drawn FusedCase.", rows=8, dim=200)

FUSED_SIZES = SizePresets(cpu=FusedLimits(), cpu_nightly=FusedLimits(rows=16, dim=600),
                          cuda=FusedLimits(rows=256, dim=8192), cuda_large=FusedLimits(rows=1024, dim=16384))

REFERENCE_DIMS = (4096, 8192)     # served hidden sizes (Llama-3 8B, 70B)
REFERENCE_ROWS = {"small": 2, "reference": 16, "large": 256}
