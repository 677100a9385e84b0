"""RMSNorm's values (SPEC section 3): its recipe, the domain an implementation may declare, the
frozen case with seed, the inputs built from it, and their shape classes.

`NormRecipe` is the numerics a kernel declares and the golden mirrors (every field a named rounding
or ordering decision); the fused add-RMSNorm (golden/fused_add_norm.py) shares it. `NormCase`
describes an example compactly (what a counterexample report prints); `make_norm_inputs(case)`
builds x and weight from the case's seed in a few vectorized torch calls. `NormInputs` answers the
per-op protocol of golden/values.py: its shape classes (`SHAPE_CLASSES`, `shape_classes()`), its
report description and its fp64 truth.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional

import torch

from kernelprop.golden.domain import DomainValue, choice, flag, kinds, most, sizes
from kernelprop.golden.error_model import FP32_MIN_NORMAL
from kernelprop.golden.rounding import ROUNDINGS
from kernelprop.golden.sampling import LARGE_OFFSET, data_values, strided_view
from kernelprop.golden.values import CaseValue, TensorArgs

INV_VARIANTS = ("rsqrt", "recip_sqrt", "recip_sqrt_rn", "rsqrt_approx")
NORM_WEIGHT_OFFSETS = (0.0, 1.0)


def _dtype_name(dtype) -> str:
    """"bf16" or "fp32" for a torch dtype or one of those names."""
    name = str(dtype).replace("torch.", "")
    names = {"bf16": "bf16", "bfloat16": "bf16", "fp32": "fp32", "float32": "fp32"}
    if name not in names:
        raise ValueError(f"x dtype must be bf16 or fp32, got {dtype!r}")
    return names[name]


@dataclass(frozen=True)
class NormRecipe:
    """Numerics of RMSNorm: y = x * INV(sum(x^2)/D + eps) * (weight_offset + weight), rounded to
    `out_dtype` (SPEC section 3).

    inv:         "rsqrt" (tl.math.rsqrt), "recip_sqrt" (1 / tl.sqrt), "recip_sqrt_rn"
                 (div_rn(1, sqrt_rn)), or "rsqrt_approx": a modelled hardware rsqrt with only
                 `approx_bits` correct bits (golden only; reproduces the NPU failure of SPEC 1).
    approx_bits: correct significand bits of "rsqrt_approx" (1..23); ignored otherwise.
    chunk:       columns per fp32 partial sum of squares, summed left to right (None: one reduction).
    out_dtype:   "bf16", "fp32", or "input": the output dtype follows x (bf16 x -> bf16 y).
    rounding:    fp32 -> bf16 rounding of the output ("rne", "rtz", "rna"); the intermediate
                 roundings of round_before_weight and compute_dtype "input" use it too.
    weight_offset: 0.0 or 1.0: y uses w' = fp32(weight_offset + w) (Gemma's 1 + w; Liger `offset`);
                 ignored without a weight.
    round_before_weight: y = OUT(OUT(x * inv) * w'): x * inv is rounded to the output dtype before
                 the weight product, which is rounded again (HF LlamaRMSNorm, Liger `llama`, vLLM).
                 Without a weight it changes nothing.
    compute_dtype: "fp32", or "input": the steps run in x's dtype C, each result rounded to C
                 (Liger `none` mode; for an fp32 x this is the fp32 recipe). With C = bf16, in
                 order: sq_i = C(x_i^2); ss = fp32 sum of the sq_i (any order; chunk as above)
                 then C(ss) (torch's bf16 sum/mean accumulate in fp32 and round once); ms =
                 C(ss / D); v = C(ms + C(eps)) (eps is converted to x's dtype first, as Liger's
                 none mode does); inv = C(INV(v)) (INV in fp32 on the bf16 v); t = C(x * inv);
                 w' = C(weight_offset + w); y = C(t * w'); then OUT. Each C(a op b) is the fp32
                 operation (correctly rounded) followed by one rounding to C, which is what a GPU
                 does for bf16 arithmetic. A kernel whose reduction adds in bf16 (a tl.sum over a
                 bf16 block) rounds every addition: that is not this recipe (its bf16 partial sums
                 are not modelled); "promote" is.
                 Or "promote": Triton's type promotion on a bf16 x (Liger `none` mode): sq_i =
                 C(x_i^2) and their tl.sum in x's dtype: the squares padded with zeros to the next
                 power of two P >= D, then the pairwise tree s[i] = C(s[i] + s[i + P/2]) (the
                 faithful interpreter's order, kernelprop/faithful/arith.py tree_sum), each
                 addition rounded; ms = fl(ss / D), v = fl(ms + C(eps)), inv = INV(v), t =
                 fl(x * inv) in fp32; w' = C(weight_offset + w); y = fl(t * w'); then OUT. chunk
                 is ignored. For an fp32 x this is the fp32 recipe.
    """

    inv: str = "recip_sqrt"
    approx_bits: int = 12
    chunk: Optional[int] = None
    out_dtype: str = "bf16"
    rounding: str = "rne"
    weight_offset: float = 0.0
    round_before_weight: bool = False
    compute_dtype: str = "fp32"

    def __post_init__(self) -> None:
        choice("inv", self.inv, INV_VARIANTS)
        if isinstance(self.approx_bits, bool) or not isinstance(self.approx_bits, int) \
                or not 1 <= self.approx_bits <= 23:
            raise ValueError(f"approx_bits must be an int in [1, 23], got {self.approx_bits!r}")
        if self.chunk is not None and (isinstance(self.chunk, bool) or not isinstance(self.chunk, int)
                                       or self.chunk < 1):
            raise ValueError(f"chunk must be None or a positive int, got {self.chunk!r}")
        choice("out_dtype", self.out_dtype, ("bf16", "fp32", "input"))
        choice("rounding", self.rounding, ROUNDINGS)
        if isinstance(self.weight_offset, bool) or self.weight_offset not in NORM_WEIGHT_OFFSETS:
            raise ValueError(f"weight_offset must be one of {NORM_WEIGHT_OFFSETS}, "
                             f"got {self.weight_offset!r}")
        object.__setattr__(self, "weight_offset", float(self.weight_offset))
        if not isinstance(self.round_before_weight, bool):
            raise ValueError(f"round_before_weight must be a bool, got {self.round_before_weight!r}")
        choice("compute_dtype", self.compute_dtype, ("fp32", "input", "promote"))

    def output_dtype(self, x_dtype) -> str:
        """"bf16" or "fp32": the output dtype for an x of `x_dtype` (torch dtype or name)."""
        return _dtype_name(x_dtype) if self.out_dtype == "input" else self.out_dtype

    def compute_in(self, x_dtype) -> str:
        """"bf16" or "fp32": the dtype the steps are rounded to for an x of `x_dtype`."""
        return _dtype_name(x_dtype) if self.compute_dtype == "input" else "fp32"

    def promotes(self, x_dtype) -> bool:
        """Whether the squares and their sum run in bf16 under Triton's promotion (compute_dtype
        "promote" on a bf16 x); the later steps are fp32 (compute_in gives "fp32")."""
        return self.compute_dtype == "promote" and _dtype_name(x_dtype) == "bf16"

    def for_input(self, x_dtype) -> "NormRecipe":
        """This recipe with out_dtype and compute_dtype resolved for an x of `x_dtype` (out_dtype
        "bf16" / "fp32"; compute_dtype "fp32" where x is fp32, as the steps are then fp32)."""
        compute = "input" if self.compute_in(x_dtype) == "bf16" else \
            "promote" if self.promotes(x_dtype) else "fp32"
        return self.replace(out_dtype=self.output_dtype(x_dtype), compute_dtype=compute)

    def replace(self, **changes) -> "NormRecipe":
        return dataclasses.replace(self, **changes)  # re-runs __post_init__ validation



NORM_DATA_KINDS = ("normal", "tiny", "huge", "zero", "int8", "heavy", "uniform")
# not drawn by default: the eps0_tiny class's data under the CUDA model, whose domain needs
# v >= 2^-125 (golden.rmsnorm_bounds.V_MIN_BY_BACKEND): randn x 1e-18 has mean square ~1e-36 >>
# 2^-125 = 2.4e-38 while |x| < 2^-63 (a subnormal fp32 square) for ~9% of the elements
SUBNORMAL_SQUARES = "subnormal_squares"


# The shape classes where real kernels differ from toy ones (kernelprop.core.coverage), recognized from
# the inputs by NormInputs.shape_classes:
#   eps0_tiny       eps = 0 with data so small that fp32 x^2 is subnormal
#   eps_dominant    eps > 0 above some row's mean square (where eps enters decides the scale)
#   reference       the per-head q norm of the decode shape: x [>= 2, 64, 512] (one batch's S = 2
#                   tokens and up) or D >= 4096
#   nonfinite_rows  a row holding NaN or +-inf beside a row that is all finite
#   grid_rows       more than GRID_AXIS_LIMIT rows: one program per row no longer fits CUDA's grid
#                   axes 1-2 (a kernel that caps or folds its grid there goes wrong past it)
#   large_offsets   a row of x starting at or past 2^31 elements from x's first element (an int32
#                   row * row_stride wraps there); x is a row view of a lazily allocated buffer
# grid_rows and large_offsets are drawn by P1 only (NormInputs.OPT_IN_CLASSES).
NORM_CLASSES = ("eps0_tiny", "eps_dominant", "reference", "nonfinite_rows", "grid_rows",
                "large_offsets")
GRID_AXIS_LIMIT = 65535        # programs CUDA allows on grid axes 1 and 2
REFERENCE_NORM_DIM = 512       # the reference class's head dim (properties.norm_limits.REFERENCE_NORM)
TINY_SQUARE = FP32_MIN_NORMAL  # fp32 x^2 below this is subnormal (or zero)


@dataclass(frozen=True)
class NormDomain(DomainValue):
    """RMSNorm inputs an implementation supports.

    dims:     supported last dims D; None: any.
    max_dim:  largest D; None: any.
    dtypes:   input dtypes among ("bf16", "fp32"); None: both.
    weight:   True: needs a weight, False: takes none, None: both.
    data:     data kinds among NORM_DATA_KINDS; None: all.
    """

    dims: Optional[tuple] = sizes()
    max_dim: Optional[int] = most()
    dtypes: Optional[tuple] = kinds(("bf16", "fp32"))
    weight: Optional[bool] = flag()
    data: Optional[tuple] = kinds(NORM_DATA_KINDS)

    def fit(self, case):
        """The drawn NormCase mapped into the domain."""
        changes = {}
        if self.dims is not None and case.dim not in self.dims:
            changes["dim"] = self.dims[case.dim % len(self.dims)]
        if self.max_dim is not None and changes.get("dim", case.dim) > self.max_dim:
            changes["dim"] = self.max_dim
        if self.dtypes is not None and case.dtype not in self.dtypes:
            changes["dtype"] = self.dtypes[0]
        if self.weight is not None and case.weight != self.weight:
            changes["weight"] = self.weight
        if self.data is not None and case.data not in self.data:
            changes["data"] = self.data[NORM_DATA_KINDS.index(case.data) % len(self.data)]
        return case.replace(**changes) if changes else case

    def admits(self, shape_class: str) -> bool:
        """Whether the feature that defines `shape_class` (NORM_CLASSES) lies in the domain."""
        return {
            "eps0_tiny": self.data is None or "tiny" in self.data,
            "eps_dominant": self.data is None or "tiny" in self.data,
            "reference": (self.dims is None or REFERENCE_NORM_DIM in self.dims)
            and (self.max_dim is None or self.max_dim >= REFERENCE_NORM_DIM),
        }.get(shape_class, True)


@dataclass(frozen=True)
class NormCase(CaseValue):
    """One RMSNorm example: x [rows, dim] (or [tokens, heads, head_dim] when heads > 0)."""

    seed: int = 0
    rows: int = 4
    dim: int = 64
    heads: int = 0                   # > 0: x is [rows, heads, dim], the per-head q norm
    dtype: str = "bf16"
    data: str = "normal"
    weight: bool = True
    eps: float = 1e-6
    strided: bool = False
    nonfinite_rows: int = 0          # rows given a NaN / +inf / -inf (poison_norm_rows)
    large_offsets: bool = False      # rows spread so the last starts past 2^31 elements (>= 3 rows)
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.nonfinite_rows < 0:
            raise ValueError(f"nonfinite_rows must be >= 0, got {self.nonfinite_rows}")
        if self.rows < 0 or self.dim < 1 or self.heads < 0:
            raise ValueError(f"rows >= 0, dim >= 1, heads >= 0 required, got {self.rows}, {self.dim}, {self.heads}")
        if self.dtype not in ("bf16", "fp32"):
            raise ValueError(f"dtype must be 'bf16' or 'fp32', got {self.dtype!r}")
        if self.data not in NORM_DATA_KINDS + (SUBNORMAL_SQUARES,):
            raise ValueError(f"data must be one of {NORM_DATA_KINDS + (SUBNORMAL_SQUARES,)}, got {self.data!r}")
        if self.large_offsets and (self.rows < 3 or self.heads or self.strided):
            raise ValueError("large_offsets needs rows >= 3, heads 0 and strided False, got "
                             f"rows={self.rows}, heads={self.heads}, strided={self.strided}")

    def size(self) -> tuple[Optional[int], str]:
        """(the element count of x, its shape "rows x [heads x] dim") for the kill matrix."""
        shape = [self.rows] + ([self.heads] if self.heads else []) + [self.dim]
        return self.rows * max(self.heads, 1) * self.dim, "x".join(map(str, shape))


@dataclass(frozen=True)
class NormInputs(TensorArgs):
    """rms_norm's arguments (SPEC section 3) as one value: x, weight (or None) and eps."""

    x: torch.Tensor
    weight: Optional[torch.Tensor]
    eps: float

    TENSORS = ("x", "weight")
    SHAPE_CLASSES = NORM_CLASSES
    # x spread over a 4-8 GiB lazy buffer; > 65535 rows (~27 s an example of the bundled kernel
    # on the interpreter): P1's only
    OPT_IN_CLASSES = {"large_offsets": ("P1",), "grid_rows": ("P1",)}

    def kwargs(self) -> dict:
        return {"eps": self.eps}

    def state_dict(self) -> dict:
        """x, weight and eps; an x spread past 2^31 elements (large_offsets) is saved as its rows
        and its row stride, not as the buffer it views (4-8 GiB)."""
        x = self.x.detach().cpu()
        spread = x.dim() == 2 and spread_row_stride(x) is not None
        return {"x": x.contiguous() if spread else x,
                "x_row_stride": x.stride(0) if spread else None,
                "weight": None if self.weight is None else self.weight.detach().cpu(),
                "eps": self.eps}

    @classmethod
    def from_state_dict(cls, state: dict) -> "NormInputs":
        x = state["x"]
        if state.get("x_row_stride"):
            x = spread_rows(x, state["x_row_stride"])
        return cls(x=x, weight=state["weight"], eps=float(state["eps"]))

    def truth(self) -> torch.Tensor:
        """The fp64 truth of SPEC section 3 on these inputs."""
        from kernelprop.golden.rmsnorm import rms_norm_fp64

        return self.call(rms_norm_fp64)

    def describe(self) -> dict:
        """x and weight summaries (values in full up to 16 elements) and eps."""
        from kernelprop.core.plain import plain, tensor_summary

        desc: dict = {"x": tensor_summary(self.x)}
        if self.x.numel() > 16:
            desc["x"].pop("values", None)
        desc["weight"] = None if self.weight is None else tensor_summary(self.weight)
        if self.weight is not None and self.weight.numel() > 16:
            desc["weight"].pop("values", None)
        desc["eps"] = plain(self.eps)
        return desc

    def shape_classes(self, recipe=None) -> frozenset:
        """The NORM_CLASSES these inputs fall in (the recipe does not change them)."""
        found = set()
        xf = self.x.detach().cpu().float()
        if self.eps == 0 and xf.numel():
            sq = xf * xf
            nonzero = xf != 0
            if bool(nonzero.any()) and bool((sq[nonzero] < TINY_SQUARE).any()):
                found.add("eps0_tiny")
        if self.eps > 0 and xf.numel() and bool(((xf.double() ** 2).mean(-1) < self.eps).any()):
            found.add("eps_dominant")
        finite_rows = torch.isfinite(xf).all(-1) if xf.numel() else torch.ones(0, dtype=torch.bool)
        if bool((~finite_rows).any()) and bool(finite_rows.any()):
            found.add("nonfinite_rows")
        shape = tuple(self.x.shape)
        if (len(shape) == 3 and shape[0] >= 2 and shape[1] >= 64 and shape[2] >= REFERENCE_NORM_DIM) \
                or (shape and shape[-1] >= 4096):
            found.add("reference")
        if shape and self.x.numel() // max(shape[-1], 1) > GRID_AXIS_LIMIT:
            found.add("grid_rows")
        if last_row_start(self.x) >= LARGE_OFFSET:
            found.add("large_offsets")
        return frozenset(found)


def make_norm_inputs(case: NormCase) -> NormInputs:
    """x and weight of `case` from its seed (CPU generation, then moved to case.device)."""
    gen = torch.Generator().manual_seed(case.seed)
    shape = (case.rows, case.heads, case.dim) if case.heads else (case.rows, case.dim)
    kind = case.data
    if kind == "tiny":
        x = torch.randn(shape, generator=gen) * 1e-20
    elif kind == SUBNORMAL_SQUARES:
        x = torch.randn(shape, generator=gen) * 1e-18
    elif kind == "huge":
        x = torch.randn(shape, generator=gen) * 1e15
    elif kind == "zero":
        x = torch.zeros(shape)
    elif kind == "int8":  # int8 codes times a per-row power-of-two-free scale (dequantized)
        codes = torch.randint(-127, 128, shape, generator=gen).float()
        x = codes * (torch.rand(shape[:-1] + (1,), generator=gen) * 0.05 + 1e-3)
    else:
        x = data_values(gen, shape, kind)
    dtype = torch.bfloat16 if case.dtype == "bf16" else torch.float32
    x = x.to(dtype)
    weight = (1 + 0.5 * torch.randn(case.dim, generator=gen)).to(dtype) if case.weight else None
    if case.nonfinite_rows:  # its own generator: the finite rows stay what they were without it
        x = poison_norm_rows(x, case.nonfinite_rows,
                             torch.Generator().manual_seed(case.seed ^ NONFINITE_SEED))
    if case.strided:
        x = strided_view(x, gen)
    if case.large_offsets:
        x = spread_rows(x, spread_row_stride_for(case.rows, case.dim))
    if case.device != "cpu":
        x = x.to(case.device)
        weight = None if weight is None else weight.to(case.device)
    return NormInputs(x=x, weight=weight, eps=case.eps)


NONFINITE_SEED = 0x6E61_6E21  # mixed into the case seed for poison_norm_rows' own draws
NONFINITE_KINDS = (math.nan, math.inf, -math.inf)


def poison_norm_rows(x: torch.Tensor, count: int, gen: torch.Generator) -> torch.Tensor:
    """x [..., D] with `count` of its rows (at most all but one, so a finite row stays) each given
    1-2 non-finite elements of one kind (NaN, +inf or -inf, drawn per row) at drawn positions;
    every other element unchanged."""
    D = x.shape[-1]
    flat = x.reshape(-1, D).clone()
    rows = flat.shape[0]
    n = min(count, rows - 1) if rows > 1 else min(count, rows)
    for r in torch.randperm(rows, generator=gen)[:n].tolist():
        kind = NONFINITE_KINDS[int(torch.randint(len(NONFINITE_KINDS), (1,), generator=gen))]
        where = torch.randperm(D, generator=gen)[:int(torch.randint(1, 3, (1,), generator=gen))]
        flat[r, where] = kind
    return flat.reshape(x.shape)


# %% large offsets: rows of x spread over a lazily allocated buffer (shape class large_offsets)

ROW_ALIGN = 64   # elements: a spread row starts 128-byte (bf16) or 256-byte (fp32) aligned


def spread_row_stride_for(rows: int, dim: int) -> int:
    """The row stride (elements) that puts row rows - 1 at or past 2^31 elements: the least
    multiple of ROW_ALIGN >= max(dim, 2^31 / (rows - 1)); < 2^31 for rows >= 3."""
    stride = max(dim, -(-LARGE_OFFSET // (rows - 1)))
    return -(-stride // ROW_ALIGN) * ROW_ALIGN


def spread_rows(x: torch.Tensor, row_stride: int) -> torch.Tensor:
    """x [R, D] as a view with row stride `row_stride` into a buffer of (R - 1) * row_stride + D
    elements allocated with torch.empty (an mmap of that size: only the pages of the R rows are
    written, so only they become resident; the rest is never touched, and reads as zeros)."""
    rows, dim = x.shape
    buffer = torch.empty((rows - 1) * row_stride + dim, dtype=x.dtype, device=x.device)
    view = buffer.as_strided((rows, dim), (row_stride, 1))
    view.copy_(x)
    return view


def spread_row_stride(x: torch.Tensor) -> Optional[int]:
    """x's row stride if x [R, D] is a spread view (a row starts at or past 2^31 elements), else
    None."""
    return x.stride(0) if x.dim() == 2 and last_row_start(x) >= LARGE_OFFSET else None


def last_row_start(x: torch.Tensor) -> int:
    """Elements from x's first element to the start of its farthest row (0 for one row)."""
    if x.dim() < 2 or x.numel() == 0:
        return 0
    return sum((n - 1) * abs(st) for n, st in zip(x.shape[:-1], x.stride()[:-1]))
