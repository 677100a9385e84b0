"""P5, P6, P7 for sparse attention: index semantics (pads anywhere, permuted and duplicated
indices), sink semantics (-inf = no sink, the L / (L + exp(sink - M)) scaling, +inf gives zeros,
never NaN/Inf), and empty rows (exact zeros). Every transformed index tensor is built from a drawn
seed in a few vectorized torch calls. Bounds: docs/bounds-attention-props.md."""
import math

import pytest
import torch
from hypothesis import strategies as st

from kernelprop.golden.attention import valid_index_mask, visible_lengths
from kernelprop.golden.attention_inputs import AttnInputs, make_attn_inputs
from kernelprop.properties.checks import run_property
from kernelprop.properties.replays_attention import recipe_params
from kernelprop.properties.attention_limits import AttnLimits
from kernelprop.properties.strategies import shape_class_property, seeds
from kernelprop.properties.attention_strategies import backend_limits, draw_attn

CPU_LIMITS = AttnLimits(batches=2, tokens_per_batch=2, heads=3, head_dim=24, page_size=8, window=8,
                    topk=12, extra=3, cmp_len=24)
MAX_TILES_CPU = 3   # interpreter cost is one iteration per tile and token: cap tiles per token
R = "kernelprop.properties.replays_attention:"


def _draw(data, shape_class, impl, backend, device, k_extra=0, **draw_kw):
    """A case and a recipe for `impl` (positional tiling), the tile capped on the interpreter
    (the multi-tile class keeps its tile: it already cuts the list into 2-4 tiles)."""
    drawn = draw_attn(data, shape_class, impl=impl, backend=backend, device=device,
                      limits=backend_limits(backend, CPU_LIMITS), **draw_kw)
    case, recipe = drawn.case, drawn.recipe
    if impl.varies("tile") and drawn.shape_class != "multi_tile":
        # tiles that cut the index list (pads then move tile boundaries)
        K = case.num_indices + k_extra
        low = -(-K // MAX_TILES_CPU) if backend != "cuda" else 1
        recipe = recipe.replace(tile=data.draw(st.one_of(st.integers(low, max(low, K)), st.just(64)),
                                               label="tile"))
    return case, recipe


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _with_indices(x: AttnInputs, idx: torch.Tensor) -> AttnInputs:
    return x.replace(sparse_indices=idx.to(torch.int32).to(x.sparse_indices.device).contiguous())


def _invalid_values(x: AttnInputs) -> torch.Tensor:
    """[T, 6] int64 indices invalid for each token: -1, other negatives, int32 extremes, the first
    slot past the compressed cache, and the first window slot not yet visible (or -1)."""
    T = x.q.shape[0]
    _, win_valid, cmp_valid = visible_lengths(x.seqused_kv.cpu(), T, x.tokens_per_batch, x.window)
    W = x.window
    const = torch.tensor([-1, -7, -(2 ** 31), 2 ** 31 - 1]).expand(T, 4)
    past_cmp = (W + cmp_valid)[:, None]
    past_win = torch.where(win_valid < W, win_valid, -1)[:, None]
    return torch.cat([const, past_cmp, past_win], dim=1)


def insert_positions(idx: torch.Tensor, new: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Insert the columns of `new` [T, E] into each row of idx [T, K] at random places, keeping
    the order of idx's own entries: a stable sort of (position keys, random keys in [-0.5, K])."""
    T, K = idx.shape
    keys = torch.cat([torch.arange(K, dtype=torch.float64).expand(T, K),
                      torch.randint(0, K + 1, new.shape, generator=gen).double() - 0.5], dim=1)
    order = torch.sort(keys, dim=1, stable=True).indices
    return torch.cat([idx, new], dim=1).gather(1, order)


def insert_pads(x: AttnInputs, seed: int, count: int) -> AttnInputs:
    """`count` invalid indices (-1, out-of-range, int32 extremes) inserted anywhere in every row."""
    gen = _gen(seed)
    bad = _invalid_values(x)
    pads = bad.gather(1, torch.randint(0, bad.shape[1], (bad.shape[0], count), generator=gen))
    return _with_indices(x, insert_positions(x.sparse_indices.cpu().long(), pads, gen))


def pad_first_tile(x: AttnInputs, seed: int, tile: int) -> AttnInputs:
    """`tile` invalid indices put in front of every row: the first positional tile holds no valid
    entry and every later tile is an original one, shifted by a whole tile (vLLM #48364: a kernel
    whose running max is still -inf after an all-masked first block; tests that pad at the back
    never see it)."""
    gen = _gen(seed)
    bad = _invalid_values(x)
    pads = bad.gather(1, torch.randint(0, bad.shape[1], (bad.shape[0], tile), generator=gen))
    return _with_indices(x, torch.cat([pads, x.sparse_indices.cpu().long()], dim=1))


MAX_PADDED_TILE = 64  # the first-tile padding stays affordable on the interpreter


def permute_indices(x: AttnInputs, seed: int) -> AttnInputs:
    """Every token's index list (valid and invalid entries) in a random order."""
    idx = x.sparse_indices.cpu().long()
    perm = torch.rand(idx.shape, generator=_gen(seed)).argsort(dim=1)
    return _with_indices(x, idx.gather(1, perm))


def duplicate_index(x: AttnInputs, seed: int, max_copies: int = 2):
    """Per token, 1..max_copies extra copies of one index (a valid one when the token has any),
    inserted anywhere; unused copy slots become -1. Returns (inputs, positions, copies)."""
    gen = _gen(seed)
    idx = x.sparse_indices.cpu().long()
    T, K = idx.shape
    valid = valid_index_mask(x.sparse_indices.cpu(), x.seqused_kv.cpu(), window=x.window,
                             tokens_per_batch=x.tokens_per_batch)
    pos = (torch.rand(T, K, generator=gen) + valid.double()).argmax(dim=1)           # [T]
    copies = torch.randint(1, max_copies + 1, (T,), generator=gen)                   # [T]
    slot = torch.arange(max_copies).expand(T, max_copies)
    new = torch.where(slot < copies[:, None], idx.gather(1, pos[:, None]), -1)       # [T, C]
    return (_with_indices(x, insert_positions(idx, new, gen)), pos.tolist(), copies.tolist())


# %% P5 index semantics

def _agree_with_original(what: str, inputs: dict, golden_recipe, impl, recipe, case) -> None:
    """P5: the golden (golden_recipe) and the implementation (recipe) on inputs["inputs"], the
    transformed indices, vs inputs["inputs_b"], the original ones: the exact values coincide."""
    run_property("P5", f"golden {golden_recipe.tiling}: {what} vs original within P2 + P2",
                 R + "golden_agree", inputs=inputs, params=recipe_params(golden_recipe),
                 recipe=golden_recipe, case=case)
    run_property("P5", f"impl: {what} vs original within P1 + P1 + P2 + P2", R + "impl_agree",
                 inputs=inputs, impl=impl, params=recipe_params(recipe), recipe=recipe, case=case)


@shape_class_property("P5", "attn")
def test_p5_pads_anywhere(attn_impl, backend, device, shape_class, data):
    count = data.draw(st.integers(1, 6), label="pads per token")
    case, recipe = _draw(data, shape_class, attn_impl, backend, device, k_extra=count)
    x = make_attn_inputs(case)
    first_tile = data.draw(st.booleans(), label="pad the whole first tile")
    if first_tile and recipe.tile is not None and recipe.tile <= MAX_PADDED_TILE:
        x_pad = pad_first_tile(x, data.draw(seeds, label="pad seed"), recipe.tile)
    else:
        x_pad = insert_pads(x, data.draw(seeds, label="pad seed"), count)
    inputs = {"inputs": x_pad, "inputs_b": x}
    golden_recipe = recipe.with_tiling("compacted")
    run_property("P5", "golden compacted: pads are bitwise neutral", R + "golden_bitwise",
                 inputs=inputs, params=recipe_params(golden_recipe), recipe=golden_recipe, case=case)
    _agree_with_original("padded", inputs, recipe, attn_impl, recipe, case)


@shape_class_property("P5", "attn")
def test_p5_permuted_indices(attn_impl, backend, device, shape_class, data):
    case, recipe = _draw(data, shape_class, attn_impl, backend, device)
    x = make_attn_inputs(case)
    inputs = {"inputs": permute_indices(x, data.draw(seeds, label="permutation seed")), "inputs_b": x}
    tiling = data.draw(st.sampled_from(["positional", "compacted"]), label="golden tiling")
    golden_recipe = recipe.with_tiling(tiling)
    _agree_with_original("permuted", inputs, golden_recipe, attn_impl, recipe, case)


@shape_class_property("P5", "attn")
def test_p5_duplicate_counts_twice(attn_impl, backend, device, shape_class, data):
    case, recipe = _draw(data, shape_class, attn_impl, backend, device, k_extra=2)
    x = make_attn_inputs(case)
    x_dup, pos, copies = duplicate_index(x, data.draw(seeds, label="duplicate seed"))
    inputs = {"inputs": x, "inputs_b": x_dup}
    params = {**recipe_params(recipe), "dup_pos": pos, "dup_copies": copies}
    tiling = data.draw(st.sampled_from(["positional", "compacted"]), label="golden tiling")
    golden_params = {**params, **recipe_params(recipe.with_tiling(tiling))}
    run_property("P5", "golden(dup) vs fp64 truth weighting the duplicate (1 + copies)",
                 R + "p5_dup_golden", inputs=inputs, params=golden_params, recipe=recipe, case=case)
    run_property("P5", "impl(dup) vs fp64 truth weighting the duplicate, P1 + P2", R + "p5_dup_impl",
                 inputs=inputs, impl=attn_impl, params=params, recipe=recipe, case=case)


# %% P6 sink semantics

SPECIAL_SINKS = [-math.inf, math.inf, 0.0, 1e30, -1e30]


def sink_values(heads: int, domain=None) -> st.SearchStrategy[list]:
    """Per-head sinks: +-inf, 0, +-1e30, and finite values around typical running maxima (only
    those inside an implementation's declared AttnDomain)."""
    one = st.one_of(st.sampled_from(SPECIAL_SINKS),
                    st.floats(-30, 30, allow_nan=False, width=32),
                    st.floats(-200, 200, allow_nan=False, width=32))
    if domain is not None:
        one = one.map(lambda v: v if domain.allows_sink_value(v) else _nearest_allowed(v, domain))
    return st.lists(one, min_size=heads, max_size=heads)


def _nearest_allowed(value: float, domain) -> float:
    """A sink inside `domain` standing in for one outside it (finite values clamp to +-30)."""
    for candidate in (max(-30.0, min(30.0, value)) if math.isfinite(value) else 0.0, 0.0, 100.0,
                      -100.0, -math.inf, math.inf):
        if domain.allows_sink_value(candidate):
            return candidate
    raise ValueError(f"no sink value inside {domain}")


def _need_neg_inf_sink(impl) -> None:
    """P6 compares with the implementation's own -inf-sink output: skip outside its domain."""
    if impl.domain is not None and not impl.domain.allows_sink("neg_inf"):
        pytest.skip(reason=f"{impl.spec} declares domain {impl.domain.describe()} without -inf "
                           f"sinks; this P6 check needs the implementation's -inf-sink output")


def _with_sinks(x: AttnInputs, sinks: list) -> AttnInputs:
    return x.replace(attn_sink=torch.tensor(sinks, dtype=torch.float32, device=x.attn_sink.device))


@shape_class_property("P6", "attn", not_applicable={
    "large_logits_sink": "every sink is -inf here (the class is P6's sink scaling test)"})
def test_p6_neg_inf_sink_is_no_sink(attn_impl, backend, device, shape_class, data):
    _need_neg_inf_sink(attn_impl)
    case, recipe = _draw(data, shape_class, attn_impl, backend, device)
    x = make_attn_inputs(case)
    x = _with_sinks(x, [-math.inf] * case.heads)
    run_property("P6", "impl(sink=-inf) vs fp64 softmax without a sink term", R + "p6_no_sink",
                 inputs={"inputs": x}, impl=attn_impl, params=recipe_params(recipe), recipe=recipe,
                 case=case)


@shape_class_property("P6", "attn")
def test_p6_sink_scaling(attn_impl, backend, device, shape_class, data):
    _need_neg_inf_sink(attn_impl)
    case, recipe = _draw(data, shape_class, attn_impl, backend, device)
    x = _with_sinks(make_attn_inputs(case), data.draw(sink_values(case.heads, attn_impl.domain),
                                                      label="sinks"))
    inputs, params = {"inputs": x}, recipe_params(recipe)
    golden_recipe = recipe.with_tiling(data.draw(st.sampled_from(["positional", "compacted"]),
                                                    label="golden tiling"))
    run_property("P6", "golden o(sink) = o(-inf) L / (L + exp(sink - M))", R + "p6_sink_scaling_golden",
                 inputs=inputs, params=recipe_params(golden_recipe), recipe=golden_recipe, case=case)
    run_property("P6", "impl o(sink) = impl o(-inf) L / (L + exp(sink - M)), finite; +inf: zeros",
                 R + "p6_sink_scaling_impl", inputs=inputs, impl=attn_impl, params=params,
                 recipe=recipe, case=case)


# %% P7 empty rows

def empty_some_tokens(x: AttnInputs, seed: int) -> AttnInputs:
    """Make tokens see nothing: each token's list becomes all pads with probability 1/3, and each
    batch's seqused_kv drops to a value in [0, S - 1] with probability 1/2 (its first tokens then
    have used <= 0). One drawn token and its batch are spared (always when T >= 2, with probability
    1/2 when T = 1), so the example keeps the shape class it was drawn for (e.g. several tiles)
    beside its empty tokens. Visibility only shrinks, so the NaN-poisoned rows stay unread."""
    gen = _gen(seed)
    T, K = x.sparse_indices.shape
    B, S = x.seqused_kv.shape[0], x.tokens_per_batch
    bad = _invalid_values(x)
    pads = bad.gather(1, torch.randint(0, bad.shape[1], (T, K), generator=gen))
    wipe = torch.rand(T, generator=gen) < 1 / 3
    small = torch.randint(0, S, (B,), generator=gen)
    shrink = torch.rand(B, generator=gen) < 0.5
    if T and (T >= 2 or bool(torch.rand(1, generator=gen) < 0.5)):
        kept = int(torch.randint(0, T, (1,), generator=gen))
        wipe[kept], shrink[kept // S] = False, False
    idx = torch.where(wipe[:, None], pads, x.sparse_indices.cpu().long())
    seqused = torch.where(shrink, torch.minimum(small, x.seqused_kv.cpu().long()), x.seqused_kv.cpu().long())
    return _with_indices(x, idx).replace(seqused_kv=seqused.to(torch.int32).to(x.seqused_kv.device))


@shape_class_property("P7", "attn")
def test_p7_empty_rows_are_exact_zeros(attn_impl, backend, device, shape_class, data):
    if attn_impl.domain is not None and attn_impl.domain.empty_rows_reason():
        pytest.skip(reason=attn_impl.domain.empty_rows_reason())
    case, recipe = _draw(data, shape_class, attn_impl, backend, device)
    x = empty_some_tokens(make_attn_inputs(case), data.draw(seeds, label="empty seed"))
    inputs, params = {"inputs": x}, recipe_params(recipe)
    run_property("P7", "golden: tokens without a valid key give exact zeros",
                 R + "p7_golden_empty_rows", inputs=inputs, params=params, recipe=recipe, case=case)
    run_property("P7", "impl: tokens without a valid key give exact zeros, others P1",
                 R + "p7_empty_rows", inputs=inputs, impl=attn_impl, params=params, recipe=recipe,
                 case=case)
