"""RMSNorm sizes: the plain class's limits per backend and --sizes, and the reference rows (the
per-head q norm of the decode shape). No hypothesis import: P13's table (a replay module) holds
limits."""
from __future__ import annotations

from kernelprop.golden.rmsnorm_inputs import REFERENCE_NORM_DIM
from kernelprop.core.sizes import BySize, SizePresets, limits_type

NormLimits = limits_type("NormLimits", __name__, "Upper bounds on a drawn NormCase.", rows=8, dim=200)

NORM_SIZES = SizePresets(cpu=NormLimits(), cpu_nightly=NormLimits(rows=16, dim=600),
                         cuda=NormLimits(rows=256, dim=8192), cuda_large=NormLimits(rows=1024, dim=16384))

REFERENCE_NORM = dict(rows=128, heads=64, dim=REFERENCE_NORM_DIM)  # the per-head q norm of the decode shape
REFERENCE_NORM_SMALL_ROWS = 2   # at small sizes: one batch's S = 2 tokens, as the attention class
LARGE_NORM_DIM = 8192                                  # rows of the reference class at --sizes large


def first_arg_elements(*args) -> int:
    return args[0].numel()


INTERPRETER_MAX_NORM_ELEMENTS = 2 ** 20   # RMSNorm elements the interpreter runs at reference sizes
rms_norm_by_size = BySize("kernelprop.golden.rmsnorm_inputs:NormRecipe", first_arg_elements, INTERPRETER_MAX_NORM_ELEMENTS,
                          "kernelprop.kernels.rms_norm:rms_norm", "kernelprop.impls.mutants.rmsnorm:reference",
                          "RMSNorm elements")


def norm_audit_case():
    """The case one `./kp compile --impl rms_norm=...` call runs on (launches recorded, not
    executed): 8 rows of D = 4096 with a weight."""
    from kernelprop.golden.rmsnorm_inputs import NormCase

    return NormCase(seed=0, rows=8, dim=4096, weight=True)
