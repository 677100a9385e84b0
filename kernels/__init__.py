"""Bundled Triton kernels under test (SPEC sections 6-7): sparse decode attention, RMSNorm and the
sparse indexer top-k.

Import side effect (the only one): on a machine without CUDA, if TRITON_INTERPRET is unset, this
package sets os.environ["TRITON_INTERPRET"] = "1" *before* triton is first imported, so the kernels
run through Triton's CPU interpreter. The variable is read when triton is imported, so it only takes
effect if nothing imported triton earlier; an explicit TRITON_INTERPRET value is never overridden.
"""
import os

import torch

if not torch.cuda.is_available() and "TRITON_INTERPRET" not in os.environ:
    os.environ["TRITON_INTERPRET"] = "1"

from kernelprop.golden.recipes import AttnRecipe, NormRecipe  # noqa: E402  (re-exported: one recipe type)
from kernelprop.kernels.rms_norm import rms_norm  # noqa: E402
from kernelprop.kernels.sparse_attention import sparse_decode_attention  # noqa: E402
from kernelprop.kernels.sparse_indexer import sparse_indexer_topk  # noqa: E402

__all__ = ["sparse_decode_attention", "rms_norm", "sparse_indexer_topk", "AttnRecipe", "NormRecipe"]
