"""Sparse attention's shape classes (kernelprop.core.coverage): the shapes where a bug can hide from
interpreter-sized examples, each recognized from the AttnInputs a property ran on and the recipe's
tile (`attn_classes`, what AttnInputs.shape_classes(recipe) returns):

  multi_tile           >= 2 softmax tiles of the recipe's tile hold valid rows for some (t, h),
                       and a later tile raises the running max there (merge rescaling matters)
  many_heads           H >= 17: more than one head block of 16 (the bundled kernel's at D = 512)
  mtp_depth            tokens_per_batch >= 3 (MTP depth: a token at position s >= 2)
  npow2_default_scale  softmax_scale None with a head dim that is not a power of two
  large_logits_sink    some |score| >= 16 and some finite |sink| >= 16 together
  reference            D >= 512, K >= 640, H >= 64, S >= 2 (the DeepSeek-V4 decode shape)
  engine_tables        a block table as serving engines hold one: rows of a larger table (row
                       stride > width, B >= 2), a column holding an id that is no page of its
                       pool (-1, out of range), or one page reached by two batches
  many_rows            T > 64 query rows (tokens): the other side of a row-count switch (sglang
                       #39288 changes path above 64 rows)
  huge_scores          a token whose valid scores all lie below -5e4, the finite "-inf" sentinel
                       of some kernels (flashinfer #4450)
  large_offsets        a table naming a page at or past 2^31 elements of its pool (an int32
                       page * page_stride wraps there); drawn by P1 and P10 only (the pool is
                       lazily allocated: AttnInputs.OPT_IN_CLASSES)
"""
from __future__ import annotations

import math
from typing import Optional

import torch

ATTN_CLASSES = ("multi_tile", "many_heads", "mtp_depth", "npow2_default_scale",
                "large_logits_sink", "tc_adversarial", "reference", "engine_tables", "many_rows",
                "huge_scores", "large_offsets")
LARGE = 16.0          # |score| and |sink| from which "large logits x large sink" counts
SECOND_HEAD_BLOCK = 17
ROW_SWITCH = 64       # query rows above which kernels switch path (many_rows: T > ROW_SWITCH)
SENTINEL = -5e4       # huge_scores: every valid score of a token below it


def _pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def raises_in_later_tile(scores: torch.Tensor, tile: int) -> bool:
    """scores [T, H, K] fp32, -inf where invalid: does some (t, h) have a positional tile after
    its first non-empty one whose max exceeds the running max of the tiles before it?"""
    T, H, K = scores.shape
    if K == 0 or tile >= K:
        return False
    n = -(-K // tile)
    padded = torch.full((T, H, n * tile), -math.inf, dtype=scores.dtype)
    padded[..., :K] = scores
    tile_max = padded.reshape(T, H, n, tile).amax(-1)                     # [T, H, n]
    running = tile_max.cummax(-1).values                                    # [T, H, n]
    raised = (tile_max[..., 1:] > running[..., :-1]) & torch.isfinite(running[..., :-1])
    return bool(raised.any())


def tc_adversarial_dot(q: torch.Tensor, rows: torch.Tensor, valid: torch.Tensor) -> bool:
    """Is some valid q.k_j a dot a truncating tensor core gets most wrong: >= 3/4 of its nonzero
    products of one sign and >= 1/4 of them below 2^-12 x its largest (the terms shifted out of a
    24-bit window add up one-signed)? Looks at the first 2 tokens with a valid key and 4 heads
    only (the classification runs on every example; a miss undercounts, never miscounts); bf16
    products are exact in fp32."""
    keyed = [t for t in range(q.shape[0]) if bool(valid[t].any())][:2]     # tokens with a key
    for t in keyed:                                                         # one token at a time
        prod = q[t, :4].float()[:, None, :] * rows[t].float()[None, :, :]    # [H, K, D]
        nonzero = prod != 0
        n = nonzero.sum(-1).clamp(min=1)
        same = torch.maximum((prod > 0).sum(-1), (prod < 0).sum(-1)) >= 0.75 * n
        mag = prod.abs()
        small = (mag < 2.0 ** -12 * mag.amax(-1, keepdim=True)) & nonzero
        wide = small.sum(-1) >= 0.25 * n
        if bool((same & wide & valid[t][None, :] & (nonzero.sum(-1) >= 16)).any()):
            return True
    return False


def engine_tables(x) -> bool:
    """Does an AttnInputs `x` hold a block table laid out as a serving engine's (class
    engine_tables): row stride > width with >= 2 rows, an entry that names no page of its pool, or
    one page that two batches' reached columns (golden.attention_inputs.reached_columns) both name?"""
    from kernelprop.golden.attention_inputs import reached_columns  # local: it imports this module

    B = x.seqused_kv.shape[0]
    reach = reached_columns(x.seqused_kv.cpu(), window=x.window, page_size=x.ori_kv.shape[1])
    for table, pool, cols in ((x.ori_block_table, x.ori_kv, reach[0]),
                              (x.cmp_block_table, x.cmp_kv, reach[1])):
        if table.dim() != 2 or table.shape[0] != B:
            continue  # bad-input examples
        if B >= 2 and table.shape[1] and table.stride(0) > table.shape[1]:
            return True
        t = table.cpu().long()
        if bool(((t < 0) | (t >= pool.shape[0])).any()):
            return True
        reached = torch.arange(t.shape[1])[None, :] < cols.clamp(max=t.shape[1])[:, None]
        owner = {}
        for b, page in zip(*torch.nonzero(reached, as_tuple=True)):
            p = int(t[b, page])
            if owner.setdefault(p, int(b)) != int(b):
                return True
    return False


def large_offsets(x) -> bool:
    """Does a block table of an AttnInputs `x` name a page that starts at or past 2^31 elements
    of its pool (class large_offsets)?"""
    for table, pool in ((x.ori_block_table, x.ori_kv), (x.cmp_block_table, x.cmp_kv)):
        if pool.dim() != 3 or pool.shape[0] * pool.stride(0) <= 2 ** 31:
            continue
        t = table.long()
        if bool(((t < pool.shape[0]) & (t * pool.stride(0) >= 2 ** 31)).any()):
            return True
    return False


def attn_classes(x, tile: Optional[int]) -> frozenset:
    """The attention classes an AttnInputs `x` (run with positional tiles of `tile`) falls in."""
    from kernelprop.golden.attention import gather_kv  # local: it imports golden.attention_inputs

    T, H, D = x.q.shape
    K = x.sparse_indices.shape[1]
    S = x.tokens_per_batch
    found = set()
    if H >= SECOND_HEAD_BLOCK:
        found.add("many_heads")
    if S >= 3:
        found.add("mtp_depth")
    if x.softmax_scale is None and not _pow2(D):
        found.add("npow2_default_scale")
    if D >= 512 and K >= 640 and H >= 64 and S >= 2:
        found.add("reference")
    if engine_tables(x):
        found.add("engine_tables")
    if T > ROW_SWITCH:
        found.add("many_rows")
    if large_offsets(x):
        found.add("large_offsets")
    try:
        g = gather_kv(x.ori_kv.cpu(), x.ori_block_table.cpu(), x.cmp_kv.cpu(),
                      x.cmp_block_table.cpu(), x.sparse_indices.cpu(), x.seqused_kv.cpu(),
                      window=x.window, tokens_per_batch=S)
    except ValueError:  # bad pages (P13-style inputs): no scores to classify
        return frozenset(found)
    scale = D ** -0.5 if x.softmax_scale is None else float(x.softmax_scale)
    with torch.no_grad():
        s = torch.einsum("thd,tkd->thk", x.q.cpu().float(), g.rows.float()) * scale
    s = s.masked_fill(~g.valid[:, None, :], -math.inf)
    if tile is not None and raises_in_later_tile(s, tile):
        found.add("multi_tile")
    if D >= 32 and tc_adversarial_dot(x.q.cpu(), g.rows, g.valid):
        found.add("tc_adversarial")
    finite = torch.isfinite(s)
    sink = x.attn_sink.cpu()
    big_sink = bool((torch.isfinite(sink) & (sink.abs() >= LARGE)).any())
    if big_sink and bool((s.abs() >= LARGE)[finite].any()):
        found.add("large_logits_sink")
    row_max = s.amax(-1) if K else s.new_full((T, H), -math.inf)
    if bool((torch.isfinite(row_max) & (row_max < SENTINEL)).any()):
        found.add("huge_scores")
    return frozenset(found)
