"""Argument checks of the catalogue's base implementations: the bundled wrappers' contract (SPEC P13).

A mutant must die of its planted numerical bug, not of a missing argument check, so the bases
raise what kernels/ raises (TypeError for a type or dtype, ValueError for a shape, device, stride
or value, each naming the argument), reusing the bundled kernels' own helpers.
"""
from __future__ import annotations

import math

import torch

from golden.recipes import AttnRecipe, NormRecipe
from kernels._checks import check_device, check_last_stride, check_tensor
from kernels.sparse_attention import _check_int, _check_pages, _fp32_scale


def check_recipe(recipe, recipe_type) -> None:
    if recipe is not None and not isinstance(recipe, recipe_type):
        raise TypeError(f"recipe must be a {recipe_type.__name__} or None, got {type(recipe).__name__}")


def check_attention_args(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices,
                         seqused_kv, attn_sink, *, window, tokens_per_batch, softmax_scale,
                         recipe) -> float:
    """Raise like kernels.sparse_decode_attention on bad input; return the fp32 softmax scale."""
    check_recipe(recipe, AttnRecipe)
    _check_int("window", window, 1)
    S = _check_int("tokens_per_batch", tokens_per_batch, 1)
    check_tensor("q", q, (torch.bfloat16,), 3, "[T, H, D]")
    T, H, D = q.shape
    for name, pool in (("ori_kv", ori_kv), ("cmp_kv", cmp_kv)):
        check_tensor(name, pool, (torch.bfloat16,), 3, f"[N, BS, D={D}]")
        if pool.shape[2] != D or pool.shape[1] < 1 or pool.shape[1] != ori_kv.shape[1]:
            raise ValueError(f"{name} must be [N, BS >= 1, D={D}] with ori_kv's BS, got shape "
                             f"{tuple(pool.shape)}")
    if T % S != 0:
        raise ValueError(f"tokens_per_batch={S} must divide the token count T={T} of q")
    B = T // S
    for name, table in (("ori_block_table", ori_block_table), ("cmp_block_table", cmp_block_table)):
        check_tensor(name, table, (torch.int32,), 2, "[B, blocks]")
        if table.shape[0] != B:
            raise ValueError(f"{name} must have B={B} rows, got shape {tuple(table.shape)}")
    check_tensor("sparse_indices", sparse_indices, (torch.int32,), 2, "[T, K]")
    if sparse_indices.shape[0] != T:
        raise ValueError(f"sparse_indices must have T={T} rows, got shape {tuple(sparse_indices.shape)}")
    check_tensor("seqused_kv", seqused_kv, (torch.int32,), 1, "[B]")
    if seqused_kv.shape[0] != B:
        raise ValueError(f"seqused_kv must have shape [{B}], got {tuple(seqused_kv.shape)}")
    check_tensor("attn_sink", attn_sink, (torch.float32,), 1, "[H]")
    if attn_sink.shape[0] != H:
        raise ValueError(f"attn_sink must have shape [{H}], got {tuple(attn_sink.shape)}")
    named = (("q", q), ("ori_kv", ori_kv), ("ori_block_table", ori_block_table), ("cmp_kv", cmp_kv),
             ("cmp_block_table", cmp_block_table), ("sparse_indices", sparse_indices),
             ("seqused_kv", seqused_kv), ("attn_sink", attn_sink))
    for name, x in named:
        check_device(name, x, "q", q)
    for name, x in (("q", q), ("ori_kv", ori_kv), ("cmp_kv", cmp_kv)):
        check_last_stride(name, x)
    if bool(torch.isnan(attn_sink).any()):
        raise ValueError("attn_sink must not contain NaN (use -inf for 'no sink')")
    scale = _fp32_scale(softmax_scale, D)
    if T and sparse_indices.shape[1]:
        _check_pages(sparse_indices, seqused_kv, ori_block_table, cmp_block_table,
                     ori_kv.shape[0], cmp_kv.shape[0], window=window, tokens_per_batch=S,
                     page_rows=ori_kv.shape[1])
    return scale


def check_norm_args(x, weight, eps, recipe) -> None:
    """Raise like kernels.rms_norm on bad input."""
    check_recipe(recipe, NormRecipe)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor [..., D], got {type(x).__name__}")
    if x.dtype not in (torch.bfloat16, torch.float32):
        raise TypeError(f"x must have dtype bfloat16 or float32, got {x.dtype}")
    if x.dim() < 1 or x.shape[-1] < 1:
        raise ValueError(f"x must be [..., D] with D >= 1, got shape {tuple(x.shape)}")
    if weight is not None:
        if not isinstance(weight, torch.Tensor):
            raise TypeError(f"weight must be a torch.Tensor [D] or None, got {type(weight).__name__}")
        if weight.dtype not in (x.dtype, torch.float32):
            raise TypeError(f"weight must have x's dtype or float32, got {weight.dtype}")
        if tuple(weight.shape) != (x.shape[-1],):
            raise ValueError(f"weight must have shape [{x.shape[-1]}], got {tuple(weight.shape)}")
        check_device("weight", weight, "x", x)
    check_device("x", x, "x", x)
    check_last_stride("x", x)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)):
        raise TypeError(f"eps must be a float, got {type(eps).__name__}")
    if not (math.isfinite(float(torch.tensor(float(eps), dtype=torch.float32))) and eps >= 0):
        raise ValueError(f"eps must be finite and >= 0 (in fp32), got {eps!r}")
