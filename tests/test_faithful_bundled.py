"""The bundled kernels compute the same bits inside and outside the faithful interpreter (SPEC 8).

They round to bf16 by integer bit arithmetic (kernels/_bf16.py) and call tl.dot on fp32 operands
with input_precision="ieee", so none of the raw interpreter's bf16 faults reaches them: the patches
must not change one output bit. Small cases with NaN in unread pool rows, pads, out-of-range and
duplicate indices (golden.inputs' adversarial draws), every rounding mode and both output dtypes.
"""
from kernelprop import kernels  # noqa: F401  (sets TRITON_INTERPRET=1 before triton is imported, on CPU)

import os

import pytest
import torch

from kernelprop.faithful import faithful_interpreter, raw_interpreter
from kernelprop.golden.indexer import IndexerCase, make_indexer_inputs
from kernelprop.golden.inputs import AttnCase, make_attn_inputs
from kernelprop.golden.rmsnorm_inputs import NormInputs, NormRecipe
from kernelprop.kernels import AttnRecipe, sparse_decode_attention
from kernelprop.kernels.rms_norm import rms_norm
from kernelprop.kernels.sparse_indexer import sparse_indexer_topk

pytestmark = pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1",
                                reason="compares the CPU interpreter with and without the patches")


def both(call):
    with raw_interpreter():
        raw = call()
    with faithful_interpreter():
        faithful = call()
    return raw, faithful


def assert_bitwise(raw: torch.Tensor, faithful: torch.Tensor) -> None:
    assert raw.dtype == faithful.dtype and raw.shape == faithful.shape
    if raw.dtype.is_floating_point:
        width = {2: torch.int16, 4: torch.int32}[raw.element_size()]
        assert torch.equal(raw.view(width), faithful.view(width))
    else:
        assert torch.equal(raw, faithful)


@pytest.mark.parametrize("recipe", [AttnRecipe(), AttnRecipe(rounding="rtz", tile=16),
                                    AttnRecipe(rounding="rna", out_dtype="bf16"),
                                    AttnRecipe(p_dtype="fp32", l_from="unrounded", tile=None)])
def test_sparse_decode_attention_unchanged(recipe):
    case = AttnCase(seed=3, batches=2, tokens_per_batch=2, heads=3, head_dim=40, page_size=8,
                    window=16, topk=24, extra=5, pad_prob=0.2, oob_prob=0.1, dup_prob=0.1,
                    shuffle=True, strided=True, nan_unused=True, device="cpu")
    inputs = make_attn_inputs(case)
    assert_bitwise(*both(lambda: inputs.call(sparse_decode_attention, recipe=recipe)))


@pytest.mark.parametrize("recipe", [NormRecipe(), NormRecipe(inv="recip_sqrt", rounding="rtz"),
                                    NormRecipe(inv="recip_sqrt_rn", out_dtype="fp32")])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_rms_norm_unchanged(recipe, dtype):
    g = torch.Generator().manual_seed(7)
    x = (torch.randn(5, 300, generator=g) * 3).to(dtype)
    w = torch.randn(300, generator=g).to(dtype)
    inputs = NormInputs(x=x, weight=w, eps=1e-6)
    assert_bitwise(*both(lambda: inputs.call(rms_norm, recipe=recipe)))


def test_sparse_indexer_topk_unchanged():
    case = IndexerCase(seed=5, batches=2, tokens_per_batch=2, heads=3, head_dim=24, page_size=4,
                       window=4, topk=7, max_cmp_len=30)
    inputs = make_indexer_inputs(case)
    assert_bitwise(*both(lambda: inputs.call(sparse_indexer_topk)))
