"""The CUDA error model (golden.attention_bounds.CUDA_MODEL, properties.replays_norm.INV_ULPS
["cuda"]; docs/bounds.md#gpu-model) checked on the CPU: it must contain the H100 figures SPEC
section 5 states, and CPU emulations of the GPU's arithmetic (ex2.approx with its argument
rounding, truncating k = 16 tensor-core accumulation, flush to zero) must stay inside it.
"""
from __future__ import annotations

import math

import pytest
import torch

from kernelprop.golden.attention import sparse_attention_trace
from kernelprop.golden.attention_bounds import CUDA_MODEL, _exp_rel, attention_p1_bound
from kernelprop.golden.error_model import FP32_ULP_REL, U_FP32 as U
from kernelprop.golden.inputs import AttnCase, make_attn_inputs
from kernelprop.golden.recipes import AttnRecipe
from kernelprop.golden.rounding import round_to_bf16
from kernelprop.properties.replays_norm import INV_ULPS

ULP_MAX_REL = FP32_ULP_REL  # one fp32 ulp is at most 2^-23 of the value
LOG2E = 1.4426950408889634


def test_model_contains_spec5_exp_figure():
    """SPEC 5: tl.exp on [-30, 0] within 28 fp32 ulp of fp64 (H100, triton 3.6.0)."""
    x = torch.linspace(-30, 0, 3001, dtype=torch.float64)
    allowed = _exp_rel(x, CUDA_MODEL)
    assert float(allowed.min()) >= 2 * ULP_MAX_REL           # ex2.approx alone: 2 ulp
    assert float(allowed[0]) >= 28 * ULP_MAX_REL             # |x| = 30: the measured 28 ulp


def test_model_contains_spec5_inv_figure():
    """SPEC 5: rsqrt, 1/sqrt, div_rn(1, sqrt_rn) within 3 ulp of fp64 (H100, D = 512)."""
    assert INV_ULPS["cuda"] >= 3


def _emulated_ex2_exp(x: torch.Tensor, ulps: float, gen: torch.Generator) -> torch.Tensor:
    """exp(x) as tl.exp on CUDA: t = fp32(x * fp32(log2 e)), then 2^t with a relative error of up
    to `ulps` x 2^-23 (ex2.approx), rounded to fp32, subnormals flushed."""
    t = (x.float() * torch.tensor(LOG2E, dtype=torch.float32)).double()
    noise = (torch.rand(x.shape, generator=gen, dtype=torch.float64) * 2 - 1) * ulps * ULP_MAX_REL
    y = (torch.exp2(t) * (1 + noise)).float()
    return torch.where(y.abs() < 2.0 ** -126, 0.0, y)


def test_emulated_ex2_within_model():
    gen = torch.Generator().manual_seed(0)
    x = -torch.rand(200_000, generator=gen, dtype=torch.float64).float().double() * 87
    got = _emulated_ex2_exp(x, 2.0, gen).double()
    rel = ((got - torch.exp(x)) / torch.exp(x)).abs()
    assert bool((rel <= _exp_rel(x, CUDA_MODEL)).all()), float((rel / _exp_rel(x, CUDA_MODEL)).max())


def _truncating_mma_dot(q: torch.Tensor, rows: torch.Tensor, k: int = 16) -> torch.Tensor:
    """[T, H, K] fp32 q.k as a tensor core may do it: exact products, each k-chunk summed exactly
    with the accumulator, the result truncated (rounded toward zero) to fp32 (Fasi et al. 2021)."""
    prod = q.double()[:, :, None, :] * rows.double()[:, None, :, :]        # exact
    D = prod.shape[-1]
    acc = torch.zeros(prod.shape[:-1], dtype=torch.float64)
    for start in range(0, D, k):
        exact = acc + prod[..., start:start + k].sum(-1)
        f = exact.float()                                                    # nearest
        over = f.double().abs() > exact.abs()                                # went away from 0
        f = torch.where(over, torch.nextafter(f, torch.zeros_like(f)), f)   # toward zero
        acc = f.double()
    return acc.float()


def _emulated_gpu_attention(x, recipe: AttnRecipe, gen: torch.Generator) -> torch.Tensor:
    """The tiled recipe with the emulated GPU steps: truncating MMA scores, tl.exp as ex2.approx
    (2 ulp) with FTZ, bf16 P by RNE, fp32 merges."""
    from kernelprop.golden.attention import gather_kv
    kv = gather_kv(x.ori_kv, x.ori_block_table, x.cmp_kv, x.cmp_block_table, x.sparse_indices,
                   x.seqused_kv, window=x.window, tokens_per_batch=x.tokens_per_batch)
    T, H, D = x.q.shape
    K = kv.rows.shape[1]
    rows = kv.rows.float()
    s = _truncating_mma_dot(x.q, kv.rows) * torch.tensor(D ** -0.5, dtype=torch.float32)
    M, L, O = torch.full((T, H), -math.inf), torch.zeros(T, H), torch.zeros(T, H, D)
    ex = lambda v: _emulated_ex2_exp(v, 2.0, gen)  # noqa: E731
    for start in range(0, K, recipe.tile):
        ok = kv.valid[:, None, start:start + recipe.tile]
        st = torch.where(ok, s[:, :, start:start + recipe.tile], -math.inf)
        live = ok.any(-1).expand(T, H)
        m0 = torch.where(live, st.amax(-1), 0.0)
        e = torch.where(ok, ex(st - m0[..., None]), 0.0)
        p = round_to_bf16(e, "rne")
        M_new = torch.where(live, torch.maximum(M, m0), M)
        a = torch.where(torch.isfinite(M), ex(M - M_new), 0.0)
        b = ex(m0 - M_new)
        L = torch.where(live, a * L + b * p.sum(-1), L)
        O = torch.where(live[..., None], a[..., None] * O + b[..., None] * (p @ rows[:, start:start + recipe.tile]), O)
        M = M_new
    seen = torch.isfinite(M)
    denom = L + ex(x.attn_sink.float()[None] - torch.where(seen, M, 0.0))
    return torch.where(seen[..., None], O / denom[..., None], 0.0)


@pytest.mark.parametrize("seed", range(6))
def test_emulated_gpu_attention_within_cuda_p1(seed):
    """An emulated H100 implementation (truncating k = 16 accumulation, ex2.approx, FTZ) passes P1
    under the CUDA model, at a small and at the reference head dim."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    D = (16, 64, 512)[seed % 3]
    case = AttnCase(seed=seed, batches=1, tokens_per_batch=1, heads=2, head_dim=D, page_size=64,
                    window=64, topk=96 if D < 512 else 576, max_cmp_len=640, min_used=64 + 640,
                    data=("normal", "large_logits", "uniform")[seed % 3],
                    sink=("finite", "large")[seed % 2])
    x = make_attn_inputs(case)
    recipe = AttnRecipe()
    trace = x.call(sparse_attention_trace, recipe=recipe)
    bound = attention_p1_bound(trace, x.q, x.attn_sink, recipe, backend=CUDA_MODEL)
    err = (_emulated_gpu_attention(x, recipe, gen).double() - trace.o.double()).abs()
    ratio = torch.where(bound > 0, err / bound, torch.where(err > 0, math.inf, 0.0))
    assert float(ratio.max()) <= 1, float(ratio.max())


def test_truncating_accumulation_error_within_cuda_dot_model():
    """The emulated truncating MMA dot stays within the CUDA model's score error allowance."""
    from kernelprop.golden.attention_bounds import _score_gap
    x = make_attn_inputs(AttnCase(seed=3, batches=2, tokens_per_batch=1, heads=4, head_dim=512,
                                  page_size=64, window=64, topk=64, max_cmp_len=128,
                                  min_used=64 + 128))
    trace = x.call(sparse_attention_trace, recipe=AttnRecipe())
    from kernelprop.golden.attention import gather_kv
    kv = gather_kv(x.ori_kv, x.ori_block_table, x.cmp_kv, x.cmp_block_table, x.sparse_indices,
                   x.seqused_kv, window=x.window, tokens_per_batch=x.tokens_per_batch)
    scale = 512 ** -0.5
    s_gpu = _truncating_mma_dot(x.q, kv.rows).double() * scale
    allowed = _score_gap(trace, x.q, scale, CUDA_MODEL)
    err = (s_gpu - trace.scores.double()).abs()
    valid = trace.valid[:, None, :].expand_as(err)
    assert bool((err[valid] <= allowed[valid]).all())
    assert float(U) > 0


def test_norm_p1_under_ftz_allows_flushed_tiny_rows_and_still_rejects_12bit_rsqrt():
    """RMSNorm on CUDA (ftz): an emulated implementation that flushes subnormal squares and
    outputs passes P1 on rows with subnormal squares (SPEC 5's failure, emulated), and the
    12-bit rsqrt is still caught at D = 8192 under the CUDA parameters."""
    from kernelprop.golden.inputs import NormCase, make_norm_inputs
    from kernelprop.golden.recipes import NormRecipe
    from kernelprop.golden.rmsnorm import rms_norm_golden, rms_norm_trace
    from kernelprop.properties.replays_norm import SUM_LAMBDA, V_MIN_BY_BACKEND, p1_bound
    recipe = NormRecipe()
    x = torch.randn(6, 64, generator=torch.Generator().manual_seed(1))
    x[:, :8] *= 2.0 ** -70                      # squares below 2^-126: flushed on CUDA
    x = (x * 2.0 ** -50).to(torch.bfloat16)     # v ~ 2^-100 >= the cuda domain 2^-112
    assert bool(((x.double() ** 2).mean(-1) >= V_MIN_BY_BACKEND["cuda"]).all())
    inputs = make_norm_inputs(NormCase(seed=0, rows=6, dim=64, weight=False)).replace(x=x, eps=0.0)
    xf = x.float()
    sq = xf * xf
    sq = torch.where(sq < 2.0 ** -126, 0.0, sq)                              # FTZ squares
    y = xf / torch.sqrt(sq.sum(-1, keepdim=True) / 64)
    y = torch.where((y.abs() < 2.0 ** -126) | (xf.abs() < 2.0 ** -126), 0.0, y)  # FTZ in / out
    trace = inputs.call(rms_norm_trace, recipe=recipe)
    bound = p1_bound(trace, inputs, recipe, INV_ULPS["cuda"], SUM_LAMBDA, ftz=True)
    err = (round_to_bf16(y, "rne").double() - trace.y.double()).abs()
    assert bool((err <= bound).all())
    cpu_bound = p1_bound(trace, inputs, recipe, INV_ULPS["cuda"], SUM_LAMBDA, ftz=False)
    assert not bool((err <= cpu_bound).all())   # the flushes are what the cuda model allows
    big = make_norm_inputs(NormCase(seed=1, rows=4, dim=8192, weight=True))
    trace = big.call(rms_norm_trace, recipe=recipe)
    bound = p1_bound(trace, big, recipe, INV_ULPS["cuda"], SUM_LAMBDA, ftz=True)
    bad = big.call(rms_norm_golden, recipe=NormRecipe(inv="rsqrt_approx", approx_bits=12))
    assert bool(((bad.double() - trace.y.double()).abs() > bound).any())
