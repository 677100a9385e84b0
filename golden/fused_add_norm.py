"""Fused residual-add RMSNorm (SPEC section 9): domain, case, inputs, golden and fp64 truth.

    z = RNE_in(x + residual)            the fp32 sum rounded once to the input dtype (for fp32 x it
                                        is the fp32 sum; for bf16 x it equals RNE_bf16 of the exact
                                        sum: an inexact fp32 sum of two bf16 numbers lies within
                                        2^-16 of the larger, far from any bf16 tie)
    residual_out = z                    bitwise
    y = rms_norm(z, weight, eps, recipe) SPEC section 3 on z, every NormRecipe field

The recipe is the RMSNorm's (golden.rmsnorm_inputs.NormRecipe): fusing the add changes no rounding of the
norm. The golden reuses golden.rmsnorm on the golden z, so the norm part of the op has one model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from kernelprop.golden.domain import DomainValue, flag, kinds, most, sizes
from kernelprop.golden.sampling import LARGE_OFFSET
from kernelprop.golden.rmsnorm_inputs import (SUBNORMAL_SQUARES, NormCase, NormRecipe, last_row_start,
                                             spread_row_stride, spread_row_stride_for, spread_rows)
from kernelprop.golden.rmsnorm import rms_norm_fp64, rms_norm_golden, rms_norm_trace
from kernelprop.golden.values import CaseValue, TensorArgs

FUSED_DATA = ("normal", "tiny", "huge", "zero", "cancel", "mixed_scale")
CASE_DATA = FUSED_DATA + (SUBNORMAL_SQUARES,)   # + eps0_tiny's data under the CUDA model (not declarable)
# large_offsets: x and residual rows spread over lazily allocated buffers, a row past 2^31
# elements (golden.rmsnorm_inputs.spread_rows); drawn by F1 and F2 only (FusedInputs.OPT_IN_CLASSES)
FUSED_CLASSES = ("eps0_tiny", "eps_dominant", "reference", "cancellation", "large_offsets")
CANCEL_RATIO = 2.0 ** -4   # cancellation class: some row's rms(z) <= 2^-4 rms(x)
REFERENCE_DIM = 4096       # reference class: rows of a served model's hidden size (4096 .. 8192)
TINY_SQUARE = 2.0 ** -126  # fp32 z^2 below this is subnormal (or zero)


@dataclass(frozen=True)
class FusedDomain(DomainValue):
    """Inputs a fused add-norm implementation supports (None: any).

    dims / max_dim: last dims D; dtypes: among ("bf16", "fp32"); weight: True needs one, False
    takes none; strided: False needs contiguous rows (x and residual); data: data kinds."""

    dims: Optional[tuple] = sizes()
    max_dim: Optional[int] = most()
    dtypes: Optional[tuple] = kinds(("bf16", "fp32"))
    weight: Optional[bool] = flag()
    strided: Optional[bool] = flag()
    data: Optional[tuple] = kinds(FUSED_DATA)

    def fit(self, case: "FusedCase") -> "FusedCase":
        changes = {}
        if self.dims is not None and case.dim not in self.dims:
            changes["dim"] = self.dims[case.dim % len(self.dims)]
        if self.max_dim is not None and changes.get("dim", case.dim) > self.max_dim:
            changes["dim"] = self.max_dim
        if self.dtypes is not None and case.dtype not in self.dtypes:
            changes["dtype"] = self.dtypes[0]
        if self.weight is not None and case.weight != self.weight:
            changes["weight"] = self.weight
        if self.strided is False and (case.strided_x or case.strided_residual):
            changes.update(strided_x=False, strided_residual=False)
        kind = _domain_kind(case.data)
        if self.data is not None and kind not in self.data:
            changes["data"] = self.data[FUSED_DATA.index(kind) % len(self.data)]
        return case.replace(**changes) if changes else case

    def admits(self, shape_class: str) -> bool:
        """Whether the feature that defines `shape_class` (FUSED_CLASSES) lies in the domain."""
        data = self.data
        return {
            "eps0_tiny": data is None or "tiny" in data,
            "eps_dominant": data is None or "tiny" in data,
            "cancellation": data is None or "cancel" in data,
            "reference": (self.dims is None or any(d >= REFERENCE_DIM for d in self.dims))
            and (self.max_dim is None or self.max_dim >= REFERENCE_DIM),
            "large_offsets": self.strided is not False,   # spread rows are strided views
        }.get(shape_class, True)


@dataclass(frozen=True)
class FusedCase(CaseValue):
    """One example: x and residual [rows, dim] (or [rows, heads, dim] when heads > 0)."""

    seed: int = 0
    rows: int = 4
    dim: int = 64
    heads: int = 0
    dtype: str = "bf16"
    data: str = "normal"
    weight: bool = True
    eps: float = 1e-6
    strided_x: bool = False
    strided_residual: bool = False
    large_offsets: bool = False      # x and residual rows spread past 2^31 elements (>= 3 rows)
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.rows < 0 or self.dim < 1 or self.heads < 0:
            raise ValueError(f"rows >= 0, dim >= 1, heads >= 0 required, got {self.rows}, {self.dim}, "
                             f"{self.heads}")
        if self.dtype not in ("bf16", "fp32"):
            raise ValueError(f"dtype must be 'bf16' or 'fp32', got {self.dtype!r}")
        if self.data not in CASE_DATA:
            raise ValueError(f"data must be one of {CASE_DATA}, got {self.data!r}")
        if self.large_offsets and (self.rows < 3 or self.heads or self.strided_x
                                   or self.strided_residual):
            raise ValueError("large_offsets needs rows >= 3, heads 0 and no other strides")

    size = NormCase.size   # x's element count and shape (rows, heads, dim: the same fields)


@dataclass(frozen=True)
class FusedInputs(TensorArgs):
    """fused_add_rms_norm's arguments (SPEC section 9) as one value."""

    x: torch.Tensor
    residual: torch.Tensor
    weight: Optional[torch.Tensor]
    eps: float

    TENSORS = ("x", "residual", "weight")
    SHAPE_CLASSES = FUSED_CLASSES
    OPT_IN_CLASSES = {"large_offsets": ("F1", "F2")}   # x and residual spread alike

    def kwargs(self) -> dict:
        return {"eps": self.eps}

    def state_dict(self) -> dict:
        """The tensors and eps; spread x / residual (large_offsets) as their rows and row stride."""
        out = {n: None if getattr(self, n) is None else getattr(self, n).detach().cpu()
               for n in self.TENSORS}
        for n in ("x", "residual"):
            stride = spread_row_stride(out[n])
            if stride is not None:
                out[n], out[f"{n}_row_stride"] = out[n].contiguous(), stride
        out.update(self.kwargs())
        return out

    @classmethod
    def from_state_dict(cls, state: dict) -> "FusedInputs":
        x, r = (spread_rows(state[n], state[f"{n}_row_stride"]) if state.get(f"{n}_row_stride")
                else state[n] for n in ("x", "residual"))
        return cls(x=x, residual=r, weight=state.get("weight"), eps=float(state["eps"]))

    def truth(self) -> torch.Tensor:
        """y in float64: the exact norm of the exact sum (reports compare y against it; F1 carries
        the exact sum as its own truth)."""
        return self.call(fused_add_rms_norm_fp64)[0]

    def describe(self) -> dict:
        from kernelprop.core.plain import plain, tensor_summary

        desc = {}
        for n in self.TENSORS:
            t = getattr(self, n)
            desc[n] = None if t is None else tensor_summary(t)
            if t is not None and t.numel() > 16:
                desc[n].pop("values", None)
        desc["eps"] = plain(self.eps)
        return desc

    def shape_classes(self, recipe=None) -> frozenset:
        """The FUSED_CLASSES these inputs fall in, judged on the golden z (kernelprop.core.coverage; the
        recipe does not change them)."""
        x = self.x.detach().cpu()
        z = residual_sum(x, self.residual.detach().cpu()).double()
        found = set()
        if z.numel():
            sq = z.float() * z.float()
            nonzero = z != 0
            if self.eps == 0 and bool(nonzero.any()) and bool((sq[nonzero] < TINY_SQUARE).any()):
                found.add("eps0_tiny")
            if self.eps > 0 and bool(((z ** 2).mean(-1) < self.eps).any()):
                found.add("eps_dominant")
            ms_x = (x.double() ** 2).mean(-1)
            ms_z = (z ** 2).mean(-1)
            if bool(((ms_x > 0) & (ms_z <= CANCEL_RATIO ** 2 * ms_x)).any()):
                found.add("cancellation")
        if x.dim() and x.shape[-1] >= REFERENCE_DIM:
            found.add("reference")
        if max(last_row_start(self.x), last_row_start(self.residual)) >= LARGE_OFFSET:
            found.add("large_offsets")
        return frozenset(found)


def _domain_kind(data: str) -> str:
    """The declared data kind a case's data counts as: subnormal_squares is the eps0_tiny class's
    "tiny" under the CUDA model (golden.rmsnorm_inputs.SUBNORMAL_SQUARES)."""
    return "tiny" if data == SUBNORMAL_SQUARES else data


def _dtype(name: str) -> torch.dtype:
    return torch.bfloat16 if name == "bf16" else torch.float32


def _strided(t: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The same values as a view with padded rows (row stride > D, last-dim stride 1)."""
    shape = list(t.shape)
    big = torch.empty(shape[:-1] + [shape[-1] + 5], dtype=t.dtype).normal_(generator=gen)
    view = big[..., 2:shape[-1] + 2]
    view.copy_(t)
    return view


def make_fused_inputs(case: FusedCase) -> FusedInputs:
    """Tensors from the case's seed. data: normal; tiny (1e-20 scale) / subnormal_squares (1e-18:
    the eps0_tiny class under the CUDA model, whose domain needs v >= 2^-125) / huge (1e15); zero (both
    zero); cancel: residual = -x + a perturbation 2^-6 of |x| (|x + r| << |x|); mixed_scale: the
    residual 2^10 times larger than x in half the rows, 2^-10 in the others."""
    gen = torch.Generator().manual_seed(case.seed)
    shape = (case.rows, case.heads, case.dim) if case.heads else (case.rows, case.dim)
    dtype = _dtype(case.dtype)
    x = torch.randn(shape, generator=gen)
    r = torch.randn(shape, generator=gen)
    if case.data == "tiny":
        x, r = x * 1e-20, r * 1e-20
    elif case.data == SUBNORMAL_SQUARES:   # z ~ 1.4e-18: mean square >> 2^-125, ~6% subnormal squares
        x, r = x * 1e-18, r * 1e-18
    elif case.data == "huge":
        x, r = x * 1e15, r * 1e15
    elif case.data == "zero":
        x, r = torch.zeros(shape), torch.zeros(shape)
    elif case.data == "cancel":
        x = x.to(dtype).float()
        r = -x + x.abs() * 2.0 ** -6 * r
    elif case.data == "mixed_scale":
        rowscale = torch.where(torch.arange(case.rows) % 2 == 0, 2.0 ** 10, 2.0 ** -10)
        r = r * rowscale.reshape((-1,) + (1,) * (len(shape) - 1))
    x, r = x.to(dtype), r.to(dtype)
    weight = (1 + 0.5 * torch.randn(case.dim, generator=gen)).to(dtype) if case.weight else None
    if case.strided_x:
        x = _strided(x, gen)
    if case.strided_residual:
        r = _strided(r, gen)
    if case.large_offsets:
        stride = spread_row_stride_for(case.rows, case.dim)
        x, r = spread_rows(x, stride), spread_rows(r, stride)
    if case.device != "cpu":
        x, r = x.to(case.device), r.to(case.device)
        weight = None if weight is None else weight.to(case.device)
    return FusedInputs(x=x, residual=r, weight=weight, eps=case.eps)


def residual_sum(x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """z = RNE_in(x + residual): the fp32 sum rounded once to x's dtype (torch's casts are RNE)."""
    return (x.float() + residual.float()).to(x.dtype)


def fused_add_rms_norm_golden(x, residual, weight=None, *, eps: float = 1e-6,
                              recipe: NormRecipe = NormRecipe()):
    """(y, residual_out): the golden RMSNorm (golden.rmsnorm) on the golden z."""
    z = residual_sum(x, residual)
    return rms_norm_golden(z, weight, eps=eps, recipe=recipe), z


def fused_add_norm_trace(x, residual, weight=None, *, eps: float = 1e-6,
                         recipe: NormRecipe = NormRecipe()):
    """The golden RMSNorm trace (golden.rmsnorm.NormTrace) on the golden z."""
    return rms_norm_trace(residual_sum(x, residual), weight, eps=eps, recipe=recipe)


def fused_add_rms_norm_fp64(x, residual, weight=None, *, eps: float = 1e-6, recipe=None):
    """(y, z) in float64: exact sum, exact norm of it (with the recipe's weight offset)."""
    z = x.double() + residual.double()
    offset = recipe.weight_offset if recipe is not None else 0.0
    return rms_norm_fp64(z, weight, eps=eps, weight_offset=offset), z
