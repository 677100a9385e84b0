"""Sparse-attention sizes: the plain class's limits per backend and --sizes, and the reference
decode shape (SPEC section 2). No hypothesis import: P13's table (a replay module) holds limits."""
from __future__ import annotations

from kernelprop.core.sizes import BySize, SizePresets, limits_type

AttnLimits = limits_type(
    "AttnLimits", __name__, "Upper bounds on a drawn AttnCase (one example must stay fast on the backend).",
    batches=2, tokens_per_batch=2, heads=4, head_dim=48, page_size=16, window=24, topk=40, extra=6,
    cmp_len=64)

ATTN_SIZES = SizePresets(
    cpu=AttnLimits(),
    cpu_nightly=AttnLimits(batches=3, heads=6, head_dim=80, page_size=24, window=40, topk=80,
                           extra=10, cmp_len=128),
    cuda=AttnLimits(batches=4, tokens_per_batch=2, heads=64, head_dim=576, page_size=64,
                    window=128, topk=512, extra=16, cmp_len=1024),
    cuda_large=AttnLimits(batches=16, tokens_per_batch=4, heads=128, head_dim=1024, page_size=128,
                          window=256, topk=1024, extra=32, cmp_len=4096),
)

# How many batches the reference decode shape's class (golden.attention_inputs.REFERENCE) draws per
# size.
REFERENCE_BATCHES = {"reference": 64, "large": 128}


def attention_work(*args) -> int:
    """T*H*D*K of a sparse_decode_attention call (the interpreter's cost)."""
    q, idx = args[0], args[5]
    return q.shape[0] * q.shape[1] * q.shape[2] * idx.shape[-1]


# T*H*K*D up to which the interpreter runs an example at reference sizes on CPU: the reference
# shape at T=2 (2*64*640*512 = 42M) takes ~0.65 s a call (measured, 2026-11-27)
INTERPRETER_MAX_WORK = 2 ** 26
sparse_attention_by_size = BySize("kernelprop.golden.attention_inputs:AttnRecipe", attention_work, INTERPRETER_MAX_WORK,
                                  "kernelprop.kernels:sparse_decode_attention",
                                  "kernelprop.impls.mutants.attention:reference", "T*H*K*D")


def attention_audit_case():
    """The case one `./kp compile --impl sparse_attention=...` call runs on (launches recorded, not
    executed): the DSV4 decode shape's per-token dims, one batch (the kernel's specialization is
    shape-driven)."""
    from kernelprop.golden.attention_inputs import AttnCase

    return AttnCase(seed=0, batches=1, tokens_per_batch=2, heads=64, head_dim=512, page_size=64,
                    window=128, topk=512, max_cmp_len=1024, min_used=128 + 1024, nan_unused=False)
