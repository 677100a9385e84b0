"""Error bounds for sparse attention, derived from the tiled golden's trace (docs/bounds.md).

All bounds are elementwise on o [T, H, D] and built by one propagation rule. Write w_j for the
merge weight exp(m_tile(j) - M) of row j, Lt = sum_j w_j l_j + sigma (sigma = exp(sink - M)),
N_d = sum_j w_j p_j k_jd, o_d = N_d / Lt. If p_j moves by dp_j, the l-sum by dl_j, every weight and
tile sum by a relative rho (merges, accumulation), and sigma by a relative rho_sigma, then to first
order
    |d o_d| <= (sum_j w_j dp_j |k_jd| + rho A_d + |o_d| dLt) / Lt,   A_d = sum_j w_j p_j |k_jd|,
    dLt = sum_j w_j dl_j + rho sum_j w_j l_j + rho_sigma sigma + 2u Lt,
and the second-order remainder is covered by dividing by (1 - dLt / Lt). Where a side's fp32
denominator can overflow (sink - M > ~88.7) that side returns exactly 0: the bound then also
allows the whole (tiny) output, A_d / Lt.

- P1 (implementation vs golden, same recipe): p_j can move only where the golden's e_j is close
  enough to a rounding boundary that the two implementations' fp32 errors can put them on
  different sides; then it moves by exactly the gap between the two candidates
  (`rounding_interval_gap`). Elsewhere the rounded P agree bit for bit and only fp32 noise is left.
- P2 (golden vs fp64 truth): every p_j is off by its rounding (<= u_p e_j: u_p = 2^-8 for rne and
  rna, 2^-7 for rtz, 0 for fp32 P) plus the golden's fp32 errors.
- P3 (tile size / tiling invariance): |o_1 - o_2| <= P2(trace_1) + P2(trace_2).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from golden.attention import TiledTrace
from golden.recipes import AttnRecipe
from golden.rmsnorm import U_FP32 as U, gamma, rounding_interval_gap

FP32_MAX = torch.finfo(torch.float32).max
P_ROUNDOFF = {"rne": 2.0 ** -8, "rna": 2.0 ** -8, "rtz": 2.0 ** -7}


@dataclass(frozen=True)
class AttnBackend:
    """Error model of an implementation's fp32 steps (per side; see docs/bounds.md).

    dot_depth:  additions on the longest path of its q.k sums (None: D - 1, any order).
    tile_depth: additions on the longest path of its per-tile sums (None: tile - 1, any order).
    exp_base:   relative error of its exp apart from argument rounding: ex2.approx.f32 is within
                2^-22 (PTX ISA) plus the final rounding; 2^-21 covers it and every libm expf.
    exp_arg:    its exp(x) may round x * log2(e) first, a relative error of u |x| in the result.
    """

    dot_depth: Optional[int] = None
    tile_depth: Optional[int] = None
    exp_base: float = 2.0 ** -21
    exp_arg: bool = True


def _exp_rel(x: torch.Tensor, backend: AttnBackend) -> torch.Tensor:
    return backend.exp_base + (U * x.abs() if backend.exp_arg else 0.0)


def _golden_exp_rel(x: torch.Tensor) -> torch.Tensor:
    return torch.full_like(x, 2.0 ** -22)  # torch expf: <= 2 ulp on CPU (SLEEF) and CUDA


@dataclass(frozen=True)
class Sensitivity:
    """Per-(t, h) quantities of the trace used by every bound (float64)."""

    w: torch.Tensor        # [T, H, K] merge weight of each row's tile, 0 where invalid
    abs_rows: torch.Tensor  # [T, K, D] |k|
    sigma: torch.Tensor    # [T, H] exp(sink - M) (0 for -inf sinks)
    arg_mag: torch.Tensor  # [T, H] largest |m_tile - M| over non-empty tiles
    sink_arg: torch.Tensor  # [T, H] |sink - M| (0 where sigma is 0 or inf)


def sensitivity(trace: TiledTrace, attn_sink: torch.Tensor) -> Sensitivity:
    valid = trace.valid[:, None, :]
    M = trace.M.double()
    finite_M = torch.isfinite(M)
    M_safe = torch.where(finite_M, M, 0.0)
    w = torch.where(valid & finite_M[..., None],
                    torch.exp(trace.tile_max.double() - M_safe[..., None]), 0.0)
    gap = torch.where(valid, (trace.tile_max.double() - M_safe[..., None]).abs(), 0.0)
    sink = attn_sink.double()[None, :].expand_as(M)
    sink_arg = torch.where(torch.isfinite(sink) & finite_M, (sink - M_safe).abs(), 0.0)
    sigma = torch.where(finite_M, torch.exp(sink - M_safe), 0.0)
    return Sensitivity(w=w, abs_rows=trace.rows.double().abs(), sigma=sigma,
                       arg_mag=gap.amax(-1) if gap.shape[-1] else M_safe * 0, sink_arg=sink_arg)


def _propagate(trace: TiledTrace, sens: Sensitivity, recipe: AttnRecipe, dp, dl, rho,
               rho_sigma) -> torch.Tensor:
    """The first-order rule of the module docstring; returns [T, H, D] float64."""
    p = trace.p.double()
    l_terms = p if recipe.l_from == "rounded" else trace.e.double()
    w = sens.w
    o = trace.o.double().abs()
    finite_sigma = torch.isfinite(sens.sigma)
    Lt = torch.where(finite_sigma, trace.L.double() + sens.sigma, math.inf)
    flips = torch.einsum("thk,tkd->thd", w * dp, sens.abs_rows)
    mass = torch.einsum("thk,tkd->thd", w * p, sens.abs_rows)
    l_sum = (w * l_terms).sum(-1)
    dLt = (w * dl).sum(-1) + rho * l_sum \
        + rho_sigma * torch.where(finite_sigma, sens.sigma, 0.0) + 2 * U * trace.L.double()
    safe_Lt = torch.where(torch.isfinite(Lt) & (Lt > 0), Lt, 1.0)
    shrink = 1 - (dLt / safe_Lt).clamp(max=0.5)
    bound = (flips + rho[..., None] * mass + o * dLt[..., None]) / (safe_Lt * shrink)[..., None]
    bound = bound + 2 * U * o
    # fp32 overflow of L + exp(sink - M) (sink - M > ~88.7): that side returns exactly 0 while the
    # exact output is tiny but not 0, which no relative model covers. Wherever either side's
    # denominator can reach the fp32 maximum, allow the other side's whole magnitude: its exact
    # value is <= A_d / Lt, its own fp32 errors add the relative terms above (rho A_d, flips, the
    # 1/shrink factor), and its roundings in the subnormal range an absolute floor (`subnormal_floor`).
    may_overflow = trace.L.double() + sens.sigma * (1 + rho_sigma) >= FP32_MAX * (1 - 2.0 ** -23)
    overflow_term = mass / (safe_Lt * shrink)[..., None] + subnormal_floor(mass)
    bound = bound + torch.where(may_overflow[..., None], overflow_term, 0.0)
    empty = ~torch.isfinite(trace.M.double()) | ~torch.isfinite(Lt)
    return torch.where(empty[..., None], 0.0, bound)


SUBNORMAL_ULP = 2.0 ** -149  # spacing of fp32 numbers below 2^-126


def subnormal_floor(mass: torch.Tensor) -> torch.Tensor:
    """[T, H, D] absolute error an implementation may add where o is subnormal (docs/bounds.md#sink).

    Any fp32 result below 2^-126 lies on the 2^-149 grid, so each operation that lands there may
    lose up to one grid step (2^-149: nearest rounding loses half, an approximate exp or a
    division by reciprocal up to one). Allowed: 4 such steps on o itself (the final division or
    product, an exp(M - M') or sigmoid factor, the sink fold, the output), and a subnormal factor
    f = exp(M - max(M, sink)) applied to an unnormalized numerator O_d <= A_d (the logsumexp
    folds: o = O f / (L f + 1)) loses <= 2^-149 relative to 1, i.e. A_d 2^-149 absolute."""
    return 4 * SUBNORMAL_ULP + SUBNORMAL_ULP * mass


def _score_gap(trace: TiledTrace, q: torch.Tensor, scale: float, backend: Optional[AttnBackend]):
    """[T, H, K] bound on |s_impl - s_golden| (backend given) or |s_golden - s_exact| (None)."""
    s = trace.scores.double().abs()
    if backend is None:  # golden: dot rounded once, * fp32(scale) rounded once, fp32(scale) itself
        return 3 * U * s
    abs_dot = torch.einsum("thd,tkd->thk", q.double().abs(), trace.rows.double().abs()) * scale
    depth = (q.shape[-1] - 1) if backend.dot_depth is None else backend.dot_depth
    return gamma(depth) * abs_dot + (5 if backend.exp_arg else 4) * U * s


def attention_p1_bound(trace: TiledTrace, q, attn_sink, recipe: AttnRecipe, *,
                       softmax_scale: Optional[float] = None,
                       backend: AttnBackend = AttnBackend()) -> torch.Tensor:
    """[T, H, D] bound on |o_impl - o_golden| for an implementation of `recipe` whose fp32 steps
    obey `backend`. Tight: P moves only where its rounding is undecided."""
    D = q.shape[-1]
    scale = D ** -0.5 if softmax_scale is None else float(softmax_scale)
    valid = trace.valid[:, None, :]
    ds = torch.where(valid, _score_gap(trace, q, scale, backend), 0.0)     # [T, H, K]
    ds_max = ds.amax(-1) if ds.shape[-1] else ds.sum(-1)                   # [T, H]
    x = (trace.scores.double() - trace.tile_max.double()).abs()
    x = torch.where(valid, x, 0.0)
    dx = ds + ds_max[..., None] + 2 * U * x
    eta = (dx + _exp_rel(x, backend) + _golden_exp_rel(x)) * (1 + 2 * dx.clamp(max=0.5))
    e = trace.e.double()
    if recipe.p_dtype == "bf16":
        dp = rounding_interval_gap(trace.e, eta, recipe.rounding).double()
    else:
        dp = eta * e
    dl = dp if recipe.l_from == "rounded" else eta * e
    dp, dl = torch.where(valid, dp, 0.0), torch.where(valid, dl, 0.0)
    sens = sensitivity(trace, attn_sink)
    tiles = trace.tiles_used.double()
    omega = 2 * ds_max + 2 * U * sens.arg_mag + _exp_rel(sens.arg_mag, backend) + 2.0 ** -22
    tile_depth = trace.tile - 1 if backend.tile_depth is None else backend.tile_depth
    acc = gamma(tile_depth) + 2 * U + (U if recipe.p_dtype == "fp32" else 0.0)
    rho = tiles * (omega + 6 * U) + acc
    rho_sigma = ds_max + 2 * U * sens.sink_arg + _exp_rel(sens.sink_arg, backend) + 2.0 ** -22
    return _propagate(trace, sens, recipe, dp, dl, rho, rho_sigma)


def attention_p2_bound(trace: TiledTrace, attn_sink, recipe: AttnRecipe) -> torch.Tensor:
    """[T, H, D] analytic bound on |o_golden - o_fp64| (golden side only)."""
    valid = trace.valid[:, None, :]
    ds = torch.where(valid, _score_gap(trace, None, 0.0, None), 0.0)
    ds_max = ds.amax(-1) if ds.shape[-1] else ds.sum(-1)
    x = torch.where(valid, (trace.scores.double() - trace.tile_max.double()).abs(), 0.0)
    dx = ds + ds_max[..., None] + U * x
    eta = (dx + _golden_exp_rel(x)) * (1 + 2 * dx.clamp(max=0.5))
    e = trace.e.double()
    u_p = P_ROUNDOFF[recipe.rounding] if recipe.p_dtype == "bf16" else 0.0
    dp = torch.where(valid, (u_p + eta * (1 + u_p)) * e, 0.0)
    dl = dp if recipe.l_from == "rounded" else torch.where(valid, eta * e, 0.0)
    sens = sensitivity(trace, attn_sink)
    tiles = trace.tiles_used.double()
    omega = 2 * ds_max + U * sens.arg_mag + 2.0 ** -22
    rho = tiles * (omega + 3 * U) + 2 * U
    rho_sigma = ds_max + U * sens.sink_arg + 2.0 ** -22
    return _propagate(trace, sens, recipe, dp, dl, rho, rho_sigma) + 2.0 ** -40 * trace.o.double().abs()
