"""The tile maxima's score errors, charged centred per tile (docs/bounds.md#p1-maxima), against the
adversarial implementation for that term: its scores sit at 0.9 of the score model's allowance
with one sign per tile, so every tile max moves by (nearly) its full allowance while the P inside
a tile barely change. It must pass P1 under the same model; the same shift of 3x the allowance
must not (the test can fail).
"""
import math

import pytest
import torch

from kernelprop.golden.attention import gather_kv, sparse_attention_trace
from kernelprop.golden.attention_bounds import MODELS, score_gap, attention_p1_bound
from kernelprop.golden.attention_inputs import AttnCase, AttnRecipe, make_attn_inputs
from kernelprop.golden.rounding import round_to_bf16


def _attention_from_scores(x, recipe: AttnRecipe, s: torch.Tensor) -> torch.Tensor:
    """The tiled recipe in fp32 torch (positional tiles) on the given fp32 scores [T, H, K]."""
    kv = gather_kv(x.ori_kv, x.ori_block_table, x.cmp_kv, x.cmp_block_table, x.sparse_indices,
                   x.seqused_kv, window=x.window, tokens_per_batch=x.tokens_per_batch)
    T, H, D = x.q.shape
    K, tile = kv.rows.shape[1], recipe.tile
    rows = kv.rows.float()
    M, L, O = torch.full((T, H), -math.inf), torch.zeros(T, H), torch.zeros(T, H, D)
    for start in range(0, K, tile):
        ok = kv.valid[:, None, start:start + tile]
        st = torch.where(ok, s[:, :, start:start + tile], -math.inf)
        live = ok.any(-1).expand(T, H)
        m = torch.where(live, st.amax(-1), 0.0)
        e = torch.where(ok, torch.exp(st - m[..., None]), 0.0)
        p = round_to_bf16(e, recipe.rounding)
        l_t = (p if recipe.l_from == "rounded" else e).sum(-1)
        M_new = torch.where(live, torch.maximum(M, m), M)
        a = torch.where(torch.isfinite(M), torch.exp(M - M_new), 0.0)
        b = torch.exp(m - M_new)
        L = torch.where(live, a * L + b * l_t, L)
        O = torch.where(live[..., None], a[..., None] * O + b[..., None] * (p @ rows[:, start:start + tile]), O)
        M = M_new
    seen = torch.isfinite(M)
    denom = L + torch.exp(x.attn_sink.float()[None] - torch.where(seen, M, 0.0))
    return torch.where(seen[..., None], O / denom[..., None], 0.0)


def _ratio_with_tile_shift(seed: int, factor: float) -> float:
    gen = torch.Generator().manual_seed(seed)
    D = (16, 64, 512)[seed % 3]
    x = make_attn_inputs(AttnCase(seed=seed, batches=1, tokens_per_batch=1, heads=4, head_dim=D,
                                  page_size=64, window=64, topk=(96, 300, 576)[seed % 3],
                                  max_cmp_len=640, min_used=64 + 640,
                                  data=("normal", "uniform", "heavy", "large_logits")[seed % 4]))
    recipe = AttnRecipe(tile=(8, 16, 64)[seed % 3], l_from=("rounded", "unrounded")[seed % 2])
    trace = x.call(sparse_attention_trace, recipe=recipe)
    model = MODELS["random"]
    ds = torch.where(trace.valid[:, None, :], score_gap(trace, x.q, D ** -0.5, model), 0.0)
    K = ds.shape[-1]
    sign = torch.randint(0, 2, (1, 4, -(-K // recipe.tile)), generator=gen).double() * 2 - 1
    sign = sign.repeat_interleave(recipe.tile, -1)[..., :K]
    # 0.9: the model's allowance also covers this implementation's own fp32 score and exp steps
    s = (trace.scores.double() + factor * sign * ds).float()
    err = (_attention_from_scores(x, recipe, s).double() - trace.o.double()).abs()
    bound = attention_p1_bound(trace, x.q, x.attn_sink, recipe, backend=model)
    return float(torch.where(err == 0, 0.0, err / bound).max())


@pytest.mark.parametrize("seed", range(6))
def test_tile_maxima_moved_by_their_allowance_pass_p1(seed):
    assert _ratio_with_tile_shift(seed, 0.9) <= 1


def test_tile_maxima_moved_three_times_their_allowance_fail_p1():
    assert max(_ratio_with_tile_shift(seed, 3.0) for seed in range(6)) > 1
