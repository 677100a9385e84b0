"""Error bounds for sparse attention, derived from the tiled golden's trace (docs/bounds.md).

All bounds are elementwise on o [T, H, D] and built by one propagation rule. Write w_j for the
merge weight exp(m_tile(j) - M) of row j (m_tile(j) = trace.tile_max: the max j's exp was taken
against, its tile's or, with p_max "running", the running max: docs/bounds.md#p-max), Lt = sum_j w_j l_j + sigma (sigma = exp(sink - M)),
N_d = sum_j w_j p_j k_jd, o_d = N_d / Lt. If p_j moves by dp_j, the l-sum by dl_j, every weight and
tile sum by a relative rho (merges, accumulation), and sigma by a relative rho_sigma, then to first
order
    |d o_d| <= (sum_j w_j dp_j |k_jd| + rho A_d + |o_d| dLt) / Lt,   A_d = sum_j w_j p_j |k_jd|,
    dLt = sum_j w_j dl_j + rho sum_j w_j l_j + rho_sigma sigma + 2u Lt,
and the second-order remainder is covered by dividing by (1 - dLt / Lt). Where a side's fp32
denominator can overflow (sink - M > ~88.7) that side returns exactly 0: the bound then also
allows the whole (tiny) output, A_d / Lt.

- P1 (implementation vs golden, same recipe): the tile maxima's score errors are charged centred
  per tile instead of inside rho (docs/bounds.md#p1-maxima: the final max's error cancels, each
  tile's scales its N_t and l_t together). p_j can move only where the golden's e_j is close
  enough to a rounding boundary that the two implementations' fp32 errors can put them on
  different sides; then it moves by exactly the gap between the two candidates, and only in the
  direction(s) its interval allows (`_interval_moves`, `_directed_flips`). Elsewhere the rounded P
  agree bit for bit and only fp32 noise is left. The score error that decides this comes from the
  implementation's declared or assumed accumulation model (`AttnBackend`, `MODELS`: worst case,
  Higham-Mary, random order, CUDA), docs/bounds.md#p1-model.
- P2 (golden vs fp64 truth): every p_j is off by its rounding (<= u_p e_j: u_p = 2^-8 for rne and
  rna, 2^-7 for rtz, 0 for fp32 P) plus the golden's fp32 errors.
- P3 (tile size / tiling invariance): |o_1 - o_2| <= P2(trace_1) + P2(trace_2).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional

import torch

from kernelprop.golden.attention import TiledTrace
from kernelprop.golden.attention_inputs import AttnRecipe
from kernelprop.golden.error_model import (BF16_ROUNDOFF, FP32_MAX, FP32_MIN_NORMAL,
                                           FP32_SUBNORMAL_ULP, FP32_ULP_REL, LOG2E_CONST_UNITS, LOG_ABS,
                                           LOG_REL, PTX_FIGURES, TENSOR_CORE_KINDS, TORCH_EXPF_REL, U_FP32,
                                           TensorCoreModel,
                                           gamma, probabilistic_gamma)
from kernelprop.golden.rounding import round_to_bf16



@dataclass(frozen=True)
class AttnBackend:
    """Error model of an implementation's fp32 steps (per side; see docs/bounds.md#p1).

    dot_depth:  additions on the longest path of its q.k sums (None: D - 1, any order). A declared
                accumulation shortens it: blocked sums of k products then k-block partials added
                left to right (tensor-core MMA, a K-split) have depth (k - 1) + (ceil(D / k) - 1).
    dot_unit:   relative error of one of those additions: u for IEEE round to nearest, 2u for
                truncating accumulation (tensor cores, Fasi et al. 2021).
    dot_lambda: None: worst-case score error gamma_depth sum|q k| (sound for every input and order).
                A number lambda: the probabilistic inner-product bound of Higham & Mary (2019),
                (exp(lambda sqrt(depth) unit + depth unit^2 / (1 - unit)) - 1) sum|q k|, which
                holds with probability >= 1 - 2 depth exp(-lambda^2 (1 - unit)^2 / 2) per dot when
                the rounding errors are independent and mean zero (`dot_failure_probability`).
    dot_order:  "any": the bounds above hold for every summation order. "random": the order is
                independent of how the data is arranged along D (the suite's generators draw the
                D coordinates i.i.d., so any fixed order is a uniformly random one) and the
                rounding errors are independent and mean zero; the score error is then
                sub-Gaussian with variance proxy unit^2 sum_k S_k^2 over its partial sums S_k,
                whose mean over orders is depth (s^2 / 3 + sum (q k)^2 / 6): ds <= dot_lambda x
                unit x sqrt of that (`dot_failure_probability`: 2 exp(-lambda^2 / 2) per dot).
    tile_depth: additions on the longest path of its per-tile sums (None: tile - 1, any order).
    exp_base:   relative error of its exp apart from argument rounding: 2^-21 = 8u covers every
                libm expf (<= 2 ulp from the correctly rounded result: 5u); CUDA's ex2.approx.f32
                is 2 ulp from the correctly rounded 2^t, 5u (PTX_FIGURES).
    exp_arg:    its exp(x) may round x * log2(e) first, a relative error of u |x| in the result.
    exp_arg_units: that argument error in units of u |x| (1.224 on CUDA: fp32(log2 e) is off by
                0.224u relative, LOG2E_CONST_UNITS).
    ftz:        subnormal fp32 results flush to zero (an exp or output instruction with .ftz): an
                e_j or an o_d below 2^-126 may be 0 on that side. Not on CUDA: tl.exp is ex2.approx.f32
                and the output division div.rn.f32, neither flushes (SPEC 5, the PTX audit).
    tensor_core: the q.k dots (and the bf16 P.V tile sums) run on tensor cores as block FMAs
                (golden.error_model.TensorCoreModel): the score error is its data-dependent bound
                on the exact products, the tile sums' its worst case relative to their |terms|,
                charged per tile (a kernel may feed the running output into the MMA).
    div_units:  relative error of its divisions in units of u: 1 for IEEE division (div.rn); 5 on
                CUDA, where a Triton `/` is div.full.f32 (2 ulp from the correctly rounded
                quotient): the output division, and one division per tile for kernels that
                normalize partial outputs (split-KV), each (div_units - 1) u more than the rule's u.
    """

    dot_depth: Optional[int] = None
    dot_unit: float = U_FP32
    dot_lambda: Optional[float] = None
    dot_order: str = "any"
    tile_depth: Optional[int] = None
    exp_base: float = 2.0 ** -21
    exp_arg: bool = True
    exp_arg_units: float = 1.0
    ftz: bool = False
    tensor_core: Optional[TensorCoreModel] = None
    div_units: float = 1.0

    def tile_rel(self, tile: int, tiles: torch.Tensor, p_dtype: str) -> torch.Tensor:
        """Relative error (to sum |p k|) of the P.V tile sums and their accumulation (an fp32 P
        is an IEEE fp32 dot, never a tensor-core one)."""
        if self.tensor_core is not None and p_dtype == "bf16":
            return tiles * self.tensor_core.sum_rel(tile)
        return torch.full_like(tiles, gamma(tile - 1 if self.tile_depth is None else self.tile_depth))

    def dot_rel(self, D: int) -> float:
        """Bound on |fl(q.k) - q.k| / sum|q k| for head dim D under this model."""
        depth = (D - 1) if self.dot_depth is None else self.dot_depth
        if depth <= 0:
            return 0.0
        if self.dot_lambda is None:
            return gamma(depth, self.dot_unit)
        return probabilistic_gamma(depth, self.dot_lambda, self.dot_unit)

    def dot_failure_probability(self, D: int) -> float:
        """Per dot: the chance the score model fails (0 for the worst-case model)."""
        depth = (D - 1) if self.dot_depth is None else self.dot_depth
        if self.dot_lambda is None or depth <= 0:
            return 0.0
        if self.dot_order == "random":
            return min(1.0, 2 * math.exp(-self.dot_lambda ** 2 / 2))
        return min(1.0, 2 * depth * math.exp(-(self.dot_lambda * (1 - self.dot_unit)) ** 2 / 2))

    def __post_init__(self) -> None:
        if self.dot_order not in ("any", "random"):
            raise ValueError(f"dot_order must be 'any' or 'random', got {self.dot_order!r}")
        if self.dot_order == "random" and self.dot_lambda is None:
            raise ValueError("dot_order 'random' needs dot_lambda (its tail parameter)")


# The score models (docs/bounds.md#p1-model). WORST_CASE: the deterministic gamma_{D-1} model
# (every input, every rounding error aligned). PROBABILISTIC: Higham & Mary at lambda = 10 (any
# summation order): a dot escapes it with probability <= 2 (D - 1) e^-50 < 2e-19. RANDOM_ORDER,
# P1's cpu default: the order is independent of the data's arrangement along D, lambda = 6: a dot
# escapes it with probability <= 2 e^-18 = 3.0e-8.
PROBABILISTIC = AttnBackend(dot_lambda=10.0)
WORST_CASE = AttnBackend()
RANDOM_ORDER = AttnBackend(dot_lambda=6.0, dot_order="random")

# CUDA (Triton on H100, sm_90a; docs/bounds.md#gpu-model, figures in golden.error_model.PTX_FIGURES):
# bf16 dots are wgmma k16 block FMAs (TensorCoreModel, 0 extra alignment bits: sound for every
# count a source reports); tl.exp = mul.rn.f32(x, fp32(log2 e)) then ex2.approx.f32 (no .ftz):
# 2.5 ulp = 5u from exact, plus the argument's (1 + 0.224)u |x| (the product's rounding and the
# constant's); nothing flushes (ex2.approx.f32 keeps subnormals, the output is div.rn.f32).
# At |x| = 30: 5u + 36.7u = 41.7u = 20.9 ulp: SPEC 5's measured 28 ulp is from fp64 in ulps of the
# result, up to 28 x 2^-23 relative at the bottom of a binade and 28 x 2^-24 at the top, so the
# measurement and the model agree only through that range (the model is the sourced figure).
CUDA_EXP_ARG_UNITS = (1 + LOG2E_CONST_UNITS) * (1 + 2.0 ** -20)
CUDA_MODEL = AttnBackend(tensor_core=TensorCoreModel(block=16, extra_bits=0),
                         exp_base=PTX_FIGURES["ex2.approx"].rel, exp_arg_units=CUDA_EXP_ARG_UNITS, ftz=False,
                         div_units=PTX_FIGURES["div.full"].rel / U_FP32)
MODELS = {"worst": WORST_CASE, "hm": PROBABILISTIC, "random": RANDOM_ORDER, "cuda": CUDA_MODEL}
# the model P1 uses per suite backend (kernelprop.core.backend names)
BACKEND_MODELS = {"cpu": "random", "cuda": "cuda"}


def exp_rel(x: torch.Tensor, backend: AttnBackend) -> torch.Tensor:
    return backend.exp_base + (backend.exp_arg_units * U_FP32 * x.abs() if backend.exp_arg else 0.0)


def _golden_exp_rel(x: torch.Tensor) -> torch.Tensor:
    return torch.full_like(x, TORCH_EXPF_REL)  # torch expf: 2 ulp from the correctly rounded (CUDA)


# absolute error of one exp whose result is subnormal (relative figures hold for normal results
# only): ex2.approx.f32 2.5 x 2^-149, torch's expf the same, both sides
EXP_SUBNORMAL_ABS = 2 * 2.5 * FP32_SUBNORMAL_ULP


@dataclass(frozen=True)
class Sensitivity:
    """Per-(t, h) quantities of the trace used by every bound (float64)."""

    w: torch.Tensor        # [T, H, K] merge weight of each row's tile, 0 where invalid
    abs_rows: torch.Tensor  # [T, K, D] |k|
    sigma: torch.Tensor    # [T, H] exp(sink - M) (0 for -inf sinks)
    arg_mag: torch.Tensor  # [T, H] largest |m_tile - M| over non-empty tiles (m_tile: tile_max)
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


@dataclass(frozen=True)
class BoundTerms:
    """[T, H, D] float64 terms of one propagated bound (`_propagate`); `total` is the bound.

    flips:       the P elements' rounding flips, each a discrete, exactly known move (bf16 P with
                 the directed rule; 0 where no P element is undecided)
    merges:      rho A_d / (Lt shrink): merge factors, tile sums (and, in P2, the maxima's
                 score errors)
    maxima:      P1: the tile maxima's score errors, centred per tile (docs/bounds.md#p1-maxima)
    denominator: |o_d| dLt / (Lt shrink): every way Lt moves (fp32 noise, and with l from the fp32
                 exp or without the directed rule the flips' share of L)
    output:      2u |o_d| (the final quotient, both sides) plus the overflow and empty-row rules
    total:       the bound, computed as before the split (bit for bit)
    undecided:   [T, H] how many P elements may round differently (0 for fp32 P)"""

    flips: torch.Tensor
    merges: torch.Tensor
    maxima: torch.Tensor
    denominator: torch.Tensor
    output: torch.Tensor
    total: torch.Tensor
    undecided: Optional[torch.Tensor] = None

    @property
    def continuous(self) -> torch.Tensor:
        """total - flips (>= 0): the part of the bound that is fp32 noise, not a discrete flip."""
        return (self.total - self.flips).clamp(min=0.0)


def _centred_tile_mass(trace: TiledTrace, w: torch.Tensor, l_terms: torch.Tensor) -> torch.Tensor:
    """[T, H, D] sum_t w_t |N_td - o_d l_t| over tiles t (tiling order: row j is in tile j // tile),
    N_td = sum_{j in t} p_j k_jd, l_t = sum_{j in t} l_j, o the golden's (signed) output. One
    tile at a time: memory O(T H D) beside the trace."""
    T, H, K = w.shape
    o = trace.o.double()
    total = torch.zeros_like(o)
    wp, wl = w * trace.p.double(), w * l_terms
    for start in range(0, K, max(trace.tile, 1)):
        end = start + max(trace.tile, 1)
        N = torch.einsum("thk,tkd->thd", wp[..., start:end], trace.rows[:, start:end].double())
        total += (N - o * wl[..., start:end].sum(-1)[..., None]).abs()
    return total


def _propagate(trace: TiledTrace, sens: Sensitivity, recipe: AttnRecipe, dp, dl, rho,
               rho_sigma, directed: Optional[torch.Tensor] = None,
               maxima: Optional[torch.Tensor] = None) -> BoundTerms:
    """The first-order rule of the module docstring; its terms, [T, H, D] float64 each.

    directed: the P flips' exact first-order effect max|sum_j dp_j w_j (k_jd - o_d)| (or with k_jd
    alone when L sums the fp32 exp), from `_directed_flips`; it then replaces the symmetric term
    sum_j w_j dp_j |k_jd| and, when L sums the same P, the flips' share of |o_d| dLt.
    maxima: [T, H] relative bound on exp(d m_t) - 1 for the tile maxima's score errors, charged
    centred per tile (docs/bounds.md#p1-maxima): maxima sum_t w_t |N_td - o_d l_t|, plus maxima
    (l_sum / Lt) times the rest of the bound for the golden's own distance from its exact ratio;
    rho and rho_sigma then carry no maxima term."""
    p = trace.p.double()
    l_terms = p if recipe.l_from == "rounded" else trace.e.double()
    w = sens.w
    o = trace.o.double().abs()
    finite_sigma = torch.isfinite(sens.sigma)
    Lt = torch.where(finite_sigma, trace.L.double() + sens.sigma, math.inf)
    mass = torch.einsum("thk,tkd->thd", w * p, sens.abs_rows)
    l_sum = (w * l_terms).sum(-1)
    flip_l = (w * dl).sum(-1)
    noise_Lt = rho * l_sum + rho_sigma * torch.where(finite_sigma, sens.sigma, 0.0) \
        + 2 * U_FP32 * trace.L.double()
    maxima = torch.zeros_like(l_sum) if maxima is None else maxima
    dLt = flip_l + noise_Lt                       # every way Lt can move: for the quotient's shrink
    shrink_Lt = dLt + maxima * (2 * l_sum + torch.where(finite_sigma, sens.sigma, 0.0))
    if directed is None:
        flips, dLt_o = torch.einsum("thk,tkd->thd", w * dp, sens.abs_rows), dLt
    else:
        flips = directed
        # centred on the golden's fp32 o = (O / denom)(1 + delta), |delta| <= u: 2^-20 covers it
        dLt_o = noise_Lt + 2.0 ** -20 * flip_l if recipe.l_from == "rounded" else dLt
    safe_Lt = torch.where(torch.isfinite(Lt) & (Lt > 0), Lt, 1.0)
    shrink = 1 - (shrink_Lt / safe_Lt).clamp(max=0.5)
    den = (safe_Lt * shrink)[..., None]
    centred = maxima[..., None] * _centred_tile_mass(trace, w, l_terms) if bool((maxima > 0).any()) \
        else torch.zeros_like(mass)
    bound = (flips + rho[..., None] * mass + centred + o * dLt_o[..., None]) / den
    bound = bound + 2 * U_FP32 * o
    # the centring uses the golden's fp32 o, whose distance from its exact ratio is within the rest
    # of the bound: maxima l_sum |o_g - o*| / (Lt shrink) more
    second = torch.where((maxima > 0)[..., None], bound * (maxima * l_sum)[..., None] / den, 0.0)
    bound = bound + second
    # fp32 overflow of L + exp(sink - M) (sink - M > ~88.7): that side returns exactly 0 while the
    # exact output is tiny but not 0, which no relative model covers. Wherever either side's
    # denominator can reach the fp32 maximum, allow the other side's whole magnitude: its exact
    # value is <= A_d / Lt, its own fp32 errors add the relative terms above (rho A_d, flips, the
    # 1/shrink factor), and its roundings in the subnormal range an absolute floor (`subnormal_floor`).
    may_overflow = trace.L.double() + sens.sigma * (1 + rho_sigma + maxima) >= FP32_MAX * (1 - FP32_ULP_REL)
    overflow_term = mass / den + subnormal_floor(mass)
    # Gradual underflow short of overflow (a large sink, exp(sink - M) ~ 1e35, over a small v
    # column: o = 6.1e-43 in the nightly's tc_adversarial data): a product or quotient landing
    # below 2^-126 loses up to 2^-150 absolute per side, which the relative terms miss; sums on the
    # 2^-149 grid are exact. Per side K_valid products p_j v_jd and two rescales per tile merge,
    # through 1/den; o's own operations and a subnormal fold factor are `subnormal_floor`
    # (docs/bounds.md#sink).
    ops = trace.valid.sum(-1).double()[:, None] + 2 * trace.tiles_used.double()
    underflow = (ops * FP32_SUBNORMAL_ULP)[..., None] / den + subnormal_floor(mass)
    overflow = torch.where(may_overflow[..., None], overflow_term, underflow)
    bound = bound + overflow
    empty = (~torch.isfinite(trace.M.double()) | ~torch.isfinite(Lt))[..., None]
    zero = lambda t: torch.where(empty, 0.0, t)  # noqa: E731
    return BoundTerms(flips=zero(flips / den), merges=zero(rho[..., None] * mass / den),
                      maxima=zero(centred / den + second), denominator=zero(o * dLt_o[..., None] / den),
                      output=zero(2 * U_FP32 * o + overflow), total=zero(bound))


def subnormal_floor(mass: torch.Tensor) -> torch.Tensor:
    """[T, H, D] absolute error an implementation may add where o is subnormal (docs/bounds.md#sink).

    Any fp32 result below 2^-126 lies on the 2^-149 grid, so each operation that lands there may
    lose up to one grid step (2^-149: nearest rounding loses half, an approximate exp or a
    division by reciprocal up to one). Allowed: 4 such steps on o itself (the final division or
    product, an exp(M - M') or sigmoid factor, the sink fold, the output), and a subnormal factor
    f = exp(M - max(M, sink)) applied to an unnormalized numerator O_d <= A_d (the logsumexp
    folds: o = O f / (L f + 1)) loses <= 2^-149 relative to 1, i.e. A_d 2^-149 absolute."""
    return 4 * FP32_SUBNORMAL_ULP + FP32_SUBNORMAL_ULP * mass


@dataclass(frozen=True)
class SplitStats:
    """Per-(t, h) float64 magnitudes of a split-KV trace's stage 2 (docs/bounds.md#split-kv)."""

    splits: torch.Tensor    # [T, H] non-empty splits merged
    lse_abs: torch.Tensor   # [T, H] max |lse_i|
    log_l: torch.Tensor     # [T, H] max |log L_i|
    lse_gap: torch.Tensor   # [T, H] max (X - lse_i), X = max lse_i


def split_stats(trace: TiledTrace) -> Optional[SplitStats]:
    """The stage-2 magnitudes of a split-KV trace (None without split)."""
    if trace.lse is None:
        return None
    lse = trace.lse.double()
    live = torch.isfinite(lse)
    X = torch.where(live, lse, -math.inf).amax(-1, keepdim=True)
    on = lambda t: torch.where(live, t, 0.0).amax(-1) if t.shape[-1] else lse.sum(-1) * 0  # noqa: E731
    return SplitStats(splits=live.sum(-1).double(), lse_abs=on(lse.abs()),
                      log_l=on(torch.log(torch.where(live, trace.split_L.double(), 1.0)).abs()),
                      lse_gap=on(X - torch.where(live, lse, 0.0)))


def split_rho(trace: TiledTrace, backend: Optional[AttnBackend]) -> torch.Tensor:
    """[T, H] relative error split-KV adds to every merge weight (docs/bounds.md#split-kv): 0
    without split. backend None: the golden's own (P2); else both sides of P1, the
    implementation's figures from `backend` and golden.error_model.
      lse_i = fl(M_i + fl(log L_i)): |d lse_i| <= LOG_ABS + LOG_REL |log L_i| + u |lse_i| per side,
        a relative error expm1(d) of w_i = exp(lse_i - X) (X itself cancels: it scales every
        w_i and the sink alike, as M does without split);
      w_i = exp(fl(lse_i - X)), possibly online (running max, each partial rescaled once per later
        split, the exponents telescoping as the tile merges do): per split the argument rounding
        u |lse_i - X| and the exp error of each side, plus 3 roundings (scale, add) per side;
      o_i = O_i / L_i: one division on each side (backend.div_units u on the implementation's,
        IEEE u on the golden's); the final quotient's excess over u is charged with the output
        division (attention_p1_bound)."""
    stats = split_stats(trace)
    if stats is None:
        return torch.zeros_like(trace.M, dtype=torch.float64)
    d_lse = LOG_ABS + LOG_REL * stats.log_l + U_FP32 * stats.lse_abs
    if backend is None:
        merges = stats.splits * (U_FP32 * stats.lse_gap + _golden_exp_rel(stats.lse_gap) + 3 * U_FP32)
        rho = merges + torch.expm1(d_lse) + 2 * U_FP32
    else:
        omega = 2 * U_FP32 * stats.lse_gap + exp_rel(stats.lse_gap, backend) + TORCH_EXPF_REL
        merges = stats.splits * (omega + 6 * U_FP32)
        rho = merges + torch.expm1(2 * d_lse) + backend.div_units * U_FP32 + U_FP32
    return torch.where(stats.splits > 0, rho, 0.0)


def score_gap(trace: TiledTrace, q: torch.Tensor, scale: float, backend: Optional[AttnBackend]):
    """[T, H, K] bound on |s_impl - s_golden| (backend given) or |s_golden - s_exact| (None)."""
    s = trace.scores.double().abs()
    if backend is None:  # golden: dot rounded once, * fp32(scale) rounded once, fp32(scale) itself
        return 3 * U_FP32 * s
    rest = (4 + (backend.exp_arg_units if backend.exp_arg else 0)) * U_FP32 * s
    D = q.shape[-1]
    if backend.tensor_core is not None:
        return _tensor_core_gap(q, trace.rows, backend.tensor_core) * scale + rest
    if backend.dot_order == "random":
        depth = (D - 1) if backend.dot_depth is None else backend.dot_depth
        sq = torch.einsum("thd,tkd->thk", q.double() ** 2, trace.rows.double() ** 2)
        raw = trace.scores.double() / scale                      # the dot, to fp32 accuracy
        spread = (depth * (raw * raw / 3 + sq / 6)).sqrt() * (1 + 2.0 ** -10)
        random = backend.dot_lambda * backend.dot_unit * spread
        # s^2 / 3 + sum x^2 / 6 <= (sum |x|)^2 / 2, so random <= lambda u sqrt(depth / 2) sum|x|,
        # below gamma_depth sum|x| once depth >= lambda^2 / 2: the min is needed only below that
        if depth < backend.dot_lambda ** 2 / 2 + 1:
            abs_dot = torch.einsum("thd,tkd->thk", q.double().abs(), trace.rows.double().abs())
            random = torch.minimum(random, gamma(depth, backend.dot_unit) * abs_dot)
        return random * scale + rest
    abs_dot = torch.einsum("thd,tkd->thk", q.double().abs(), trace.rows.double().abs()) * scale
    return backend.dot_rel(D) * abs_dot + rest


def _tensor_core_gap(q: torch.Tensor, rows: torch.Tensor, model: TensorCoreModel,
                     chunk_elems: int = 1 << 24) -> torch.Tensor:
    """[T, H, K] the tensor-core model's bound on |tc(q.k_j) - q.k_j| from the exact products,
    a few tokens at a time (memory O(chunk))."""
    T, H, D = q.shape
    K = rows.shape[1]
    out = torch.zeros(T, H, K, dtype=torch.float64, device=q.device)
    step = max(1, chunk_elems // max(H * K * D, 1))
    for start in range(0, T, step):
        prod = q[start:start + step].double()[:, :, None, :] * rows[start:start + step].double()[:, None, :, :]
        out[start:start + step] = model.dot_error(prod)
    return out


def _directed_flips(trace: TiledTrace, w: torch.Tensor, up: torch.Tensor, down: torch.Tensor,
                    centred: bool, chunk_elems: int = 1 << 22) -> torch.Tensor:
    """[T, H, D] max over flip patterns of |sum_j dp_j w_j c_jd|, dp_j in {-down_j, 0, +up_j},
    c_jd = k_jd - o_d (centred: L sums the same P, so a flip moves N and L together) or k_jd.

    Each undecided P element can move in the direction(s) its interval allows only, so the worst
    case takes, per output element, the larger of the all-positive and all-negative sums
    (docs/bounds.md#p1-directed). Only undecided (t, h, j) are visited, in chunks."""
    T, H, K = up.shape
    D = trace.rows.shape[-1]
    pos = torch.zeros(T * H, D, dtype=torch.float64, device=up.device)
    neg = torch.zeros_like(pos)
    t, h, j = ((up > 0) | (down > 0)).nonzero(as_tuple=True)
    o = trace.o.double().reshape(T * H, D)
    step = max(1, chunk_elems // max(D, 1))
    for start in range(0, t.numel(), step):
        tt, hh, jj = t[start:start + step], h[start:start + step], j[start:start + step]
        row = tt * H + hh
        c = trace.rows[tt, jj].double()                                 # [n, D]
        if centred:
            c = c - o[row]
        weight = w[tt, hh, jj][:, None]
        hi = (weight * up[tt, hh, jj][:, None]) * c                    # move up
        lo = -(weight * down[tt, hh, jj][:, None]) * c                 # move down
        pos.index_add_(0, row, torch.maximum(torch.maximum(hi, lo), torch.zeros_like(hi)))
        neg.index_add_(0, row, torch.maximum(torch.maximum(-hi, -lo), torch.zeros_like(hi)))
    return torch.maximum(pos, neg).reshape(T, H, D)


def _interval_moves(e: torch.Tensor, p: torch.Tensor, eta: torch.Tensor, mode: str):
    """(up, down) [T, H, K]: how far round(e') can lie above / below the golden's p for any
    e' in e (1 +- eta) (endpoints widened by one fp32 ulp for their own rounding)."""
    ed = e.double()
    hi = (ed + ed.abs() * eta).float()
    lo = (ed - ed.abs() * eta).float()
    hi = torch.nextafter(hi, torch.full_like(hi, float("inf")))
    lo = torch.nextafter(lo, torch.full_like(lo, -float("inf")))
    pd = p.double()
    up = (round_to_bf16(hi, mode).double() - pd).clamp(min=0)
    down = (pd - round_to_bf16(lo, mode).double()).clamp(min=0)
    return up, down


def attention_p1_bound(trace: TiledTrace, q, attn_sink, recipe: AttnRecipe, *,
                       softmax_scale: Optional[float] = None,
                       backend: AttnBackend = AttnBackend()) -> torch.Tensor:
    """[T, H, D] bound on |o_impl - o_golden| for an implementation of `recipe` whose fp32 steps
    obey `backend`. Tight: P moves only where its rounding is undecided."""
    return attention_p1_terms(trace, q, attn_sink, recipe, softmax_scale=softmax_scale,
                              backend=backend).total


def attention_p1_terms(trace: TiledTrace, q, attn_sink, recipe: AttnRecipe, *,
                       softmax_scale: Optional[float] = None,
                       backend: AttnBackend = AttnBackend()) -> BoundTerms:
    """The P1 bound split into its terms (`BoundTerms`: the discrete P flips, the fp32 noise)."""
    D = q.shape[-1]
    scale = D ** -0.5 if softmax_scale is None else float(softmax_scale)
    valid = trace.valid[:, None, :]
    ds = torch.where(valid, score_gap(trace, q, scale, backend), 0.0)     # [T, H, K]
    ds_max = ds.amax(-1) if ds.shape[-1] else ds.sum(-1)                   # [T, H]
    x = (trace.scores.double() - trace.tile_max.double()).abs()
    x = torch.where(valid, x, 0.0)
    dx = ds + ds_max[..., None] + 2 * U_FP32 * x
    eta = (dx + exp_rel(x, backend) + _golden_exp_rel(x)) * (1 + 2 * dx.clamp(max=0.5))
    e = trace.e.double()
    # a subnormal e_j: the exps' absolute errors in the subnormal range, as a relative widening
    eta = eta + torch.where(e > 0, EXP_SUBNORMAL_ABS / e.clamp(min=FP32_SUBNORMAL_ULP), 0.0) \
        * (e < FP32_MIN_NORMAL)
    sens = sensitivity(trace, attn_sink)
    directed = None
    if recipe.p_dtype == "bf16":
        up, down = _interval_moves(trace.e, trace.p, eta, recipe.rounding)
        if backend.ftz:  # a subnormal e_j (s_j - m < -87.3) may be 0 on that side: p_j drops
            tiny = trace.e.double() < FP32_MIN_NORMAL * (1 + 2 * eta)
            down = torch.where(tiny, torch.maximum(down, trace.p.double()), down)
        up, down = torch.where(valid, up, 0.0), torch.where(valid, down, 0.0)
        dp = torch.maximum(up, down)
        directed = _directed_flips(trace, sens.w, up, down, centred=recipe.l_from == "rounded")
    else:
        dp = eta * e + EXP_SUBNORMAL_ABS
    dl = dp if recipe.l_from == "rounded" else eta * e
    dp, dl = torch.where(valid, dp, 0.0), torch.where(valid, dl, 0.0)
    tiles = trace.tiles_used.double()
    # Merge factors: tile t's final weight is b_t times the later a's, exp(m_t - M_t') prod
    # exp(M_{i-1} - M_i): the exponents telescope to m_t - M on each side, so the score errors of
    # the maxima enter once (2 max ds), not once per merge; each factor adds only its own argument
    # rounding and exp error (docs/bounds.md#p1-telescoping).
    omega = 2 * U_FP32 * sens.arg_mag + exp_rel(sens.arg_mag, backend) + TORCH_EXPF_REL
    acc = backend.tile_rel(trace.tile, tiles, recipe.p_dtype) + 2 * U_FP32 \
        + (U_FP32 if recipe.p_dtype == "fp32" else 0.0)
    rho = tiles * (omega + (6 + backend.div_units - 1) * U_FP32) + acc + split_rho(trace, backend)
    rho_sigma = 2 * U_FP32 * sens.sink_arg + exp_rel(sens.sink_arg, backend) + TORCH_EXPF_REL
    # the maxima's score errors: the final max's cancels (sink included), each tile's scales its
    # N_t and l_t together by exp(d m_t), |d m_t| <= ds_max (docs/bounds.md#p1-maxima)
    maxima = ds_max * (1 + 2 * ds_max.clamp(max=0.5)) * (1 + 2.0 ** -20)
    terms = _propagate(trace, sens, recipe, dp, dl, rho, rho_sigma, directed, maxima)
    terms = replace(terms, undecided=(dp > 0).sum(-1) if directed is not None else torch.zeros_like(rho))
    if backend.div_units > 1:  # the implementation's output division beyond the rule's u
        extra = (backend.div_units - 1) * U_FP32 * trace.o.double().abs()
        terms = replace(terms, output=terms.output + extra, total=terms.total + extra)
    if backend.ftz:  # an o_d that may be subnormal may be flushed to 0 on that side
        o, bound = trace.o.double().abs(), terms.total
        flushed = torch.where(o - bound < FP32_MIN_NORMAL, o, 0.0)  # 0 stays 0 (empty, +inf sink)
        terms = replace(terms, output=terms.output + flushed, total=bound + flushed)
    return terms


def attention_p2_bound(trace: TiledTrace, attn_sink, recipe: AttnRecipe) -> torch.Tensor:
    """[T, H, D] analytic bound on |o_golden - o_fp64| (golden side only)."""
    valid = trace.valid[:, None, :]
    ds = torch.where(valid, score_gap(trace, None, 0.0, None), 0.0)
    ds_max = ds.amax(-1) if ds.shape[-1] else ds.sum(-1)
    x = torch.where(valid, (trace.scores.double() - trace.tile_max.double()).abs(), 0.0)
    dx = ds + ds_max[..., None] + U_FP32 * x
    eta = (dx + _golden_exp_rel(x)) * (1 + 2 * dx.clamp(max=0.5))
    e = trace.e.double()
    u_p = BF16_ROUNDOFF[recipe.rounding] if recipe.p_dtype == "bf16" else 0.0
    dp = torch.where(valid, (u_p + eta * (1 + u_p)) * e, 0.0)
    dl = dp if recipe.l_from == "rounded" else torch.where(valid, eta * e, 0.0)
    sens = sensitivity(trace, attn_sink)
    tiles = trace.tiles_used.double()
    omega = 2 * ds_max + U_FP32 * sens.arg_mag + TORCH_EXPF_REL
    rho = tiles * (omega + 3 * U_FP32) + 2 * U_FP32 + split_rho(trace, None)
    rho_sigma = ds_max + U_FP32 * sens.sink_arg + TORCH_EXPF_REL
    return _propagate(trace, sens, recipe, dp, dl, rho, rho_sigma).total + 2.0 ** -40 * trace.o.double().abs()


# %% the CUDA model a kernel's PTX calls for (kernelprop.core.ptx_audit counts its instructions)

def cuda_model_for_ptx(counts) -> "AttnBackend":
    """The AttnBackend for a kernel whose PTX has `counts` (instruction -> count, from
    kernelprop.core.ptx_audit.audit): the tensor-core score model when its dots are bf16 / fp16 MMAs (else the random-order fp32 model), flush to zero
    when any counted arithmetic flushes (ex2.approx.ftz, libdevice .ftz code), div.full's 5u where
    it divides with `/`; the exp figure of ex2.approx either way."""
    tc = any(s.split(" ")[0] in TENSOR_CORE_KINDS for s in counts)
    model = CUDA_MODEL if tc else replace(CUDA_MODEL, tensor_core=None, dot_lambda=RANDOM_ORDER.dot_lambda,
                                          dot_order="random")
    flushes = any(PTX_FIGURES[s].flushes for s in counts
                  if s in PTX_FIGURES and not s.startswith(("sqrt.", "rsqrt.")))
    divides = any(s.startswith("div.full") for s in counts)
    return replace(model, ftz=flushes, div_units=PTX_FIGURES["div.full"].rel / PTX_FIGURES["div.rn"].rel
                   if divides else 1.0)


def attention_ptx_model_line(counts) -> str:
    """One line: the CUDA figures P1 on a GPU must allow a kernel whose PTX has `counts`."""
    m = cuda_model_for_ptx(counts)
    dots = f"tensor-core block FMA (k{m.tensor_core.block})" if m.tensor_core else "fp32 dot (random order)"
    return (f"{dots}, exp {m.exp_base / 2.0 ** -24:g}u + {m.exp_arg_units:.3f}u|x|, ftz {m.ftz}, "
            f"divisions {m.div_units:g}u")
