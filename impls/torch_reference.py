"""An independent, correct torch implementation of both kernels, for `--impl` and the suite's tests.

It shares no code with golden/: scores come from fp32 matmuls (another summation order than the
golden's correctly rounded dots), exp is exp2(x * log2 e) as GPU kernels do, BF16 rounding of P
uses torch's own cast for nearest-even, and RMSNorm uses torch's fp32 reductions. Any property
that fails on it while passing on the kernels points at a bound or golden that is too tight.
"""
from __future__ import annotations

import math

import torch

from kernelprop.golden.recipes import UNSPLIT_FIELDS, AttnRecipe
from kernelprop.golden.rmsnorm_inputs import NormRecipe

LOG2E = 1.4426950408889634


def _to_bf16_grid(x: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "rne":
        return x.to(torch.bfloat16).float()
    bits = x.view(torch.int32)
    low = bits & 0xFFFF
    kept = bits - low                                  # toward zero (sign-magnitude)
    if mode == "rna":
        kept = kept + torch.where(low >= 0x8000, 0x10000, 0).to(torch.int32)
    return kept.view(torch.float32)


def sparse_decode_attention(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices,
                            seqused_kv, attn_sink, *, window, tokens_per_batch, softmax_scale=None,
                            recipe=None):
    recipe = recipe or AttnRecipe()
    if recipe.tiling != "positional":
        raise NotImplementedError("torch_reference implements positional tiling only")
    T, H, D = q.shape
    S, W, BS = tokens_per_batch, window, ori_kv.shape[1]
    scale = torch.tensor(D ** -0.5 if softmax_scale is None else softmax_scale, dtype=torch.float32)
    t = torch.arange(T, device=q.device)
    b = t // S
    used = seqused_kv.long()[b] - S + 1 + t % S
    win = torch.minimum(used, torch.full_like(used, W))
    cmpv = (used - win).clamp(min=0)
    r = sparse_indices.long()
    in_win = (r >= 0) & (r < win[:, None])
    in_cmp = (r >= W) & (r - W < cmpv[:, None])
    ori_rows = ori_kv.reshape(-1, D)
    cmp_rows = cmp_kv.reshape(-1, D)
    rw = torch.where(in_win, r, 0)
    rc = torch.where(in_cmp, r - W, 0)
    ori_page = ori_block_table.long()[b[:, None], rw // BS]
    cmp_page = cmp_block_table.long()[b[:, None], rc // BS]
    k_ori = ori_rows[torch.where(in_win, ori_page * BS + rw % BS, 0)]
    k_cmp = cmp_rows[torch.where(in_cmp, cmp_page * BS + rc % BS, 0)]
    keys = torch.where(in_win[..., None], k_ori, torch.where(in_cmp[..., None], k_cmp, 0)).float()
    valid = in_win | in_cmp
    keys = torch.where(valid[..., None], keys, 0.0)               # NaN rows never read
    m_run = torch.full((T, H), -math.inf, device=q.device)
    l_run = torch.zeros(T, H, device=q.device)
    o_run = torch.zeros(T, H, D, device=q.device)
    qf = q.float()
    tile = recipe.tile_for(r.shape[1])
    for start in range(0, r.shape[1], tile):
        k_t = keys[:, start:start + tile]                         # [T, n, D]
        ok = valid[:, None, start:start + tile]                   # [T, 1, n]
        s = torch.bmm(qf, k_t.transpose(1, 2)) * scale            # fp32 matmul
        s = s.masked_fill(~ok, -math.inf)
        m = s.max(-1).values
        live = torch.isfinite(m)
        m0 = torch.where(live, m, 0.0)
        e = torch.exp2((s - m0[..., None]) * LOG2E)
        p = _to_bf16_grid(e, recipe.rounding) if recipe.p_dtype == "bf16" else e
        if recipe.p_dtype == "bf16":
            o_t = torch.bmm(p.to(torch.bfloat16).float(), k_t)
        else:
            o_t = torch.bmm(p, k_t)
        l_t = (p if recipe.l_from == "rounded" else e).sum(-1)
        m_new = torch.where(live, torch.maximum(m_run, m0), m_run)
        a = torch.where(torch.isfinite(m_run), torch.exp2((m_run - m_new) * LOG2E), 0.0)
        bb = torch.exp2((m0 - m_new) * LOG2E)
        l_run = torch.where(live, a * l_run + bb * l_t, l_run)
        o_run = torch.where(live[..., None], a[..., None] * o_run + bb[..., None] * o_t, o_run)
        m_run = m_new
    seen = torch.isfinite(m_run)
    m0 = torch.where(seen, m_run, 0.0)
    denom = l_run + torch.exp2((attn_sink.float()[None] - m0) * LOG2E)
    o = torch.where(seen[..., None], o_run / denom[..., None], 0.0)
    return o.to(torch.bfloat16) if recipe.out_dtype == "bf16" else o


sparse_decode_attention.recipe = AttnRecipe()
sparse_decode_attention.accepts_recipe = UNSPLIT_FIELDS  # one pass: no split-KV


def rms_norm(x, weight=None, *, eps=1e-6, recipe=None):
    recipe = recipe or NormRecipe()
    if recipe.inv == "rsqrt_approx":
        raise NotImplementedError("torch_reference has no low-precision rsqrt")
    if recipe.compute_dtype == "promote":
        raise NotImplementedError("torch_reference has no bf16 tl.sum (compute_dtype 'promote')")
    out = torch.bfloat16 if recipe.output_dtype(x.dtype) == "bf16" else torch.float32
    narrow = recipe.compute_in(x.dtype) == "bf16"
    # C: one rounding of an fp32 result to the compute dtype (identity when it is fp32)
    C = (lambda t: _to_bf16_grid(t, recipe.rounding)) if narrow else (lambda t: t)  # noqa: E731
    xf = x.float()
    sq = C(xf * xf)
    if recipe.chunk is None:
        ss = sq.sum(-1)
    else:
        ss = torch.zeros(x.shape[:-1], device=x.device)
        for start in range(0, x.shape[-1], recipe.chunk):
            ss = ss + sq[..., start:start + recipe.chunk].sum(-1)
    eps_c = C(torch.tensor(float(eps), dtype=torch.float32, device=x.device))
    v = C(C(C(ss) / x.shape[-1]) + eps_c)
    inv = C(torch.rsqrt(v) if recipe.inv == "rsqrt" else 1.0 / torch.sqrt(v))
    y = C(xf * inv[..., None])
    if weight is not None:
        w = C(weight.float() + recipe.weight_offset)
        if recipe.round_before_weight and out == torch.bfloat16:
            y = _to_bf16_grid(y, recipe.rounding)
        y = C(y * w)
    if out == torch.float32:
        return y
    return _to_bf16_grid(y, recipe.rounding).to(torch.bfloat16)


rms_norm.recipe = NormRecipe()
rms_norm.accepts_recipe = True
