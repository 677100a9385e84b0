"""Seeded tensor data shared by the ops' input generators: values of a data kind and
non-contiguous views of the same values. Every draw comes from the caller's torch.Generator."""
from __future__ import annotations

import torch

# adversarial data for tensor-core dots (docs/bounds.md#gpu-model), drawn by its own shape class
TC_ADVERSARIAL = "tc_adversarial"
LARGE_OFFSET = 2 ** 31  # elements: an int32 element offset into a tensor wraps at or past this


def data_values(gen: torch.Generator, shape, kind: str, scale: float = 1.0) -> torch.Tensor:
    """fp32 values of a data kind, before the bf16 cast."""
    if kind == "uniform":
        x = torch.rand(shape, generator=gen) * 2 - 1
    elif kind == "heavy":  # Student-t-like: normal / sqrt(chi2_1-ish), clipped to stay finite
        x = torch.randn(shape, generator=gen) / torch.rand(shape, generator=gen).clamp_min(1e-3).sqrt()
    elif kind == "large_logits":
        x = torch.randn(shape, generator=gen) * 6
    elif kind == "near_ties":  # few distinct values: many equal or nearly equal scores
        x = torch.randint(-2, 3, shape, generator=gen).float() * 0.5
        x = x + torch.randn(shape, generator=gen) * 1e-3
    elif kind == TC_ADVERSARIAL:
        x = tc_adversarial_values(gen, shape)
    else:
        x = torch.randn(shape, generator=gen)
    return x * scale


def tc_adversarial_values(gen: torch.Generator, shape) -> torch.Tensor:
    """Rows along the last dim (D) that stress a truncating block-FMA dot: per row one of
    same-sign heavy-tailed magnitudes (lognormal, sigma 2.5; 95% positive), the same with one
    dominant coordinate (2^10 x the row's max, at coordinate D // 2 + 5 in every tensor, so that a
    q row and a key row that both have it give one dominant product), or zero-mean i.i.d. normal.
    Each row is scaled to max |x| = 1 (scores stay moderate; the dynamic range is within a row)."""
    D = shape[-1]
    heavy = torch.exp(2.5 * torch.randn(shape, generator=gen).clamp(-4, 4))
    sign = torch.where(torch.rand(shape, generator=gen) < 0.95, 1.0, -1.0)
    x = heavy * sign
    kind = torch.randint(0, 3, shape[:-1] + (1,), generator=gen)
    x = torch.where(kind == 2, torch.randn(shape, generator=gen), x)
    dominant = torch.zeros(shape, dtype=torch.bool)
    dominant[..., D // 2 + 5 if D > 5 else 0] = True
    top = x.abs().amax(-1, keepdim=True)
    x = torch.where(dominant & (kind == 1), top * 1024, x)
    return x / x.abs().amax(-1, keepdim=True).clamp_min(1e-30)


def strided_view(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The same values as a non-contiguous view (last-dim stride 1): the first dim starts one
    row in, the last is padded by 3, and every middle dim is padded by 1, so a pool [N, BS, D]
    has a page stride of (BS + 1) x its row stride, not page_size x row stride (padded pages,
    vLLM #47783)."""
    shape = list(x.shape)
    padded = [shape[0] + 1] + [n + 1 for n in shape[1:-1]] + [shape[-1] + 3] if x.dim() > 1 \
        else [shape[-1] + 3]
    big = torch.empty(padded, dtype=x.dtype).normal_(generator=gen) if x.is_floating_point() \
        else torch.zeros(padded, dtype=x.dtype)
    view = big[(slice(1, None), *(slice(0, n) for n in shape[1:-1]), slice(1, shape[-1] + 1))] \
        if x.dim() > 1 else big[1:shape[-1] + 1]
    view.copy_(x)
    return view
