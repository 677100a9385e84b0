"""Sparse attention's values (SPEC sections 2 and 6): its recipe `AttnRecipe`, the domain an
implementation may declare `AttnDomain`, the frozen case `AttnCase` (with seed) and the kernel's
arguments `AttnInputs`, built by `make_attn_inputs(case)` from the case's seed in a handful of
vectorized torch calls, never element by element.

Generators are adversarial in the FlashMLA way: permuted page tables, unused pages, pads and
out-of-range indices, and optionally NaN in every pool row no valid index reaches and strided
(non-contiguous) views.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, replace
from typing import Optional

import torch

from kernelprop.golden.attention_classes import ATTN_CLASSES
from kernelprop.golden.domain import DomainValue, choice, kinds, least, most, sizes
from kernelprop.golden.rounding import ROUNDINGS
from kernelprop.golden.sampling import LARGE_OFFSET, TC_ADVERSARIAL, data_values, strided_view
from kernelprop.golden.values import CaseValue, TensorArgs

DATA_KINDS = ("normal", "uniform", "heavy", "large_logits", "near_ties")
# Data kinds drawn only by their shape class (properties/attention_strategies.py), never by "plain":
# "huge_negative": every valid score of a token lies below -5e4 (the finite "-inf" sentinel of
# some kernels, flashinfer #4450), spread by thousands (the softmax is nearly one-hot).
EXTREME_DATA_KINDS = ("huge_negative",)
FINITE_SENTINEL = -5e4
ALL_DATA_KINDS = DATA_KINDS + (TC_ADVERSARIAL,) + EXTREME_DATA_KINDS
SINK_KINDS = ("finite", "zero", "large", "neg_inf", "pos_inf")
# The reference decode shape (SPEC section 2): DeepSeek-V4's per-batch dims
REFERENCE = dict(tokens_per_batch=2, heads=64, head_dim=512, page_size=128, window=128, topk=512)


@dataclass(frozen=True)
class AttnRecipe:
    """Numerics of the tiled online-softmax sparse attention.

    tile:     rows per softmax tile (any positive int; need not divide K or be a power of two).
    tiling:   "positional": tiles over index positions, invalid lanes masked;
              "compacted": tiles over the list of valid indices in index order.
    p_dtype:  "bf16": exp weights P are rounded to BF16 before P.V; "fp32": kept in fp32.
    l_from:   "rounded": the denominator sums the (rounded) P; "unrounded": it sums fp32 exp.
    rounding: fp32 -> bf16 rounding of P: "rne" nearest-even, "rtz" toward zero, "rna" ties away.
    out_dtype: dtype of o: "fp32", or "bf16" = nearest-even rounding of the fp32 o (production
              kernels write bf16).
    tile None: untiled, one tile spanning all K index positions (a plain softmax over all rows);
              `tile_for(K)` gives the tile length in effect for K index positions.
    kv_splits: None: no split (one pass over the keys). n: split-KV decode (FlashDecoding; SGLang,
              vLLM): a token's n_valid valid keys, in index order (the compacted list: needs
              tiling "compacted"), are cut into contiguous splits of `split_len(n_valid)` keys
              (the last one shorter; splits past the end are empty). Each non-empty split i runs
              the tiled softmax above from its own first key (tiles restart at the split) and
              writes, in fp32, o_i = O_i / L_i and lse_i = M_i + log(L_i). Stage 2 merges the
              non-empty splits: X = max lse_i, w_i = exp(lse_i - X),
              o = (sum_i w_i o_i) / (sum_i w_i + exp(sink - X)). Empty splits contribute nothing
              (never a NaN); a token with no valid key gives zeros.
    split_align: split length = cdiv(n_valid, kv_splits) rounded up to a multiple of split_align
              (SGLang: kv_splits 8, split_align 32; vLLM: split_align 1, kv_splits from its
              heuristic: declare a callable recipe, SPEC section 6). Ignored without kv_splits.
    p_max:    the max P is taken against. "tile": p_j = exp(s_j - m_t), m_t the max of j's tile,
              merged with a = exp(M - M'), b = exp(m_t - M'), M' = max(M, m_t).
              "running" (FlashAttention-2; SGLang's decode kernels): p_j = exp(s_j - M'), the
              running max including this tile, so O = a O + P.V and L = a L + l_t (l_t the tile's
              sum as l_from says; b = 1, never computed). The two agree when a pass (or split) is one tile.
    """

    tile: Optional[int] = 64
    tiling: str = "positional"
    p_dtype: str = "bf16"
    l_from: str = "rounded"
    rounding: str = "rne"
    out_dtype: str = "fp32"
    kv_splits: Optional[int] = None
    split_align: int = 1
    p_max: str = "tile"

    def __post_init__(self) -> None:
        if self.tile is not None and (isinstance(self.tile, bool) or not isinstance(self.tile, int)
                                      or self.tile < 1):
            raise ValueError(f"tile must be a positive int or None (untiled), got {self.tile!r}")
        choice("tiling", self.tiling, ("positional", "compacted"))
        choice("p_dtype", self.p_dtype, ("bf16", "fp32"))
        choice("l_from", self.l_from, ("rounded", "unrounded"))
        choice("rounding", self.rounding, ROUNDINGS)
        choice("out_dtype", self.out_dtype, ("fp32", "bf16"))
        choice("p_max", self.p_max, ("tile", "running"))
        if self.kv_splits is not None and (isinstance(self.kv_splits, bool)
                                           or not isinstance(self.kv_splits, int)
                                           or self.kv_splits < 1):
            raise ValueError(f"kv_splits must be None (no split) or a positive int, "
                             f"got {self.kv_splits!r}")
        if isinstance(self.split_align, bool) or not isinstance(self.split_align, int) \
                or self.split_align < 1:
            raise ValueError(f"split_align must be a positive int, got {self.split_align!r}")
        if self.kv_splits is not None and self.tiling != "compacted":
            raise ValueError("kv_splits needs tiling='compacted' (splits cut the list of valid "
                             f"keys), got tiling={self.tiling!r}")

    def split_len(self, n_valid: int) -> int:
        """Keys per split for a token with n_valid valid keys: cdiv(n_valid, kv_splits) rounded
        up to a multiple of split_align (>= 1; n_valid itself when not split)."""
        n_valid = max(int(n_valid), 1)
        if self.kv_splits is None:
            return n_valid
        per = -(-n_valid // self.kv_splits)
        return -(-per // self.split_align) * self.split_align

    def tile_for(self, K: int) -> int:
        """Rows per tile in effect for K index positions: min(tile, K), K when untiled (>= 1).
        A tile longer than K is one tile, so bounds that depend on the tile length use this."""
        K = max(int(K), 1)
        return K if self.tile is None else min(self.tile, K)

    def with_tiling(self, tiling: str) -> "AttnRecipe":
        """This recipe with `tiling`; a split recipe keeps "compacted" (its splits cut the valid
        list, so the tiling of the index positions is not a choice there)."""
        return self if self.kv_splits is not None else self.replace(tiling=tiling)

    def replace(self, **changes) -> "AttnRecipe":
        return dataclasses.replace(self, **changes)  # re-runs __post_init__ validation


SPLIT_FIELDS = ("kv_splits", "split_align")
# the fields a one-pass tile-max kernel (no split-KV, P against the tile max) can vary: its
# `accepts_recipe`
UNSPLIT_FIELDS = tuple(f.name for f in dataclasses.fields(AttnRecipe)
                       if f.name not in SPLIT_FIELDS + ("p_max",))


SINK_VALUE_KINDS = {"neg_inf": lambda v: v == -math.inf, "pos_inf": lambda v: v == math.inf,
                    "zero": lambda v: v == 0.0, "large": lambda v: math.isfinite(v) and abs(v) > 30,
                    "finite": lambda v: math.isfinite(v) and abs(v) <= 30}


@dataclass(frozen=True)
class AttnDomain(DomainValue):
    """Sparse-attention inputs an implementation supports.

    sinks:              sink kinds it handles, among SINK_KINDS ("finite": |sink|
                        <= 30, "zero", "large": |sink| > 30, "neg_inf", "pos_inf"); None: all.
    head_dims:          supported head dims D; None: any.
    max_heads:          most heads H; None: any.
    max_tokens_per_batch: most tokens per batch S (MTP depth); None: any.
    max_indices:        most index positions K per token; None: any.
    min_valid_keys:     every token has at least this many valid keys (serving engines never
                        send an empty decode row; SGLang and vLLM return NaN there); None: a token
                        may have none. P7 (empty rows) is then skipped with that reason, and every
                        drawn case is fitted so that no property sees a token below it.
    max_pool_elements:  the largest KV pool (elements) it can take without holding it whole in
                        memory (e.g. an adapter that copies the pools into one buffer); at or
                        below 2^31 the large_offsets class (pages past 2^31 elements of a lazily
                        allocated pool) lies outside the domain. None: any.
    """

    sinks: Optional[tuple] = kinds(SINK_KINDS)
    head_dims: Optional[tuple] = sizes()
    max_heads: Optional[int] = most()
    max_tokens_per_batch: Optional[int] = most()
    max_indices: Optional[int] = most()
    min_valid_keys: Optional[int] = least()
    max_pool_elements: Optional[int] = most()

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.min_valid_keys is not None and self.max_indices is not None
                and self.min_valid_keys > self.max_indices):
            raise ValueError(f"min_valid_keys={self.min_valid_keys} exceeds max_indices="
                             f"{self.max_indices}: no token could have that many valid keys")

    def admits(self, shape_class: str) -> bool:
        """Whether the feature that defines `shape_class` (ATTN_CLASSES) lies in the domain."""
        dims = self.head_dims
        return {
            "many_heads": self.max_heads is None or self.max_heads > 16,
            "mtp_depth": self.max_tokens_per_batch is None or self.max_tokens_per_batch >= 3,
            "npow2_default_scale": dims is None or any(d & (d - 1) for d in dims),
            "large_logits_sink": self.allows_sink("large"),
            "multi_tile": self.max_indices is None or self.max_indices >= 2,
            "large_offsets": self.max_pool_elements is None or self.max_pool_elements > LARGE_OFFSET,
            "reference": (dims is None or REFERENCE["head_dim"] in dims)
            and (self.max_heads is None or self.max_heads >= REFERENCE["heads"])
            and (self.max_indices is None
                 or self.max_indices >= REFERENCE["window"] + REFERENCE["topk"]),
        }.get(shape_class, True)

    def empty_rows_reason(self) -> Optional[str]:
        """Why tokens without a valid key (P7) lie outside the domain, or None."""
        if self.min_valid_keys is None:
            return None
        return (f"the implementation declares {self.describe()}: every token has at least "
                f"{self.min_valid_keys} valid key(s), so tokens without one (P7) lie outside "
                f"its domain")

    def allows_sink(self, kind: str) -> bool:
        return self.sinks is None or kind in self.sinks

    def allows_sink_value(self, value: float) -> bool:
        """Whether one per-head sink value lies in a declared sink kind."""
        if self.sinks is None:
            return True
        return any(SINK_VALUE_KINDS[k](float(value)) for k in self.sinks)

    def fit(self, case):
        """The drawn AttnCase mapped into the domain (same seed; sizes clamped, head dim and sink
        kind replaced by an allowed one chosen from the case's own fields)."""
        changes = {}
        if self.head_dims is not None and case.head_dim not in self.head_dims:
            changes["head_dim"] = self.head_dims[case.head_dim % len(self.head_dims)]
        if self.max_heads is not None and case.heads > self.max_heads:
            changes["heads"] = self.max_heads
        if self.max_tokens_per_batch is not None and case.tokens_per_batch > self.max_tokens_per_batch:
            changes["tokens_per_batch"] = self.max_tokens_per_batch
        if self.sinks is not None and case.sink not in self.sinks:
            changes["sink"] = self.sinks[SINK_KINDS.index(case.sink) % len(self.sinks)]
        if self.max_indices is not None and case.num_indices > self.max_indices:
            window = min(case.window, self.max_indices)
            topk = min(case.topk, self.max_indices - window)
            changes.update(window=window, topk=topk,
                           extra=min(case.extra, self.max_indices - window - topk))
        if self.max_pool_elements is not None and case.large_offsets \
                and self.max_pool_elements <= LARGE_OFFSET:
            changes["large_offsets"] = False
        if self.min_valid_keys is not None:
            changes.update(self._fit_valid_keys(case.replace(**changes)))
        return case.replace(**changes) if changes else case

    def _fit_valid_keys(self, case) -> dict:
        """Changes that give every token >= min_valid_keys valid keys: each token sees at least
        that many rows (seqused_kv >= S - 1 + n, the compressed cache long enough to hold what
        the window does not), K >= n index positions, and the generator repairs rows that pads,
        out-of-range values or duplicates left short (AttnCase.min_valid_keys)."""
        n = self.min_valid_keys
        S, W = case.tokens_per_batch, case.window
        min_used = max(case.min_used, S - 1 + n)
        changes = dict(min_valid_keys=n, min_used=min_used,
                       max_cmp_len=max(case.max_cmp_len, min_used - W))
        if case.num_indices < n:
            changes["topk"] = case.topk + n - case.num_indices
        return changes


@dataclass(frozen=True)
class AttnCase(CaseValue):
    """One sparse-attention example. All tensors follow from these fields and `seed`."""

    seed: int = 0
    batches: int = 2
    tokens_per_batch: int = 2
    heads: int = 3
    head_dim: int = 40
    page_size: int = 8
    window: int = 16
    topk: int = 24                  # compressed indices per token (K = window + topk + extra)
    extra: int = 0                  # extra index positions (filled with pads / junk)
    max_cmp_len: int = 48           # compressed cache length upper bound per batch
    min_used: int = 1               # seqused_kv lower bound (MTP: the first token sees used - S + 1)
    pad_prob: float = 0.0           # chance an index is replaced by -1
    oob_prob: float = 0.0           # chance an index is replaced by an out-of-range value
    dup_prob: float = 0.0           # chance an index is replaced by a copy of another in its row
    shuffle: bool = False           # permute each token's indices
    spare_pages: int = 1            # unused pages in each pool
    data: str = "normal"
    sink: str = "finite"
    softmax_scale: Optional[float] = None
    nan_unused: bool = True         # NaN in pool rows that no valid index reaches
    strided: bool = False           # q and pools as non-contiguous views (last dim stride 1)
    engine_tables: bool = False     # block tables as serving engines lay them out (engine_block_tables)
    large_offsets: bool = False     # cmp pages past 2^31 elements of a lazily allocated pool
    device: str = "cpu"
    min_valid_keys: int = 0         # rows left with fewer valid indices get window slots (needs
                                    # min_used >= S - 1 + min_valid_keys: AttnDomain.fit sets it)

    def __post_init__(self) -> None:
        for name in ("batches", "tokens_per_batch", "heads", "head_dim", "page_size", "window"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("topk", "extra", "max_cmp_len", "spare_pages", "min_valid_keys"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.data not in ALL_DATA_KINDS:
            raise ValueError(f"data must be one of {ALL_DATA_KINDS}, got {self.data!r}")
        if self.sink not in SINK_KINDS:
            raise ValueError(f"sink must be one of {SINK_KINDS}, got {self.sink!r}")
        if self.min_valid_keys and (self.min_used < self.tokens_per_batch - 1 + self.min_valid_keys
                                    or self.num_indices < self.min_valid_keys):
            raise ValueError(f"min_valid_keys={self.min_valid_keys} needs min_used >= "
                             f"tokens_per_batch - 1 + min_valid_keys and at least that many index "
                             f"positions, got min_used={self.min_used}, K={self.num_indices}")

    @property
    def tokens(self) -> int:
        return self.batches * self.tokens_per_batch

    @property
    def num_indices(self) -> int:
        return self.window + self.topk + self.extra

    def shape(self) -> "AttnShape":
        return AttnShape(tokens=self.tokens, heads=self.heads, head_dim=self.head_dim,
                         num_indices=self.num_indices, tokens_per_batch=self.tokens_per_batch,
                         page_size=self.page_size)

    def size(self) -> tuple[Optional[int], str]:
        """(T*K index slots, 'T=.. H=.. D=.. K=..') for the kill matrix."""
        T, K = self.tokens, self.num_indices
        return T * K, f"T={T} H={self.heads} D={self.head_dim} K={K}"


@dataclass(frozen=True)
class AttnShape:
    """What a shape-dependent recipe (SPEC section 6: `recipe` a callable) is given: the sizes of
    one example, from its case (`AttnCase.shape()`) or its tensors (`AttnInputs.shape()`)."""

    tokens: int             # T
    heads: int              # H
    head_dim: int           # D
    num_indices: int        # K, index positions per token
    tokens_per_batch: int   # S
    page_size: int          # BS


@dataclass(frozen=True)
class AttnInputs(TensorArgs):
    """The kernel's arguments (SPEC section 6) as one value."""

    q: torch.Tensor
    ori_kv: torch.Tensor
    ori_block_table: torch.Tensor
    cmp_kv: torch.Tensor
    cmp_block_table: torch.Tensor
    sparse_indices: torch.Tensor
    seqused_kv: torch.Tensor
    attn_sink: torch.Tensor
    window: int
    tokens_per_batch: int
    softmax_scale: Optional[float] = None

    TENSORS = ("q", "ori_kv", "ori_block_table", "cmp_kv", "cmp_block_table", "sparse_indices",
               "seqused_kv", "attn_sink")
    SHAPE_CLASSES = ATTN_CLASSES
    # drawn only by the properties named here (on top of the others' shares): the pools of
    # large_offsets are 4 GiB of lazily allocated memory that a whole-pool rewrite (P8's
    # permutation, a strided copy) would make resident; P1 and P10 (its garbage fill restricted to
    # the live pages) read only the rows they reach
    OPT_IN_CLASSES = {"large_offsets": ("P1", "P10")}
    DESCRIBE_LABELS = {"valid_positions": "valid index positions per token",
                       "valid_per_token": "valid indices per token"}

    def shape_classes(self, recipe: Optional["AttnRecipe"] = None) -> frozenset:
        """The ATTN_CLASSES these inputs fall in, multi_tile judged on positional tiles of the
        recipe's tile (golden.attention_classes)."""
        from kernelprop.golden.attention_classes import attn_classes

        return attn_classes(self, getattr(recipe, "tile", None))

    def kwargs(self) -> dict:
        return dict(window=self.window, tokens_per_batch=self.tokens_per_batch,
                    softmax_scale=self.softmax_scale)

    def state_dict(self) -> dict:
        """As TensorArgs', except a large-offset pool (large_offset_base > 0) is saved as its live
        pages and its page count: never the gigabytes of untouched pages below them."""
        out = super().state_dict()
        for name in ("ori_kv", "cmp_kv"):
            pool = getattr(self, name)
            if large_offset_base(pool):
                out[name] = live_pages(pool).detach().cpu().clone()
                out[name + "_pages"] = pool.shape[0]
        return out

    def shape(self) -> AttnShape:
        T, H, D = self.q.shape
        return AttnShape(tokens=T, heads=H, head_dim=D, num_indices=self.sparse_indices.shape[1],
                         tokens_per_batch=self.tokens_per_batch, page_size=self.ori_kv.shape[1])

    def to(self, device) -> "AttnInputs":
        return replace(self, **{n: getattr(self, n).to(device) for n in self.TENSORS})

    @classmethod
    def from_state_dict(cls, state: dict) -> "AttnInputs":
        state = dict(state)
        for name in ("ori_kv", "cmp_kv"):
            if name + "_pages" in state:
                state[name] = with_live_pages(state[name], int(state[name + "_pages"]))
        return cls(**{k: state[k] for k in cls.TENSORS}, window=int(state["window"]),
                   tokens_per_batch=int(state["tokens_per_batch"]),
                   softmax_scale=state.get("softmax_scale"))

    def truth(self) -> torch.Tensor:
        """The fp64 truth of SPEC section 2 on these inputs (what reports compare against)."""
        from kernelprop.golden.attention import sparse_attention_fp64

        return self.call(sparse_attention_fp64)

    def describe(self) -> dict:
        """Every tensor's shape/dtype/stride (tables, indices, lengths, sink in full when small; the
        data tensors live in inputs.pt), the scalars, and which indices are valid per token."""
        from kernelprop.core.plain import SMALL, plain, tensor_summary

        desc: dict = {}
        for name in self.TENSORS:
            x = getattr(self, name)
            summary = tensor_summary(live_pages(x) if name in ("ori_kv", "cmp_kv") else x)
            if name in ("q", "ori_kv", "cmp_kv"):
                summary.pop("values", None)
                summary.update(shape=list(x.shape), stride=list(x.stride()))
            if name in ("ori_kv", "cmp_kv") and large_offset_base(x):
                summary["first_live_page"] = large_offset_base(x)  # pages below: never written
            desc[name] = summary
        desc.update(window=self.window, tokens_per_batch=self.tokens_per_batch,
                    softmax_scale=plain(self.softmax_scale))
        try:
            from kernelprop.golden.attention import valid_index_mask

            valid = valid_index_mask(self.sparse_indices, self.seqused_kv, window=self.window,
                                     tokens_per_batch=self.tokens_per_batch)
            desc["valid_per_token"] = [int(v) for v in valid.sum(1)]
            if valid.numel() <= SMALL:
                desc["valid_positions"] = [[int(i) for i in row.nonzero().flatten()]
                                           for row in valid]
        except Exception as err:  # noqa: BLE001 (bad-input properties)
            desc["valid_error"] = str(err)
        return desc


def _huge_negative(gen: torch.Generator, q_shape, ori_shape, cmp_shape):
    """bf16 q, ori_kv, cmp_kv whose scores at the default scale D^-1/2 all lie below -5e4: along
    one random sign vector u (|u|^2 = D), q = a u and every key row -c u + n, n ~ N(0, 8^2)
    clamped to [-48, 48], with a, c in [256, 512]: s = a sqrt(D) (-c + u.n / D) <= 256 x (-256
    + 48) = -53248 < -5e4 at every D (bf16 rounding moves a, c by 2^-9 relative)."""
    D = q_shape[-1]
    u = torch.where(torch.rand(D, generator=gen) < 0.5, -1.0, 1.0)
    a = 256 + 256 * torch.rand(*q_shape[:-1], 1, generator=gen)
    rows = []
    for shape in (ori_shape, cmp_shape):
        c = 256 + 256 * torch.rand(*shape[:-1], 1, generator=gen)
        noise = (torch.randn(shape, generator=gen) * 8).clamp(-48, 48)
        rows.append((-c * u + noise).to(torch.bfloat16))
    return (a * u).to(torch.bfloat16), rows[0], rows[1]


def _sink(gen: torch.Generator, heads: int, kind: str) -> torch.Tensor:
    if kind == "neg_inf":
        return torch.full((heads,), -math.inf)
    if kind == "pos_inf":
        return torch.full((heads,), math.inf)
    if kind == "zero":
        return torch.zeros(heads)
    if kind == "large":
        return torch.randn(heads, generator=gen) * 30
    return torch.randn(heads, generator=gen) * 2


def make_attn_inputs(case: AttnCase) -> AttnInputs:
    """Build the tensors of `case` from its seed (CPU generation, then moved to case.device)."""
    gen = torch.Generator().manual_seed(case.seed)
    B, S, H, D, BS, W = (case.batches, case.tokens_per_batch, case.heads, case.head_dim,
                         case.page_size, case.window)
    T, K = case.tokens, case.num_indices
    # Visible lengths: the batch's last token sees seqused rows; W of them form the window ring.
    top = W + case.max_cmp_len
    seqused = torch.randint(min(max(case.min_used, 0), top), top + 1, (B,), generator=gen)
    ori_blocks = -(-W // BS)
    cmp_blocks = max(1, -(-case.max_cmp_len // BS))
    n_ori = B * ori_blocks + case.spare_pages
    n_cmp = B * cmp_blocks + case.spare_pages
    ori_table = torch.randperm(n_ori, generator=gen)[: B * ori_blocks].reshape(B, ori_blocks)
    cmp_table = torch.randperm(n_cmp, generator=gen)[: B * cmp_blocks].reshape(B, cmp_blocks)
    # Indices: the window slots in order, then top-k compressed slots (some beyond cmp_valid),
    # then `extra` junk positions.
    token = torch.arange(T)
    used = seqused[token // S] - S + 1 + token % S
    cmp_valid = (used - used.clamp(max=W)).clamp(min=0)
    window_part = torch.arange(W).expand(T, W)
    reach = (cmp_valid + 2).clamp(min=1)[:, None]
    cmp_part = W + (torch.rand(T, case.topk, generator=gen) * reach).long()
    extra_part = torch.full((T, case.extra), -1)
    idx = torch.cat([window_part, cmp_part, extra_part], dim=1)
    junk = torch.tensor([-1, -2, -(2**31), 2**31 - 1, W - 1 + 10**6])
    if case.pad_prob > 0:
        idx = torch.where(torch.rand(T, K, generator=gen) < case.pad_prob, -1, idx)
    if case.oob_prob > 0:
        pick = junk[torch.randint(len(junk), (T, K), generator=gen)]
        # out of range for this token: just past the window or just past the compressed cache
        past = torch.where(torch.rand(T, K, generator=gen) < 0.5, used.clamp(min=0, max=W)[:, None],
                           W + cmp_valid[:, None])
        pick = torch.where(torch.rand(T, K, generator=gen) < 0.5, pick, past.expand(T, K))
        idx = torch.where(torch.rand(T, K, generator=gen) < case.oob_prob, pick, idx)
    if case.dup_prob > 0 and K > 0:
        src = torch.randint(K, (T, K), generator=gen)
        idx = torch.where(torch.rand(T, K, generator=gen) < case.dup_prob, idx.gather(1, src), idx)
    if case.shuffle and K > 0:
        idx = idx.gather(1, torch.rand(T, K, generator=gen).argsort(dim=1))
    scale_q = 1.0
    q = data_values(gen, (T, H, D), case.data, scale_q).to(torch.bfloat16)
    ori_kv = data_values(gen, (n_ori, BS, D), case.data).to(torch.bfloat16)
    cmp_kv = data_values(gen, (n_cmp, BS, D), case.data).to(torch.bfloat16)
    sink = _sink(gen, H, case.sink)
    if case.data == "huge_negative":
        q, ori_kv, cmp_kv = _huge_negative(gen, q.shape, ori_kv.shape, cmp_kv.shape)
    if case.min_valid_keys:
        idx = _ensure_valid_keys(idx, used, W, cmp_valid, case.min_valid_keys, gen)
    inputs = AttnInputs(q=q, ori_kv=ori_kv, ori_block_table=ori_table.int(), cmp_kv=cmp_kv,
                        cmp_block_table=cmp_table.int(), sparse_indices=idx.int(),
                        seqused_kv=seqused.int(), attn_sink=sink.float(), window=W,
                        tokens_per_batch=S, softmax_scale=case.softmax_scale)
    if case.engine_tables:  # its own generator: every other field's tensors stay as they were
        inputs = engine_block_tables(inputs, torch.Generator().manual_seed(case.seed ^ ENGINE_SEED))
    if case.nan_unused:
        inputs = poison_unread_rows(inputs)
    if case.strided:
        inputs = inputs.replace(q=strided_view(inputs.q, gen), ori_kv=strided_view(inputs.ori_kv, gen),
                                cmp_kv=strided_view(inputs.cmp_kv, gen),
                                sparse_indices=strided_view(inputs.sparse_indices, gen))
    if case.large_offsets:
        inputs = relocate_past_2_31(inputs)
    return inputs.to(case.device) if case.device != "cpu" else inputs


def _ensure_valid_keys(idx, used, W: int, cmp_valid, n: int, gen: torch.Generator):
    """idx [T, K] with every token holding >= n valid indices: a short row's missing ones replace
    invalid entries at random positions, each a random visible window slot (used >= n >= 1, so
    slot 0 is visible; a repeated slot counts twice, SPEC section 2)."""
    T, K = idx.shape
    win_valid = used.clamp(min=0, max=W)
    valid = ((idx >= 0) & (idx < win_valid[:, None])) | \
        ((idx >= W) & (idx - W < cmp_valid[:, None]))
    short = (n - valid.sum(1)).clamp(min=0)                                  # [T] keys missing
    keys = torch.rand(T, K, generator=gen) + valid.double()                  # invalid ones first
    rank = keys.argsort(dim=1).argsort(dim=1)                                # [T, K]
    slot = (torch.rand(T, K, generator=gen) * win_valid.clamp(min=1)[:, None]).long()
    return torch.where(rank < short[:, None], slot, idx)




def large_offset_base(pool: torch.Tensor) -> int:
    """The first page of a large-offset pool (relocate_past_2_31) that holds data: the first page
    at or past 2^31 elements. Pages below it were never written (lazily allocated memory, zeros
    where read) and no table names them. 0 for a pool of at most 2^31 elements."""
    if pool.dim() != 3 or pool.numel() <= LARGE_OFFSET or not pool.is_contiguous():
        return 0
    return -(-LARGE_OFFSET // (pool.shape[1] * pool.shape[2]))


def live_pages(pool: torch.Tensor) -> torch.Tensor:
    """The pages of `pool` that hold data (a view): all of them unless it is a large-offset pool."""
    return pool[large_offset_base(pool):] if pool.dim() == 3 else pool


def with_live_pages(live: torch.Tensor, pages: int) -> torch.Tensor:
    """A contiguous pool of `pages` pages whose last live.shape[0] pages are `live`, the pages below
    them lazily allocated and never touched (torch.empty of a large size is an mmap: its pages
    become resident only when written; tests/test_large_offsets.py checks VmRSS)."""
    pool = torch.empty((pages,) + tuple(live.shape[1:]), dtype=live.dtype, device=live.device)
    pool[pages - live.shape[0]:] = live
    return pool


def relocate_past_2_31(inputs: AttnInputs) -> AttnInputs:
    """The compressed pool moved past 2^31 elements: page p becomes page base + p of a pool of
    base + N pages (base = the first page at or past 2^31 elements, large_offset_base), and every
    table entry that is a page, or an out-of-range id past the pool, shifts with it (-1 and ids
    that would pass 2^31 - 1 stay). Only the N moved pages are written (N * BS * D * 2 bytes);
    a kernel that forms page * page_stride in int32 wraps to a negative offset."""
    pool, table = inputs.cmp_kv, inputs.cmp_block_table
    n, BS, D = pool.shape
    base = -(-LARGE_OFFSET // (BS * D))
    big = with_live_pages(pool, base + n)
    t = table.long()
    moved = torch.where((t >= 0) & (t <= 2 ** 31 - 1 - base), t + base, t).to(table.dtype)
    return inputs.replace(cmp_kv=big, cmp_block_table=moved)


ENGINE_SEED = 0x6B76_7461  # mixed into the case seed for engine_block_tables' own draws


def reached_columns(seqused_kv: torch.Tensor, *, window: int, page_size: int):
    """Per batch [B], the block-table columns a valid index can reach: (window ring, compressed
    cache). The batch's last token sees the most rows (seqused); W of them are the window ring."""
    used = seqused_kv.long().clamp(min=0)
    win = used.clamp(max=window)
    return -(-win // page_size), -(-(used - win) // page_size)


def engine_block_tables(inputs: AttnInputs, gen: torch.Generator) -> AttnInputs:
    """The block tables as a serving engine holds them (vLLM, SGLang): each batch's row is a row of
    a larger preallocated table (row stride > width, a non-contiguous view at a storage offset),
    with 1-3 more columns than any batch reaches; every column a batch's valid indices cannot reach
    holds garbage: -1, ids just past or far outside the pool, or a real page of another batch (the
    last column always holds the id just past the pool); and with two batches reaching the
    compressed cache, batch 1's first compressed page is batch 0's (prefix caching: one physical
    page named by two batches). Reached columns keep their pages; what a correct kernel reads is
    unchanged up to the shared page."""
    B = inputs.seqused_kv.shape[0]
    BS = inputs.ori_kv.shape[1]
    reach_ori, reach_cmp = reached_columns(inputs.seqused_kv.cpu(), window=inputs.window,
                                           page_size=BS)
    tables = {}
    for name, pool, reach in (("ori_block_table", inputs.ori_kv, reach_ori),
                              ("cmp_block_table", inputs.cmp_kv, reach_cmp)):
        table = getattr(inputs, name).cpu().long()
        n = pool.shape[0]
        if name == "cmp_block_table" and B >= 2 and bool((reach[:2] >= 1).all()):
            table = table.clone()
            table[1, 0] = table[0, 0]
        width = table.shape[1] + int(torch.randint(1, 4, (1,), generator=gen))
        row_stride = width + int(torch.randint(1, 6, (1,), generator=gen))
        junk = torch.tensor([-1, n, n + 7, 2**31 - 1, -(2**31)])
        garbage = torch.where(torch.rand(B, width, generator=gen) < 0.5,
                              junk[torch.randint(len(junk), (B, width), generator=gen)],
                              torch.randint(0, max(n, 1), (B, width), generator=gen))
        garbage[:, -1] = n
        column = torch.arange(width)
        wide = torch.cat([table, torch.zeros(B, width - table.shape[1], dtype=torch.long)], 1)
        values = torch.where(column[None, :] < reach[:, None], wide, garbage)
        backing = torch.randint(-1, max(n, 1), (B + 1, row_stride), generator=gen)
        view = backing.to(torch.int32)[1:, :width]
        view.copy_(values)
        tables[name] = view.to(pool.device) if pool.device.type != "cpu" else view
    return inputs.replace(**tables)


def read_rows(inputs: AttnInputs):
    """Boolean masks [N_ori, BS] and [N_cmp, BS] of the pool rows some valid index reaches."""
    from kernelprop.golden.attention import index_masks  # local: golden.attention imports nothing here

    BS = inputs.ori_kv.shape[1]
    W = inputs.window
    batch, in_window, in_cmp = index_masks(inputs.sparse_indices, inputs.seqused_kv, window=W,
                                           tokens_per_batch=inputs.tokens_per_batch)
    r = inputs.sparse_indices.long()
    masks = []
    for pool, table, ok, slot in (
        (inputs.ori_kv, inputs.ori_block_table, in_window, r),
        (inputs.cmp_kv, inputs.cmp_block_table, in_cmp, r - W),
    ):
        block = torch.where(ok, slot // BS, 0).clamp(max=table.shape[1] - 1)
        page = table.long()[batch[:, None].expand_as(r), block]
        ok = ok & (page >= 0) & (page < pool.shape[0])
        flat = torch.where(ok, page * BS + slot % BS, 0)
        mask = torch.zeros(pool.shape[0] * BS, dtype=torch.bool, device=pool.device)
        mask[flat[ok]] = True
        masks.append(mask.reshape(pool.shape[0], BS))
    return masks[0], masks[1]


def poison_unread_rows(inputs: AttnInputs) -> AttnInputs:
    """Fill every pool row no valid index reaches with NaN (a kernel that reads one shows it)."""
    read_ori, read_cmp = read_rows(inputs)
    nan = torch.tensor(math.nan, dtype=inputs.ori_kv.dtype, device=inputs.ori_kv.device)
    ori = torch.where(read_ori[..., None], inputs.ori_kv, nan)
    cmp = torch.where(read_cmp[..., None], inputs.cmp_kv, nan)
    return inputs.replace(ori_kv=ori, cmp_kv=cmp)
