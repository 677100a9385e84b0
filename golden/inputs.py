"""RMSNorm's typed inputs and seeded generator: every tensor is a pure function of a frozen case
(with seed). `NormCase` describes an example compactly (what a counterexample report prints);
`make_norm_inputs(case)` builds the tensors from the case's seed in a handful of vectorized torch
calls, never element by element.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional

import torch

from kernelprop.golden.sampling import data_values as _values, strided_view as _strided
from kernelprop.golden.values import CaseValue

NORM_DATA_KINDS = ("normal", "tiny", "huge", "zero", "int8", "heavy", "uniform")
# not drawn by default: the eps0_tiny class's data under the CUDA model, whose domain needs
# v >= 2^-125 (golden.rmsnorm_bounds.V_MIN_BY_BACKEND): randn x 1e-18 has mean square ~1e-36 >>
# 2^-125 = 2.4e-38 while |x| < 2^-63 (a subnormal fp32 square) for ~9% of the elements
SUBNORMAL_SQUARES = "subnormal_squares"


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



@dataclass(frozen=True)
class NormInputs:
    x: torch.Tensor
    weight: Optional[torch.Tensor]
    eps: float

    def call(self, fn, **extra):
        return fn(self.x, self.weight, eps=self.eps, **extra)

    def replace(self, **changes) -> "NormInputs":
        return replace(self, **changes)

    def state_dict(self) -> dict:
        return {"x": self.x.detach().cpu(),
                "weight": None if self.weight is None else self.weight.detach().cpu(),
                "eps": self.eps}

    @classmethod
    def from_state_dict(cls, state: dict) -> "NormInputs":
        return cls(x=state["x"], weight=state["weight"], eps=float(state["eps"]))

    def truth(self) -> torch.Tensor:
        """The fp64 truth of SPEC section 3 on these inputs."""
        from kernelprop.golden.rmsnorm import rms_norm_fp64

        return self.call(rms_norm_fp64)

    def describe(self) -> dict:
        """x and weight summaries (values in full up to 16 elements) and eps."""
        from kernelprop.plain import plain, tensor_summary

        desc: dict = {"x": tensor_summary(self.x)}
        if self.x.numel() > 16:
            desc["x"].pop("values", None)
        desc["weight"] = None if self.weight is None else tensor_summary(self.weight)
        if self.weight is not None and self.weight.numel() > 16:
            desc["weight"].pop("values", None)
        desc["eps"] = plain(self.eps)
        return desc


def make_norm_inputs(case: NormCase) -> NormInputs:
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
        x = _values(gen, shape, kind)
    dtype = torch.bfloat16 if case.dtype == "bf16" else torch.float32
    x = x.to(dtype)
    weight = (1 + 0.5 * torch.randn(case.dim, generator=gen)).to(dtype) if case.weight else None
    if case.nonfinite_rows:  # its own generator: the finite rows stay what they were without it
        x = poison_norm_rows(x, case.nonfinite_rows,
                             torch.Generator().manual_seed(case.seed ^ NONFINITE_SEED))
    if case.strided:
        x = _strided(x, gen)
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
