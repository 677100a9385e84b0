"""An emulated H100: torch implementations of the bundled sparse attention and RMSNorm that compute
as the bundled Triton kernels compile for sm_90a (docs/bounds.md#gpu-model, #ptx-audit; SPEC 5),
each approximate instruction at the worst its PTX figure allows. On the CPU, under
`--error-model cuda`, it is the stand-in for a first H100 run: the CUDA model must not raise a
false alarm on it (docs/measurements.md "GPU error model: emulated H100").

Per instruction (golden.error_model.PTX_FIGURES):
  bf16 tl.dot (q.k, P.V)   wgmma k16 block FMAs: `tc_dot_emulate`, 0 extra alignment bits
                           (knobs.h100_extra_bits; KERNELPROP_H100_EXTRA_BITS=3 for the other studied count)
  tl.exp(x)                mul.rn.f32(x, fp32(log2 e)) then ex2.approx.f32 (no .ftz): 2 ulp from
                           the correctly rounded 2^t, away from the exact value (ties: a side
                           taken from the argument's bits), never below 0, exact for +-inf
  1.0 / tl.sqrt(v)         sqrt.approx.ftz.f32 (the fp32 value farthest from exact within 2^-23,
                           subnormal v flushed to 0) then div.full.f32 (2 ulp from the correctly
                           rounded quotient, away from exact)
  tl.math.rsqrt(v)         rsqrt.approx.ftz.f32: farthest fp32 within 2^-22.9 of exact, v flushed
  div_rn, sqrt_rn, + - *   IEEE fp32 (torch's fp32 CPU arithmetic is correctly rounded), no FMA
                           (the bundled kernels compile with enable_fp_fusion=False)
  P, bf16 output           the recipe's bit rounding (golden.rounding); torch's RNE cast for a bf16 o
Reductions (tl.sum: l, the sum of squares) add in fp32 left to right: the longest chain (depth
n - 1) the models charge. fp32 P.V (an IEEE fp32 tl.dot) is a left-to-right fp32 FMA chain.
"""
from __future__ import annotations

import math

import torch

from kernelprop.core import knobs
from kernelprop.golden.attention import gather_kv
from kernelprop.golden.error_model import (FP32_MIN_NORMAL, LOG2E_FP32, PTX_FIGURES, TensorCoreModel,
                                           tc_dot_emulate)
from kernelprop.golden.attention_inputs import UNSPLIT_FIELDS, AttnRecipe
from kernelprop.golden.rmsnorm_inputs import NormRecipe
from kernelprop.golden.rounding import round_to_bf16
from kernelprop.kernels.rms_norm import INV_CODE, check_norm_args, rms_norm as _bundled_rms_norm
from kernelprop.kernels.sparse_attention import check_attention_args, sparse_decode_attention as _bundled_attention



def _tc_model() -> TensorCoreModel:
    """The emulated tensor core: 16-wide blocks, knobs.h100_extra_bits extra alignment bits."""
    return TensorCoreModel(block=16, extra_bits=knobs.h100_extra_bits.get())


_LOG2E = torch.tensor(LOG2E_FP32, dtype=torch.float32)
_FP32_MAX = torch.finfo(torch.float32).max


# %% instructions

def _tie_side(x: torch.Tensor) -> torch.Tensor:
    """+1 / -1 per element from the bits of fp32 x (deterministic: a rerun is bitwise equal)."""
    bits = x.contiguous().view(torch.int32).to(torch.int64)
    mixed = (bits * 0x9E3779B1) >> 13
    return torch.where((mixed & 1) == 1, 1.0, -1.0).to(torch.float64)


def _away(cr: torch.Tensor, exact: torch.Tensor, arg: torch.Tensor) -> torch.Tensor:
    """+1 / -1: the side of exact on which cr lies (cr == exact: from the argument's bits)."""
    d = cr.double() - exact
    return torch.where(d > 0, 1.0, torch.where(d < 0, -1.0, _tie_side(arg)))


def _step(y: torch.Tensor, side: torch.Tensor, ulps: int) -> torch.Tensor:
    """fp32 y moved `ulps` representable numbers to `side`, staying finite and >= 0 where y >= 0."""
    up = torch.full_like(y, math.inf)
    down = torch.full_like(y, -math.inf)
    out = y
    for _ in range(ulps):
        out = torch.where(side > 0, torch.nextafter(out, up), torch.nextafter(out, down))
    out = torch.where(out.abs() > _FP32_MAX, y, out)              # never round a finite to inf
    return torch.where((y >= 0) & (out < 0), torch.zeros_like(out), out)


def _farthest_within(exact: torch.Tensor, rel: float, side: torch.Tensor) -> torch.Tensor:
    """The fp32 value on `side` of exact (float64) farthest from it within relative `rel`."""
    y = (exact * (1 + side * rel)).float()
    over = (y.double() - exact).abs() > rel * exact.abs()
    return torch.where(over, torch.nextafter(y, exact.float()), y)


def ex2_approx(t: torch.Tensor) -> torch.Tensor:
    """ex2.approx.f32 (no .ftz): 2 ulp from the correctly rounded 2^t, away from the exact value.
    The correctly rounded value is float64 exp2 rounded to fp32 (off by one fp32 ulp only where 2^t
    lies within ~2^-52 relative of an fp32 midpoint)."""
    exact = torch.exp2(t.double())
    cr = exact.float()
    y = _step(cr, _away(cr, exact, t), 2)
    special = ~torch.isfinite(t) | ~torch.isfinite(cr)               # 2^-inf = 0, 2^inf = inf, NaN
    return torch.where(special, cr, y)


def tl_exp(x: torch.Tensor) -> torch.Tensor:
    """tl.exp on sm_90a: t = mul.rn.f32(x, 0f3FB8AA3B), then ex2.approx.f32(t)."""
    return ex2_approx(x.float() * _LOG2E)


def _flush(v: torch.Tensor) -> torch.Tensor:
    """.ftz on an input: a subnormal becomes 0 (sign kept)."""
    return torch.where(v.abs() < FP32_MIN_NORMAL, v * 0.0, v)


def sqrt_approx_ftz(v: torch.Tensor) -> torch.Tensor:
    """sqrt.approx.ftz.f32: relative 2^-23 from exact, away from it; subnormal v flushed."""
    v = _flush(v)
    exact = v.double().sqrt()
    y = _farthest_within(exact, PTX_FIGURES["sqrt.approx.ftz"].rel, _away(exact.float(), exact, v))
    return torch.where(torch.isfinite(exact) & (exact > 0), y, exact.float())


def rsqrt_approx_ftz(v: torch.Tensor) -> torch.Tensor:
    """rsqrt.approx.ftz.f32: relative 2^-22.9 from exact, away from it; subnormal v -> inf."""
    v = _flush(v)
    exact = 1 / v.double().sqrt()
    y = _farthest_within(exact, PTX_FIGURES["rsqrt.approx.ftz"].rel, _away(exact.float(), exact, v))
    return torch.where(torch.isfinite(exact) & (exact > 0), y, exact.float())


def div_full(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """div.full.f32: 2 ulp from the correctly rounded quotient, away from exact."""
    exact = a.double() / b.double()
    cr = exact.float()
    y = _step(cr, _away(cr, exact, b), 2)
    return torch.where(torch.isfinite(cr) & (cr != 0), y, cr)


def _seq_sum(x: torch.Tensor) -> torch.Tensor:
    """fp32 sum over the last dim, left to right (every addition rounded to fp32)."""
    acc = torch.zeros(x.shape[:-1], dtype=torch.float32, device=x.device)
    for i in range(x.shape[-1]):
        acc = acc + x[..., i]
    return acc


def _fp32_dot_chain(p: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """[T, H, D] IEEE fp32 P.V: acc = fma.rn(p_j, k_jd, acc) for j left to right (p fp32
    [T, H, n], rows [T, n, D]; p_j k_jd is exact in float64; the float64 sum may round before the
    fp32 rounding, at most 2^-29 of an fp32 ulp more than one fma)."""
    T, H, n = p.shape
    acc = torch.zeros(T, H, rows.shape[-1], dtype=torch.float32, device=p.device)
    for j in range(n):
        acc = (acc.double() + p[..., j, None].double() * rows[:, None, j, :].double()).float()
    return acc


# %% sparse attention

def sparse_decode_attention(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices,
                            seqused_kv, attn_sink, *, window, tokens_per_batch, softmax_scale=None,
                            recipe=None, check_indices=True):
    """kernels.sparse_attention.sparse_decode_attention as it computes on an H100 (module
    docstring): positional tiles, flat loop, O = a O + b (P.V from a zero accumulator)."""
    recipe = AttnRecipe() if recipe is None else recipe
    if not isinstance(recipe, AttnRecipe):
        raise TypeError(f"recipe must be an AttnRecipe or None, got {type(recipe).__name__}")
    if recipe.kv_splits is not None:
        raise NotImplementedError(f"recipe.kv_splits={recipe.kv_splits!r}: the emulated kernel runs one "
                                  "pass over the keys (no split-KV)")
    if recipe.tiling != "positional":
        raise NotImplementedError(f"recipe.tiling={recipe.tiling!r}: the emulated kernel tiles positionally")
    scale = check_attention_args(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices,
                                 seqused_kv, attn_sink, window=window, tokens_per_batch=tokens_per_batch,
                                 softmax_scale=softmax_scale, check_indices=check_indices)
    T, H, D = q.shape
    K = sparse_indices.shape[1]
    out = torch.float32 if recipe.out_dtype == "fp32" else torch.bfloat16
    if T == 0 or H == 0 or D == 0 or K == 0:
        return torch.zeros(T, H, D, dtype=out, device=q.device)
    kv = gather_kv(ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices, seqused_kv,
                   window=window, tokens_per_batch=tokens_per_batch)
    rows = torch.where(kv.valid[..., None], kv.rows, torch.zeros_like(kv.rows))   # [T, K, D] bf16
    raw = tc_dot_emulate(q[:, :, None, :], rows[:, None, :, :], _tc_model())      # [T, H, K] fp32
    s = torch.where(kv.valid[:, None, :], raw * torch.tensor(scale, dtype=torch.float32), -math.inf)
    neg_inf = torch.full((T, H), -math.inf)
    M, L, O = neg_inf, torch.zeros(T, H), torch.zeros(T, H, D)
    tile = recipe.tile_for(K)
    for start in range(0, K, tile):
        st = s[..., start:start + tile]
        m = st.amax(-1)
        e = tl_exp(st - torch.where(m > -math.inf, m, 0.0)[..., None])
        p = round_to_bf16(e, recipe.rounding) if recipe.p_dtype == "bf16" else e
        l = _seq_sum(p if recipe.l_from == "rounded" else e)
        M_new = torch.maximum(M, m)
        M_ref = torch.where(M_new > -math.inf, M_new, 0.0)
        alpha, beta = tl_exp(M - M_ref), tl_exp(m - M_ref)
        L = alpha * L + beta * l
        block = rows[:, start:start + tile]                                   # [T, n, D] bf16
        if recipe.p_dtype == "bf16":
            pv = tc_dot_emulate(p.bfloat16()[:, :, None, :], block.transpose(1, 2)[:, None], _tc_model())
        else:
            pv = _fp32_dot_chain(p, block)
        O = alpha[..., None] * O + beta[..., None] * pv
        M = M_new
    has_rows = M > -math.inf
    denom = L + tl_exp(attn_sink.float()[None, :] - torch.where(has_rows, M, 0.0))
    denom = torch.where(has_rows, denom, 1.0)
    o = torch.where(has_rows[..., None], O / denom[..., None], 0.0)            # div.rn
    return o.to(out)


sparse_decode_attention.recipe = AttnRecipe()
# every field but the split-KV ones (one pass over the keys); tiling "compacted" raises, as bundled
sparse_decode_attention.accepts_recipe = UNSPLIT_FIELDS
sparse_decode_attention.ptx = _bundled_attention.ptx   # the lowering it emulates


# %% RMSNorm

def _inv(v: torch.Tensor, inv: str) -> torch.Tensor:
    if inv == "rsqrt":
        return rsqrt_approx_ftz(v)
    if inv == "recip_sqrt":
        return div_full(torch.ones_like(v), sqrt_approx_ftz(v))
    return torch.ones_like(v) / torch.sqrt(v)                                  # sqrt.rn, div.rn


def rms_norm(x, weight=None, *, eps=1e-6, recipe=None):
    """kernels.rms_norm.rms_norm as it computes on an H100 (module docstring): fp32 squares, chunk
    partials left to right, v = div_rn(ss, D) + eps, INV per the recipe's lowering, (x inv) w;
    compute_dtype "input" with a bf16 x rounds each of those steps to bf16 (C), as the kernel does."""
    recipe = NormRecipe() if recipe is None else recipe
    if not isinstance(recipe, NormRecipe):
        raise TypeError(f"recipe must be a NormRecipe or None, got {type(recipe).__name__}")
    if recipe.inv not in INV_CODE:
        raise NotImplementedError(f"recipe.inv={recipe.inv!r}: the emulated kernel implements {tuple(INV_CODE)}")
    if recipe.compute_dtype == "promote":
        raise NotImplementedError("recipe.compute_dtype='promote' (a bf16 tl.sum of the squares): the "
                                  "emulated kernel, as the bundled one, sums in fp32")
    eps32 = check_norm_args(x, weight, eps)
    compute_bf16 = recipe.compute_in(x.dtype) == "bf16"
    c = (lambda t: round_to_bf16(t, recipe.rounding)) if compute_bf16 else (lambda t: t)  # noqa: E731
    D = x.shape[-1]
    out_bf16 = recipe.output_dtype(x.dtype) == "bf16"
    xf = x.reshape(-1, D).float()
    if xf.shape[0] == 0:
        return torch.empty(x.shape, dtype=torch.bfloat16 if out_bf16 else torch.float32, device=x.device)
    sq = c(xf * xf)
    chunk = D if recipe.chunk is None else min(recipe.chunk, D)
    ss = torch.zeros(xf.shape[0])
    for c0 in range(0, D, chunk):
        ss = ss + _seq_sum(sq[:, c0:c0 + chunk])
    ms = c(c(ss) / torch.tensor(float(D), dtype=torch.float32))
    v = c(ms + c(torch.tensor(eps32, dtype=torch.float32)))
    y = c(xf * c(_inv(v, recipe.inv))[:, None])
    if weight is not None:
        w = weight.float()
        if recipe.weight_offset:
            w = w + torch.tensor(recipe.weight_offset, dtype=torch.float32)
        w = c(w)
        if recipe.round_before_weight and out_bf16:
            y = round_to_bf16(y, recipe.rounding)
        y = c(y * w)
    if out_bf16:
        y = round_to_bf16(y, recipe.rounding).to(torch.bfloat16)
    return y.reshape(x.shape)


rms_norm.recipe = NormRecipe()
rms_norm.accepts_recipe = True   # every field; inv "rsqrt_approx" and compute "promote" raise, as bundled
rms_norm.ptx = _bundled_rms_norm.ptx                                      # the lowering it emulates
