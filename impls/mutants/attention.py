"""Planted-bug sparse decode attention: a correct base and one subclass per bug.

`SparseAttention` is impls/torch_reference.py's algorithm (fp32 bmm scores, exp as exp2(x log2 e),
positional tiles, online merge, sink in the denominator) split into the steps a kernel engineer
writes, plus the bundled wrapper's argument checks and "compacted" tiling, so that it takes every
recipe the suite draws. Each mutant overrides the one step its bug lives in and passes every
recipe field through untouched, bugs aside. Module-level instances are the `--impl` targets, e.g.
`--impl sparse_attention=impls/mutants/attention.py:p_rtz`; the registry with descriptions and
expected killers is impls/mutants/__init__.py.

Math of the base, token t (batch b = t // S, position s = t % S), head h, SPEC section 2:
    used = seqused[b] - S + 1 + s, valid r: 0 <= r < min(W, used) or 0 <= r - W < used - min(W, used)
    per tile: m = max s_j, e_j = exp(s_j - m), p_j = round(e_j), l = sum p_j | e_j, o_t = sum p_j k_j
    merge:    M' = max(M, m), a = exp(M - M'), b = exp(m - M'), L = a L + b l, O = a O + b o_t
    o = O / (L + exp(sink - M)), zeros for a token with no valid row.
"""
from __future__ import annotations

import math
import os

import torch

from kernelprop.golden.attention_inputs import UNSPLIT_FIELDS, AttnRecipe
from kernelprop.golden.rounding import round_to_bf16
from kernelprop.impls.mutants._args import check_recipe
from kernelprop.kernels.sparse_attention import check_attention_args as kernel_attention_args

LOG2E = 1.4426950408889634  # exp(x) = exp2(x * log2 e), as GPU kernels compute it


def check_attention_args(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices,
                         seqused_kv, attn_sink, *, window, tokens_per_batch, softmax_scale,
                         recipe) -> float:
    """Raise like kernels.sparse_decode_attention on bad input; return the fp32 softmax scale."""
    check_recipe(recipe, AttnRecipe)
    return kernel_attention_args(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table,
                                 sparse_indices, seqused_kv, attn_sink, window=window,
                                 tokens_per_batch=tokens_per_batch, softmax_scale=softmax_scale)


def exp_as_gpu(x: torch.Tensor) -> torch.Tensor:
    return torch.exp2(x * LOG2E)


class SparseAttention:
    """The correct base (a catalogue control: it must pass the whole suite)."""

    recipe = AttnRecipe()
    accepts_recipe = UNSPLIT_FIELDS   # one pass; SplitKVAttention below adds the split fields

    def __call__(self, q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices,
                 seqused_kv, attn_sink, *, window, tokens_per_batch, softmax_scale=None,
                 recipe=None):
        scale = check_attention_args(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table,
                                     sparse_indices, seqused_kv, attn_sink, window=window,
                                     tokens_per_batch=tokens_per_batch, softmax_scale=softmax_scale,
                                     recipe=recipe)
        recipe = self.effective_recipe(recipe)
        T = q.shape[0]
        S, W = tokens_per_batch, window
        b, s = self.token_coords(torch.arange(T, device=q.device), S, T // S)   # [T], [T]
        used = self.visible(seqused_kv.long()[b], S, s)                          # [T]
        win = used.clamp(max=W)
        cmpv = (used - win).clamp(min=0)
        r = self.indices(sparse_indices.long())                                  # [T, K]
        in_win, slot_w = self.window_slots(r, win[:, None])
        in_cmp, slot_c = self.cmp_slots(r, W, cmpv[:, None])
        k_ori = self.read(ori_kv, ori_block_table, b, slot_w, in_win)            # [T, K, D]
        k_cmp = self.read(cmp_kv, self.cmp_table(ori_block_table, cmp_block_table), b, slot_c,
                          in_cmp)
        valid = in_win | in_cmp
        keys = self.mask_keys(torch.where(in_win[..., None], k_ori, k_cmp), valid)
        if recipe.tiling == "compacted":  # valid rows first, in index order
            order = torch.sort((~valid).to(torch.int8), dim=1, stable=True).indices
            valid = valid.gather(1, order)
            keys = keys.gather(1, order[..., None].expand_as(keys))
        sink = attn_sink.float().to(q.device)
        return self.output(self.attend(q.float(), keys, valid, self.scale(scale, q.device), sink,
                                       recipe), recipe)

    # -- steps (each mutant overrides one) --------------------------------------------------

    def attend(self, q, keys, valid, scale, sink, recipe):
        """o [T, H, D] fp32 from the rows in tiling order: one online softmax, then the sink."""
        m, l, o = self.online_softmax(q, keys, valid, scale, sink, recipe)
        return self.normalize(o, l, m, sink)

    def effective_recipe(self, recipe):
        return self.recipe if recipe is None else recipe

    def scale(self, scale: float, device) -> torch.Tensor:
        return torch.tensor(scale, dtype=torch.float32, device=device)

    def token_coords(self, t, S, B):
        """(batch, position) of each token."""
        return t // S, t % S

    def visible(self, seqused_b, S, s):
        """Visible length of each token (MTP: token s of S sees S - 1 - s rows fewer)."""
        return seqused_b - S + 1 + s

    def indices(self, r):
        return r

    def window_slots(self, r, win):
        """(valid, slot) of window indices: 0 <= r < win_valid."""
        return (r >= 0) & (r < win), r

    def cmp_slots(self, r, W, cmpv):
        """(valid, slot) of compressed indices: W <= r, r - W < cmp_valid; slot r - W."""
        return (r >= W) & (r - W < cmpv), r - W

    def cmp_table(self, ori_block_table, cmp_block_table):
        return cmp_block_table

    def page(self, table, b, block, n_pages):
        """Page id of (batch, block column); invalid lanes read block 0."""
        return table.long()[b[:, None], block.clamp(0, table.shape[1] - 1)]

    def read(self, pool, table, b, slot, ok):
        """[T, K, D] fp32 rows; invalid lanes read row 0 of the pool (masked later)."""
        BS, D = pool.shape[1], pool.shape[2]
        if table.shape[1] == 0:
            return torch.zeros(*slot.shape, D, device=pool.device)
        slot = torch.where(ok, slot, 0)
        flat = torch.where(ok, self.page(table, b, slot // BS, pool.shape[0]) * BS + slot % BS, 0)
        return pool.reshape(-1, D)[flat].float()

    def mask_keys(self, keys, valid):
        """Zero the rows of invalid lanes (their memory is never used, even if it holds NaN)."""
        return torch.where(valid[..., None], keys, 0.0)

    def tile_bounds(self, K: int, tile: int):
        return [(start, min(start + tile, K)) for start in range(0, K, tile)]

    def scores(self, q, k_t, scale):
        return torch.bmm(q, k_t.transpose(1, 2)) * scale                        # [T, H, n]

    def tile_max(self, s, sink):
        """(max score, tile has a valid lane); the max is 0 for empty tiles (skipped)."""
        m = s.amax(-1)
        live = torch.isfinite(m)
        return torch.where(live, m, 0.0), live

    def p_max(self, recipe):
        """The max P is taken against (AttnRecipe.p_max)."""
        return recipe.p_max

    def round_p(self, e, recipe):
        return round_to_bf16(e, recipe.rounding) if recipe.p_dtype == "bf16" else e

    def tile_sum(self, p, e, recipe):
        return (p if recipe.l_from == "rounded" else e).sum(-1)

    def pv(self, p, k_t, recipe):
        return torch.bmm(p, k_t)                                                 # [T, H, D]

    def merge_factors(self, M, m, live):
        """(M', a, b): M' = max(M, m) where the tile is live, a = exp(M - M') (0 while M = -inf),
        b = exp(m - M')."""
        M_new = torch.where(live, torch.maximum(M, m), M)
        a = torch.where(torch.isfinite(M), exp_as_gpu(M - M_new), 0.0)
        return M_new, a, exp_as_gpu(m - M_new)

    def merge(self, M, L, O, m, live, l, o):
        M_new, a, b = self.merge_factors(M, m, live)
        L = torch.where(live, a * L + b * l, L)
        O = torch.where(live[..., None], a[..., None] * O + b[..., None] * o, O)
        return M_new, L, O

    def tile_parts(self, q, keys, valid, scale, sink, recipe):
        """Per tile, left to right: (max, has a valid lane, l, o_tile); untiled (tile None): one
        tile of every position. The max is the tile's, or with p_max "running" the running max."""
        K = keys.shape[1]
        running = torch.full(q.shape[:2], -math.inf, device=q.device)
        for start, stop in self.tile_bounds(K, max(K, 1) if recipe.tile is None else recipe.tile):
            k_t = keys[:, start:stop]                                            # [T, n, D]
            s = self.scores(q, k_t, scale).masked_fill(~valid[:, None, start:stop], -math.inf)
            m, live = self.tile_max(s, sink)
            if self.p_max(recipe) == "running":  # yield the running max: merge's b is exp(0) = 1
                running = torch.where(live, torch.maximum(running, m), running)
                m = torch.where(live, running, m)
            e = exp_as_gpu(s - m[..., None])
            p = self.round_p(e, recipe)
            yield m, live, self.tile_sum(p, e, recipe), self.pv(p, k_t, recipe)

    def merge_order(self, parts: list) -> list:
        return parts

    def online_softmax(self, q, keys, valid, scale, sink, recipe):
        T, H, D = q.shape
        M = torch.full((T, H), -math.inf, device=q.device)
        L = torch.zeros(T, H, device=q.device)
        O = torch.zeros(T, H, D, device=q.device)
        for part in self.merge_order(list(self.tile_parts(q, keys, valid, scale, sink, recipe))):
            M, L, O = self.merge(M, L, O, *part)
        return M, L, O

    def normalize(self, O, L, M, sink):
        seen = torch.isfinite(M)
        denom = L + exp_as_gpu(sink[None] - torch.where(seen, M, 0.0))
        return torch.where(seen[..., None], O / denom[..., None], 0.0)

    def output(self, o, recipe):
        """out_dtype "bf16": one nearest-even rounding of the fp32 o (torch's cast)."""
        return o.to(torch.bfloat16) if recipe.out_dtype == "bf16" else o


reference = SparseAttention()


# -- rounding of P ---------------------------------------------------------------------------

class PRoundTowardZero(SparseAttention):
    """Truncation whatever the recipe says (the Triton interpreter's fp32 -> bf16 cast, SPEC 5)."""

    def round_p(self, e, recipe):
        return round_to_bf16(e, "rtz") if recipe.p_dtype == "bf16" else e


class PRoundTiesAway(SparseAttention):
    """Ties away from zero where the recipe asks nearest-even (an NPU default); other modes kept."""

    def round_p(self, e, recipe):
        return super().round_p(e, recipe.replace(rounding="rna") if recipe.rounding == "rne" else recipe)


class PKeptInFp32(SparseAttention):
    def round_p(self, e, recipe):
        return e


class LFromUnrounded(SparseAttention):
    def tile_sum(self, p, e, recipe):
        return e.sum(-1)


class ScoresRoundedToBf16(SparseAttention):
    def scores(self, q, k_t, scale):
        return round_to_bf16(super().scores(q, k_t, scale), "rne")


class ScaleRoundedToBf16(SparseAttention):
    def scale(self, scale, device):
        return super().scale(scale, device).to(torch.bfloat16).float()


class PVAccumulatedInBf16(SparseAttention):
    def pv(self, p, k_t, recipe):
        acc = torch.zeros(p.shape[0], p.shape[1], k_t.shape[2], dtype=torch.bfloat16,
                          device=p.device)
        for j in range(p.shape[2]):
            acc = acc + (p[..., j, None] * k_t[:, None, j, :]).to(torch.bfloat16)
        return acc.float()


class RecipeIgnored(SparseAttention):
    def effective_recipe(self, recipe):
        return AttnRecipe()


# -- sink ------------------------------------------------------------------------------------

class SinkInTileMax(SparseAttention):
    def tile_max(self, s, sink):
        m, live = super().tile_max(s, sink)
        return torch.where(live, torch.maximum(m, sink[None]), m), live


class SinkIgnored(SparseAttention):
    def normalize(self, O, L, M, sink):
        return super().normalize(O, L, M, torch.full_like(sink, -math.inf))


class SinkWithoutMax(SparseAttention):
    def normalize(self, O, L, M, sink):
        seen = torch.isfinite(M)
        denom = L + exp_as_gpu(sink[None].expand_as(L))
        return torch.where(seen[..., None], O / denom[..., None], 0.0)


# -- visible window, indices, pages ----------------------------------------------------------

class VisibleOffByOne(SparseAttention):
    def visible(self, seqused_b, S, s):
        return seqused_b - S + s


class WindowInclusiveBound(SparseAttention):
    def window_slots(self, r, win):
        return (r >= 0) & (r <= win), r


class MtpOffsetIgnored(SparseAttention):
    def token_coords(self, t, S, B):
        return t // S, torch.full_like(t, S - 1)


class PadsReadAsRowZero(SparseAttention):
    def indices(self, r):
        return torch.where(r == -1, 0, r)


class PadsWrapToLastRow(SparseAttention):
    def window_slots(self, r, win):
        r = torch.where(r < 0, r + win, r)  # Python-style negative indexing of the window
        return (r >= 0) & (r < win), r


class DuplicatesCountedOnce(SparseAttention):
    def indices(self, r):
        K = r.shape[1]
        earlier = torch.ones(K, K, dtype=torch.bool, device=r.device).tril(-1)
        repeat = ((r[:, :, None] == r[:, None, :]) & earlier).any(-1)
        return torch.where(repeat, -1, r)


class CmpOffsetOffByOne(SparseAttention):
    def cmp_slots(self, r, W, cmpv):
        return (r >= W) & (r - W < cmpv), r - W + 1


class CmpOffsetMissing(SparseAttention):
    def cmp_slots(self, r, W, cmpv):
        return (r >= W) & (r - W < cmpv), r


class CmpThroughOriTable(SparseAttention):
    def cmp_table(self, ori_block_table, cmp_block_table):
        return ori_block_table

    def page(self, table, b, block, n_pages):
        return super().page(table, b, block, n_pages) % n_pages


class PageTableIgnored(SparseAttention):
    def page(self, table, b, block, n_pages):
        return (b[:, None] * table.shape[1] + block) % n_pages


class UnmaskedValueRows(SparseAttention):
    """Loads every lane's row at its unmasked address (clamped into the pool) and relies on P = 0
    for invalid lanes: 0 * NaN leaks the NaN of rows no valid index reaches."""

    def read(self, pool, table, b, slot, ok):
        BS, D = pool.shape[1], pool.shape[2]
        if table.shape[1] == 0:
            return torch.zeros(*slot.shape, D, device=pool.device)
        slot = slot.clamp(0, table.shape[1] * BS - 1)
        page = self.page(table, b, slot // BS, pool.shape[0]).clamp(0, pool.shape[0] - 1)
        return pool.reshape(-1, D)[page * BS + slot % BS].float()

    def mask_keys(self, keys, valid):
        return keys


class BatchFromModulo(SparseAttention):
    def token_coords(self, t, S, B):
        return t % B, t % S


# -- tiles and merges ------------------------------------------------------------------------

class PartialTileDropped(SparseAttention):
    def tile_bounds(self, K, tile):
        return [(start, start + tile) for start in range(0, K - tile + 1, tile)]


class EmptyTileNaN(SparseAttention):
    def tile_max(self, s, sink):
        m = s.amax(-1)
        return m, torch.ones_like(m, dtype=torch.bool)


class EmptyRowUnguarded(SparseAttention):
    def normalize(self, O, L, M, sink):
        return O / (L + exp_as_gpu(sink[None] - M))[..., None]


class MergeFactorsSwapped(SparseAttention):
    def merge_factors(self, M, m, live):
        M_new, a, b = super().merge_factors(M, m, live)
        return M_new, b, a


class OutputNotRescaled(SparseAttention):
    def merge(self, M, L, O, m, live, l, o):
        M_new, a, b = self.merge_factors(M, m, live)
        L = torch.where(live, a * L + b * l, L)
        O = torch.where(live[..., None], O + b[..., None] * o, O)
        return M_new, L, O


class MergeOrderNondeterministic(SparseAttention):
    """Split-K with atomics: tiles are merged in an order that changes from run to run. Exact in
    real arithmetic, so only the fp32 rounding of the merges differs between reruns."""

    def merge_order(self, parts):
        seed = int.from_bytes(os.urandom(4), "little")
        order = torch.randperm(len(parts), generator=torch.Generator().manual_seed(seed))
        return [parts[i] for i in order.tolist()]


class EmptyRowsUnwritten(SparseAttention):
    """Tokens without a valid key return early and never store: their output keeps what
    torch.empty gave, NaN under torch's fill-uninitialized-memory (deterministic) mode."""

    def normalize(self, O, L, M, sink):
        o = super().normalize(O, L, M, sink)
        return torch.where(torch.isfinite(M)[..., None], o, math.nan)


# -- real-shape bugs (issue 9): each needs a shape class to show --------------------------------
# A fixed-tile kernel (tile 64, no recipe keyword, so P3 cannot vary its tile) shows a merge bug
# only when >= 2 tiles hold rows and a later tile raises the running max: the multi_tile class.

class FixedTile64(SparseAttention):
    """The correct base with the default recipe only (tile 64, no `recipe` keyword accepted)."""

    accepts_recipe = False

    def __call__(self, *args, **kwargs):
        if kwargs.get("recipe") is not None:
            raise TypeError("this kernel takes no recipe keyword")
        return super().__call__(*args, **kwargs)


class FixedTileMaxNotRescaled(FixedTile64):
    """The running max is updated but O and L are not rescaled by exp(M - M')."""

    def merge_factors(self, M, m, live):
        M_new, _, b = super().merge_factors(M, m, live)
        return M_new, torch.ones_like(b), b                    # 1 * L and 1 * O are exact: no rescale


class FixedTileMergeSwapped(FixedTile64, MergeFactorsSwapped):
    """The first non-empty tile initializes the state (M, L, O = m, l, o_tile, as kernels that
    peel the first tile do); every later merge has its factors a and b swapped. Needs >= 2
    tiles with rows: with one tile it is the correct kernel."""

    def merge(self, M, L, O, m, live, l, o):
        first = live & ~torch.isfinite(M)
        M_s, L_s, O_s = super().merge(M, L, O, m, live, l, o)        # a and b swapped
        return (torch.where(first, m, M_s), torch.where(first, l, L_s),
                torch.where(first[..., None], o, O_s))


class FixedTileRescaleBf16(FixedTile64):
    """The merge factors a = exp(M - M'), b = exp(m - M') rounded to bf16 (a bf16 exp unit)."""

    def merge_factors(self, M, m, live):
        M_new, a, b = super().merge_factors(M, m, live)
        return M_new, round_to_bf16(a, "rne"), round_to_bf16(b, "rne")


class FixedTileSinkStaleMax(FixedTile64):
    """The sink term uses the first tile's max: o = O / (L + exp(sink - m_first))."""

    _stale = None  # the running max after the first tile that had rows, per (token, head)

    def online_softmax(self, q, keys, valid, scale, sink, recipe):
        self._stale = None
        return super().online_softmax(q, keys, valid, scale, sink, recipe)

    def merge(self, M, L, O, m, live, l, o):
        M, L, O = super().merge(M, L, O, m, live, l, o)
        first = self._stale
        self._stale = M.clone() if first is None else torch.where(torch.isfinite(first), first, M)
        return M, L, O

    def normalize(self, O, L, M, sink):
        stale = self._stale if self._stale is not None else M
        seen = torch.isfinite(M)
        stale = torch.where(torch.isfinite(stale), stale, M)
        denom = L + exp_as_gpu(sink[None] - torch.where(seen, stale, 0.0))
        return torch.where(seen[..., None], O / denom[..., None], 0.0)


HEAD_BLOCK = 16


class SecondHeadBlockQ(SparseAttention):
    """Heads of the second and later blocks of 16 read q without the block's head offset
    (q[t, h % 16]): a bug only for H > 16."""

    def online_softmax(self, q, keys, valid, scale, sink, recipe):
        H = q.shape[1]
        heads = torch.arange(H, device=q.device) % HEAD_BLOCK
        return super().online_softmax(q[:, heads], keys, valid, scale, sink, recipe)


class MtpDepthTwoOnly(SparseAttention):
    """Written for MTP depth <= 2: positions s >= 2 see the rows of position 1
    (used = seqused - S + 1 + min(s, 1)): a bug only for tokens_per_batch >= 3."""

    def visible(self, seqused_b, S, s):
        return seqused_b - S + 1 + s.clamp(max=1)


def _head_dim(args):
    """D of a well-formed q (else None: the base's argument checks then name the problem, so
    that P13 judges the checks, not this mutant's scale)."""
    q = args[0] if args else None
    ok = isinstance(q, torch.Tensor) and q.dim() == 3 and q.shape[-1] >= 1
    return int(q.shape[-1]) if ok else None


class DefaultScaleIntSqrt(SparseAttention):
    """Default softmax scale 1 / isqrt(D) (integer square root): wrong for D not a perfect
    square (every non-power-of-two D the suite draws, and D = 2^odd)."""

    def __call__(self, *args, softmax_scale=None, **kwargs):
        if softmax_scale is None and _head_dim(args) is not None:
            softmax_scale = 1.0 / math.isqrt(_head_dim(args))
        return super().__call__(*args, softmax_scale=softmax_scale, **kwargs)


class DefaultScalePaddedD(SparseAttention):
    """Default softmax scale from the padded BLOCK_D = next power of two >= D: wrong only for
    D not a power of two."""

    def __call__(self, *args, softmax_scale=None, **kwargs):
        if softmax_scale is None and _head_dim(args) is not None:
            softmax_scale = (1 << (_head_dim(args) - 1).bit_length()) ** -0.5
        return super().__call__(*args, softmax_scale=softmax_scale, **kwargs)


# -- split-KV decode (FlashDecoding: SGLang, vLLM) ------------------------------------------

class SplitKVAttention(SparseAttention):
    """The base with split-KV (AttnRecipe.kv_splits; a catalogue control): the compacted valid
    list cut into splits of cdiv(n, kv_splits) rounded up to split_align keys, each split's online
    softmax stored as o_i = O_i / L_i and lse_i = M_i + log(L_i), then merged in two passes:
    X = max lse_i, o = sum exp(lse_i - X) o_i / (sum exp(lse_i - X) + exp(sink - X)), skipping
    empty splits."""

    accepts_recipe = True

    def attend(self, q, keys, valid, scale, sink, recipe):
        if recipe.kv_splits is None:
            return super().attend(q, keys, valid, scale, sink, recipe)
        n = valid.sum(1)                                      # compacted: valid keys come first
        length = self.split_length(n, recipe)                 # [T]
        width = max(int(length.max()), 1)
        r = torch.arange(width, device=q.device)
        parts = []
        for i in range(recipe.kv_splits):
            pos = i * length[:, None] + r[None, :]                                   # [T, w]
            ok = (r[None, :] < length[:, None]) & (pos < n[:, None])
            k_i = keys.gather(1, pos.clamp(max=max(keys.shape[1] - 1, 0))[..., None]
                              .expand(-1, -1, keys.shape[2])) if keys.shape[1] else \
                torch.zeros(keys.shape[0], width, keys.shape[2], device=keys.device)
            k_i = torch.where(ok[..., None], k_i, 0.0)
            M, L, O = self.online_softmax(q, k_i, ok, scale, sink, recipe)
            parts.append(self.partial(M, L, O))
        return self.merge_splits(parts, sink)

    def split_length(self, n, recipe):
        """Keys per split of each token: cdiv(n, kv_splits) rounded up to split_align."""
        per = -(-n.clamp(min=1) // recipe.kv_splits)
        return -(-per // recipe.split_align) * recipe.split_align

    def partial(self, M, L, O):
        """Stage 1's stores (o_i, lse_i, split has keys); an empty split's o_i is 0 / 0."""
        return O / L[..., None], M + torch.log(L), torch.isfinite(M)

    def split_max(self, lse, live):
        """X [T, H]: the largest lse of a non-empty split (0 where none)."""
        X = torch.where(live, lse, -math.inf).amax(-1)
        return torch.where(torch.isfinite(X), X, 0.0)

    def split_weights(self, lse, live, X):
        return torch.where(live, exp_as_gpu(lse - X[..., None]), 0.0)

    def split_terms(self, o_i, w, live):
        """(sum w_i o_i, sum w_i) over the non-empty splits."""
        return (torch.where(live[..., None], w[..., None] * o_i, 0.0).sum(-2),
                torch.where(live, w, 0.0).sum(-1))

    def sink_term(self, sink, X):
        return exp_as_gpu(sink[None] - X)

    def merge_splits(self, parts, sink):
        o_i = torch.stack([p[0] for p in parts], -2)                    # [T, H, n, D]
        lse = torch.stack([p[1] for p in parts], -1)                    # [T, H, n]
        live = torch.stack([p[2] for p in parts], -1)
        X = self.split_max(lse, live)
        acc, total = self.split_terms(o_i, self.split_weights(lse, live, X), live)
        seen = live.any(-1)
        return torch.where(seen[..., None], acc / (total + self.sink_term(sink, X))[..., None], 0.0)


class SplitMergeSinkDropped(SplitKVAttention):
    """Stage 2 forgets the sink: o = sum w_i o_i / sum w_i."""

    def sink_term(self, sink, X):
        return torch.zeros_like(X)


class SplitMergeFirstMax(SplitKVAttention):
    """Stage 2 rescales by the first split's lse instead of the largest: exp(lse_i - lse_0)
    overflows (inf / inf = NaN, or a huge sink term) once another split's lse exceeds it by ~88."""

    def split_max(self, lse, live):
        return torch.where(live[..., 0], lse[..., 0], 0.0)


class SplitEmptyUnguarded(SplitKVAttention):
    """Stage 2 merges every split, empty ones too: their o_i = 0 / 0 = NaN times weight 0."""

    def split_terms(self, o_i, w, live):
        return (w[..., None] * o_i).sum(-2), w.sum(-1)


class SplitLengthUnaligned(SplitKVAttention):
    """Split length cdiv(n, kv_splits), not rounded up to split_align: other split boundaries,
    so other tiles and tile maxima than the recipe's."""

    def split_length(self, n, recipe):
        return -(-n.clamp(min=1) // recipe.kv_splits)


class SplitRunningMaxAsTile(SplitKVAttention):
    """P against the running max (FlashAttention-2, SGLang's decode kernels) whatever the recipe
    says: declared "tile", its bf16 P rounds other values once a later tile raises the max."""

    def p_max(self, recipe):
        return "running"


# -- benign variant (a control: NOT a bug) ---------------------------------------------------

class NegativeZeroEmptyRows(SparseAttention):
    """Writes -0.0 for tokens with no valid row: IEEE-equal to the exact zero SPEC 2 asks for."""

    def normalize(self, O, L, M, sink):
        o = super().normalize(O, L, M, sink)
        return torch.where(torch.isfinite(M)[..., None], o, -0.0)


p_rtz = PRoundTowardZero()
p_rna = PRoundTiesAway()
p_fp32 = PKeptInFp32()
l_unrounded = LFromUnrounded()
scores_bf16 = ScoresRoundedToBf16()
scale_bf16 = ScaleRoundedToBf16()
pv_bf16_acc = PVAccumulatedInBf16()
recipe_ignored = RecipeIgnored()
sink_in_max = SinkInTileMax()
sink_ignored = SinkIgnored()
sink_no_max = SinkWithoutMax()
visible_off_by_one = VisibleOffByOne()
window_le = WindowInclusiveBound()
mtp_offset_ignored = MtpOffsetIgnored()
pads_row0 = PadsReadAsRowZero()
pads_wrap = PadsWrapToLastRow()
dups_once = DuplicatesCountedOnce()
cmp_plus_one = CmpOffsetOffByOne()
cmp_no_offset = CmpOffsetMissing()
cmp_ori_table = CmpThroughOriTable()
page_table_ignored = PageTableIgnored()
unmasked_rows = UnmaskedValueRows()
batch_modulo = BatchFromModulo()
partial_tile_dropped = PartialTileDropped()
empty_tile_nan = EmptyTileNaN()
empty_row_unguarded = EmptyRowUnguarded()
merge_swapped = MergeFactorsSwapped()
o_not_rescaled = OutputNotRescaled()
merge_order_random = MergeOrderNondeterministic()
empty_rows_unwritten = EmptyRowsUnwritten()
negative_zero = NegativeZeroEmptyRows()
fixed_tile_64 = FixedTile64()
fixed64_max_not_rescaled = FixedTileMaxNotRescaled()
fixed64_merge_swapped = FixedTileMergeSwapped()
fixed64_rescale_bf16 = FixedTileRescaleBf16()
fixed64_sink_stale_max = FixedTileSinkStaleMax()
head_block2_q = SecondHeadBlockQ()
mtp_depth2_only = MtpDepthTwoOnly()
scale_isqrt = DefaultScaleIntSqrt()
scale_padded_d = DefaultScalePaddedD()
split_kv = SplitKVAttention()
split_sink_dropped = SplitMergeSinkDropped()
split_first_max = SplitMergeFirstMax()
split_empty_unguarded = SplitEmptyUnguarded()
split_unaligned = SplitLengthUnaligned()
split_running_max_as_tile = SplitRunningMaxAsTile()


# -- block tables as serving engines lay them out (shape class engine_tables) ------------------

class TableWidthAsStride(SparseAttention):
    """Row b of a block table read at b * width (the table's width taken as its row stride): right
    for a contiguous table, wrong rows for a table that is a row slice of a larger one."""

    def page(self, table, b, block, n_pages):
        dense = table.as_strided(table.shape, (table.shape[1], 1))
        return dense.long()[b[:, None], block.clamp(0, table.shape[1] - 1)]


class PaddingColumnRead(SparseAttention):
    """Prefetches the page of every column of its batch's table row, padding columns included:
    the ids a serving engine leaves there (-1, out of range) are dereferenced (an illegal address
    on a GPU; an index error here)."""

    def read(self, pool, table, b, slot, ok):
        if table.shape[1]:
            pool[table.long()[b.unique()]]  # every column's page, before any masking
        return super().read(pool, table, b, slot, ok)


# -- address arithmetic past 2^31 elements (shape class large_offsets) ---------------------------

class Int32PageOffset(SparseAttention):
    """The element offset page * page_stride + row * D formed in int32: it wraps once a page starts
    at or past 2^31 elements of the pool, and the wrapped (negative) offset addresses another row
    (here: counted from the pool's end, as a negative index does; on a GPU, memory before the
    pool). Right for every pool of at most 2^31 elements."""

    def read(self, pool, table, b, slot, ok):
        keys = super().read(pool, table, b, slot, ok)
        BS, D = pool.shape[1], pool.shape[2]
        if table.shape[1] == 0:
            return keys
        slot = torch.where(ok, slot, 0)
        page = torch.where(ok, self.page(table, b, slot // BS, pool.shape[0]), 0)
        offset = page.int() * int(pool.stride(0))               # int32: wraps past 2^31
        wrapped = ok & (offset.long() != page * pool.stride(0))
        if not bool(wrapped.any()):
            return keys
        # only a contiguous pool reaches 2^31 elements here (the large_offsets class)
        row = (offset.long() + (slot % BS) * D) // D             # negative: from the pool's end
        keys[wrapped] = pool.reshape(-1, D)[row[wrapped]].float()
        return keys


table_width_stride = TableWidthAsStride()
padding_column_read = PaddingColumnRead()
int32_page_offset = Int32PageOffset()


def _catalogue():
    """(MUTANTS, CONTROLS): the planted attention bugs and the correct controls (kp mutants)."""
    from kernelprop.impls.mutants import NO_ARG_CHECKS, Control, Mutant

    def _attn(fn, description, killers, equivalent=""):
        return Mutant(fn, "sparse_attention", f"{ATTN}:{fn}", description, killers, equivalent)

    mutants = [
        # rounding and precision of the softmax
        _attn("p_rtz", "P rounded toward zero whatever recipe.rounding says", ("P1", "P2")),
        _attn("p_rna", "P rounded ties-away where the recipe asks nearest-even", (),
              equivalent="e lands exactly on a bf16 tie only by fp32 exp error, and any correct exp "
                         "may round it either way, so P1's sound bound must allow both candidates"),
        _attn("p_fp32", "P kept in fp32 when recipe.p_dtype is bf16", ("P1",)),
        _attn("l_unrounded", "L sums the fp32 exp when recipe.l_from is rounded", ("P1",)),
        _attn("scores_bf16", "scores q.k rounded to bf16 before the softmax (bf16 dot output)",
              ("P1", "P2")),
        _attn("scale_bf16", "softmax_scale cast to bf16", ("P1", "P2")),
        _attn("pv_bf16_acc", "P.V accumulated in bf16", ("P1", "P2")),
        _attn("recipe_ignored", "recipe keyword accepted but the default recipe always used",
              ("P1", "P2")),
        # sink
        _attn("sink_in_max", "sink logit included in every tile's max", ("P1", "P6")),
        _attn("sink_ignored", "sink left out of the denominator", ("P1", "P6")),
        _attn("sink_no_max", "denominator adds exp(sink), not exp(sink - M)", ("P1", "P6")),
        # visible window, indices, pages
        _attn("visible_off_by_one", "used = seqused - S + s (the + 1 dropped)", ("P1",)),
        _attn("window_le", "window index valid for r <= win_valid, not r < win_valid",
              ("P1", "P10")),
        _attn("mtp_offset_ignored", "every token sees seqused rows (position s ignored)", ("P1",)),
        _attn("pads_row0", "-1 pads read as window row 0", ("P1", "P5")),
        _attn("pads_wrap", "negative indices wrap to the window's last rows (Python indexing)",
              ("P1", "P5")),
        _attn("dups_once", "a duplicated index counted once", ("P1", "P5")),
        _attn("cmp_plus_one", "compressed slot r - W + 1", ("P1", "P10")),
        _attn("cmp_no_offset", "compressed slot r (the - W dropped)", ("P1",)),
        _attn("cmp_ori_table", "compressed rows looked up through ori_block_table", ("P1", "P8")),
        _attn("page_table_ignored", "page = batch * blocks + r // BS (identity page table assumed)",
              ("P1", "P8")),
        _attn("unmasked_rows", "rows of invalid lanes loaded unmasked, P masked after: 0 * NaN leaks",
              ("P1", "P10")),
        _attn("batch_modulo", "token's batch b = t % B instead of t // S", ("P1",)),
        # tiles and merges
        _attn("partial_tile_dropped", "last tile skipped when K % tile != 0", ("P1", "P3")),
        _attn("empty_tile_nan", "all-masked tile not skipped: exp(-inf - -inf) = NaN",
              ("P1", "P5", "P7")),
        _attn("empty_row_unguarded", "no guard for rows without valid keys: NaN when sink is -inf",
              ("P7",)),
        _attn("merge_swapped", "merge factors a and b swapped", ("P1", "P3")),
        _attn("o_not_rescaled", "O not multiplied by a when the running max grows", ("P1", "P3")),
        _attn("merge_order_random", "tiles merged in a run-dependent order (split-K with atomics)",
              ("P11",)),
        _attn("empty_rows_unwritten", "tokens without a valid key never stored (NaN from torch.empty)",
              ("P7",)),
        # real shapes (issue 9): each needs a shape class of properties/strategies.py to show
        _attn("fixed64_max_not_rescaled", "fixed tile 64 (no recipe keyword): O and L not rescaled "
              "when a later tile raises the running max", ("P1",)),
        _attn("fixed64_merge_swapped", "fixed tile 64: first tile peeled, later merges with factors "
              "a and b swapped", ("P1",)),
        _attn("fixed64_rescale_bf16", "fixed tile 64: merge factors a, b rounded to bf16", ("P1",)),
        _attn("fixed64_sink_stale_max", "fixed tile 64: sink term exp(sink - m) with the first "
              "tile's max, not the final M", ("P1", "P6")),
        _attn("head_block2_q", "heads >= 16 read q[t, h % 16] (head offset of the second head "
              "block dropped)", ("P1",)),
        _attn("mtp_depth2_only", "positions s >= 2 see the rows of position 1 (kernel written for "
              "MTP depth <= 2)", ("P1",)),
        _attn("scale_isqrt", "default softmax scale 1 / isqrt(D)", ("P1", "P2")),
        _attn("scale_padded_d", "default softmax scale from the padded BLOCK_D = next_pow2(D)",
              ("P1", "P2")),
        # split-KV decode (AttnRecipe.kv_splits; drawn only for implementations that vary it)
        _attn("split_sink_dropped", "split-KV merge leaves the sink out of the denominator",
              ("P1", "P6")),
        _attn("split_first_max", "split-KV merge rescales by the first split's lse, not the largest "
              "(overflow once another split's lse exceeds it by ~88)", ("P1", "P6")),
        _attn("split_empty_unguarded", "split-KV merge does not skip empty splits: 0 * (0 / 0) = NaN",
              ("P1",)),
        _attn("split_unaligned", "split length cdiv(n, kv_splits) not rounded up to split_align",
              ("P1",)),
        _attn("split_running_max_as_tile", "P taken against the running max (p_max running) while "
              "the recipe says the tile max", ("P1",)),
        _attn("table_width_stride", "block-table row b read at b * width (width taken as the row "
              "stride of a table that is a row slice of a larger one)", ("P1", "P8", "P10")),
        _attn("padding_column_read", "pages of every block-table column prefetched, padding columns "
              "(-1, out-of-range ids) included", ("P1", "P8", "P10")),
        _attn("int32_page_offset", "pool element offset page * page_stride + row * D formed in int32, "
              "wrapping for a page at or past 2^31 elements", ("P1",)),
    ]
    controls = [
        Control("bundled_attention", "sparse_attention", "kernelprop.kernels:sparse_decode_attention",
                "the bundled Triton kernel"),
        Control("torch_reference_attention", "sparse_attention",
                "impls/torch_reference.py:sparse_decode_attention", "independent torch implementation",
                exempt=(("P13", NO_ARG_CHECKS),)),
        Control("catalogue_base_attention", "sparse_attention", f"{ATTN}:reference",
                "the mutants' common base, no bug"),
        Control("negative_zero", "sparse_attention", f"{ATTN}:negative_zero",
                "benign: -0.0 for tokens with no valid key (IEEE-equal to the exact zero)"),
        Control("fixed_tile_64", "sparse_attention", f"{ATTN}:fixed_tile_64",
                "the base with a fixed tile of 64 and no recipe keyword (the fixed64_* mutants' base)"),
        Control("split_kv", "sparse_attention", f"{ATTN}:split_kv",
                "the base with split-KV (the split_* mutants' base; two-pass merge)"),
        Control("split_kv_reference", "sparse_attention", "impls/split_kv_reference.py:sparse_decode_attention",
                "independent split-KV implementation (SGLang's structure, online merge)"),
    ]
    return mutants, controls


ATTN = "impls/mutants/attention.py"
MUTANTS, CONTROLS = _catalogue()
