"""Planted bug, SGLang-like: a token with no valid key gets NaN (0/0 of an empty softmax: the kernel
has no empty-row guard), correct elsewhere (impls/torch_reference.py). SPEC section 2 says such a
token outputs exact zeros; a serving engine never launches one (every decode token sees at least
itself), which a kernel declares with AttnDomain(min_valid_keys=1). Run over the whole attention
catalogue it fails many properties for this one reason: the root-causes section must name it once."""
import math

import torch

from kernelprop.golden.attention import valid_index_mask
from kernelprop.impls.torch_reference import sparse_decode_attention as _reference


def sparse_decode_attention(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices,
                            seqused_kv, attn_sink, *, window, tokens_per_batch, softmax_scale=None,
                            recipe=None):
    o = _reference(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices, seqused_kv,
                   attn_sink, window=window, tokens_per_batch=tokens_per_batch,
                   softmax_scale=softmax_scale, recipe=recipe)
    empty = valid_index_mask(sparse_indices, seqused_kv, window=window,
                             tokens_per_batch=tokens_per_batch).sum(1) == 0
    return torch.where(empty[:, None, None], math.nan, o)


sparse_decode_attention.recipe = _reference.recipe
sparse_decode_attention.accepts_recipe = _reference.accepts_recipe
