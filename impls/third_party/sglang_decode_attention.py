"""SGLang's Triton decode attention (sglang==0.5.23, `decode_attention_fwd` of
sglang/kernels/ops/attention/decode_attention.py), as shipped, behind the suite's signature.

The module is loaded from the installed wheel by file path: `import sglang` pulls in the whole
serving runtime (orjson, transformers, ...), none of which the kernel uses. Its three package
imports are stubbed while it loads: `score_mod` is the wheel's own file (it imports only triton),
`sglang.srt.utils` answers "not HIP" (the NVIDIA path, the GPU the faithful interpreter models) and
`sglang.srt.environ` is only read on HIP paths (its stub raises if ever touched).

Layout the kernel wants (page size 1): one KV buffer [rows, kv_heads=1, D] (keys and values the
same latent row, MQA), each query token one request, kv_indptr/kv_indices its valid key rows in
index order. The two pools become one buffer (window rows first, then compressed rows);
kernelprop.flat_slot_ids applies the SPEC's visibility rules.

What it computes (read off the kernel; SPEC section 2 terms):
- H > 1 heads (grouped kernel, the MQA/MLA path): scores by tl.dot of bf16 q and k with fp32
  accumulation (D = 576 / 288: a 512 / 256 dot plus a 64 / 32 rope dot); tiles of 32 keys over the
  compacted valid list; p = exp(s - m) in fp32 with m the running max after this tile
  (FlashAttention-2: n_e_max = max(e_max, tile max), acc = acc exp(e_max - n_e_max) + P.V,
  e_sum = e_sum exp(e_max - n_e_max) + sum p: p_max "running"), L sums that fp32 p, P.V takes p
  rounded to bf16.
- H = 1 (kv_group_num == 1: the "normal" kernel): tiles of 64, the same running max, P.V in fp32
  (p never rounded); its scores sum bf16 products (q * k rounded to bf16, then an fp32 sum).
- split-KV: num_kv_splits = 8 splits of cdiv(cdiv(L, 8), 32) * 32 keys each (L = valid keys);
  each split writes o / L and lse = m + log(L); stage 2 merges by exp(lse - max lse) and adds
  exp(sink - max lse) to the denominator; o is written in q's dtype (bf16, nearest even).
- A token with no valid key gives NaN (0 / 0 in stage 2): serving engines never send one.
"""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import torch

from kernelprop.golden.attention_inputs import AttnDomain, AttnRecipe
from kernelprop.golden.attention_slots import flat_slot_ids

KERNEL_FILE = "kernels/ops/attention/decode_attention.py"
SCORE_MOD_FILE = "kernels/ops/attention/score_mod.py"
NUM_KV_SPLITS = 8      # SGLang's default --triton-attention-num-kv-splits (static splits)
SPLIT_ALIGNMENT = 32   # _MIN_BLOCK_KV
GROUPED_TILE = 32      # _decode_grouped_att_m_fwd BLOCK (CUDA)
ONE_HEAD_TILE = 64     # _decode_att_m_fwd BLOCK (CUDA)


def _sglang_root() -> Path:
    spec = importlib.util.find_spec("sglang")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("sglang is not installed (pip install --no-deps -r requirements-plugins.txt)")
    return Path(next(iter(spec.submodule_search_locations)))


def _load_file(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _HipOnly:
    """sglang.srt.environ.envs: read only on HIP (ROCm) code paths, never on the NVIDIA one."""

    def __getattr__(self, name):
        raise RuntimeError(f"sglang.srt.environ.envs.{name} is stubbed by the kernelprop adapter "
                           "(only HIP paths read it)")


def _no_core_count(device_index=0):
    raise RuntimeError("get_device_core_count is stubbed by the kernelprop adapter (HIP MLA tuning only)")


def _load_decode_attention() -> types.ModuleType:
    root = _sglang_root()
    utils = types.ModuleType("sglang.srt.utils")
    utils.is_hip = lambda: False
    utils.is_gfx95_supported = lambda: False
    utils.is_gfx1250_supported = lambda: False
    utils.get_device_core_count = _no_core_count
    environ = types.ModuleType("sglang.srt.environ")
    environ.envs = _HipOnly()
    stubs = {"sglang.srt.utils": utils, "sglang.srt.environ": environ,
             "sglang.kernels.ops.attention.score_mod":
                 _load_file("kernelprop_sglang_score_mod", root / SCORE_MOD_FILE)}
    saved = {name: sys.modules.get(name) for name in stubs}
    sys.modules.update(stubs)
    try:
        return _load_file("kernelprop_sglang_decode_attention", root / KERNEL_FILE)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


decode_kernel = _load_decode_attention()


def _run(entry, scales, q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices, seqused_kv,
         attn_sink, window, tokens_per_batch, softmax_scale):
    """Lay the suite's arguments out as SGLang's `entry` (decode_attention_fwd or one of its
    paths) wants them, run it with the softmax scale then `scales` (its KV scale factors: 1.0 for
    bf16 KV), return o [T, H, D] in q's dtype."""
    T, H, D = q.shape
    page = ori_kv.shape[1]
    slots = flat_slot_ids(ori_block_table, cmp_block_table, sparse_indices, seqused_kv,
                          window=window, tokens_per_batch=tokens_per_batch, page_size=page,
                          ori_pages=ori_kv.shape[0], cmp_pages=cmp_kv.shape[0])
    ori_rows = ori_kv.shape[0] * page
    kv_buffer = torch.cat([ori_kv.reshape(-1, D), cmp_kv.reshape(-1, D)]).unsqueeze(1)
    rows = torch.where(slots.ori >= 0, slots.ori, slots.cmp + ori_rows)
    kv_indices = rows[slots.valid].to(torch.int32)  # token by token, in index order
    kv_indptr = torch.zeros(T + 1, dtype=torch.int32, device=q.device)
    kv_indptr[1:] = torch.cumsum(slots.valid.sum(dim=1), dim=0)
    num_kv_splits = torch.full((T,), NUM_KV_SPLITS, dtype=torch.int32, device=q.device)
    attn_logits = torch.empty((T, H, NUM_KV_SPLITS, D), dtype=torch.float32, device=q.device)
    attn_lse = torch.empty((T, H, NUM_KV_SPLITS), dtype=torch.float32, device=q.device)
    o = torch.empty_like(q)
    scale = D ** -0.5 if softmax_scale is None else softmax_scale
    entry(q, kv_buffer, kv_buffer, o, kv_indptr, kv_indices.to(q.device), attn_logits, attn_lse,
          num_kv_splits, NUM_KV_SPLITS, scale, *scales, sinks=attn_sink)
    return o


def sparse_decode_attention(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices,
                            seqused_kv, attn_sink, *, window, tokens_per_batch, softmax_scale=None):
    """SGLang's entry point: the grouped kernel for H > 1, the normal kernel for H = 1."""
    return _run(decode_kernel.decode_attention_fwd, (1.0, 1.0), q, ori_kv, ori_block_table, cmp_kv,
                cmp_block_table, sparse_indices, seqused_kv, attn_sink, window, tokens_per_batch,
                softmax_scale)


def grouped_decode_attention(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices,
                             seqused_kv, attn_sink, *, window, tokens_per_batch, softmax_scale=None):
    """SGLang's grouped kernel (decode_attention_fwd_grouped, the MQA/MLA path) for every H, one
    head included: the path without the one-head kernel's bf16 products."""
    return _run(decode_kernel.decode_attention_fwd_grouped, (1.0,), q, ori_kv, ori_block_table, cmp_kv,
                cmp_block_table, sparse_indices, seqused_kv, attn_sink, window, tokens_per_batch,
                softmax_scale)


def _recipe(grouped: bool) -> AttnRecipe:
    return AttnRecipe(tile=GROUPED_TILE if grouped else ONE_HEAD_TILE, tiling="compacted",
                      p_dtype="bf16" if grouped else "fp32", l_from="unrounded", out_dtype="bf16",
                      kv_splits=NUM_KV_SPLITS, split_align=SPLIT_ALIGNMENT, p_max="running")


def sglang_recipe(shape) -> AttnRecipe:
    """The recipe of the path SGLang takes for this shape: the grouped kernel for H > 1 heads
    sharing the one KV head, the normal kernel for H = 1."""
    return _recipe(shape.heads > 1)


# SGLang takes one KV buffer: the adapter concatenates both pools (a copy of every pool row), so a
# lazily allocated pool past 2^31 elements (the large_offsets class) would become resident, twice
# (the 300-example nightly ran out of this machine's 23 GiB there): pools up to 2^28 elements only.
POOL_COPY_LIMIT = 2 ** 28

sparse_decode_attention.recipe = sglang_recipe
sparse_decode_attention.validates_inputs = False  # asserts on buffer shapes only
sparse_decode_attention.domain = AttnDomain(min_valid_keys=1, max_pool_elements=POOL_COPY_LIMIT)
grouped_decode_attention.recipe = _recipe(True)
grouped_decode_attention.validates_inputs = False
grouped_decode_attention.domain = AttnDomain(min_valid_keys=1, max_pool_elements=POOL_COPY_LIMIT)
