"""P8-P11 for sparse attention, all bitwise: permuting physical pages (with the block tables),
token independence, memory safety (unread pool rows hold NaN; the output is finite and equals the
output with finite garbage there), and determinism. Transformed inputs keep every tensor's layout
(strides) so that only the values the property is about change."""
import torch
from hypothesis import strategies as st

from kernelprop.golden.attention_inputs import (AttnInputs, large_offset_base, live_pages,
                                                make_attn_inputs, read_rows, with_live_pages)
from kernelprop.properties.checks import run_property
from kernelprop.properties.replays_attention import recipe_params
from kernelprop.properties.attention_limits import AttnLimits
from kernelprop.properties.strategies import shape_class_property, seeds
from kernelprop.properties.attention_strategies import backend_limits, draw_attn

CPU_LIMITS = AttnLimits(batches=2, tokens_per_batch=2, heads=3, head_dim=24, page_size=8, window=8,
                    topk=12, extra=3, cmp_len=24)
MAX_TILES_CPU = 3   # interpreter cost is one iteration per tile and token: cap tiles per token
R = "kernelprop.properties.replays_attention:"
GARBAGE = ("zeros", "normal", "huge", "bf16_max")


def _draw(data, shape_class, impl, backend, device, **draw_kw):
    drawn = draw_attn(data, shape_class, impl=impl, backend=backend, device=device,
                      limits=backend_limits(backend, CPU_LIMITS), **draw_kw)
    case, recipe = drawn.case, drawn.recipe
    if impl.varies("tile") and backend != "cuda" and recipe.tile is not None:
        recipe = recipe.replace(tile=max(recipe.tile, -(-case.num_indices // MAX_TILES_CPU)))
    return case, recipe


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _like(src: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """`values` in a new tensor with src's dtype, device and strides (a strided view stays one)."""
    out = torch.empty_strided(src.shape, src.stride(), dtype=src.dtype, device=src.device)
    return out.copy_(values)


def _garbage(shape, kind: str, gen: torch.Generator) -> torch.Tensor:
    """Finite bf16 values of a kind: zeros, normal, huge (+-1e30 scale), the largest bf16."""
    if kind == "zeros":
        x = torch.zeros(shape)
    elif kind == "normal":
        x = torch.randn(shape, generator=gen)
    elif kind == "huge":
        x = torch.randn(shape, generator=gen) * 1e30
    else:
        sign = torch.randint(0, 2, shape, generator=gen) * 2 - 1
        x = sign * torch.finfo(torch.bfloat16).max
    return x.to(torch.bfloat16)


def _shift_pages(table: torch.Tensor, by: int) -> torch.Tensor:
    """Table entries at or past page -by moved by `by` pages; other entries (ids below, -1) to -1."""
    t = table.long()
    return torch.where(t + by >= 0, t + by, -1).to(table.dtype)


def _unread_to_garbage(pool: torch.Tensor, read: torch.Tensor, kind: str, gen: torch.Generator):
    """The pool's values with every row that `read` [pages, BS] marks unread replaced by garbage."""
    return torch.where(read[..., None], pool, _garbage(pool.shape, kind, gen).to(pool.device))


def _map_pools(x: AttnInputs, new_values) -> AttnInputs:
    """x with each cache pool and its block table replaced by new_values(pool name, pool, table)
    -> (pool values, table values), in the layouts (strides) of the tensors they replace."""
    changes = {}
    for pool_name, table_name in (("ori_kv", "ori_block_table"), ("cmp_kv", "cmp_block_table")):
        pool, table = getattr(x, pool_name), getattr(x, table_name)
        pool_values, table_values = new_values(pool_name, pool, table)
        changes[pool_name], changes[table_name] = _like(pool, pool_values), _like(table, table_values)
    return x.replace(**changes)


# %% P8 page permutation

def permute_pages(x: AttnInputs, seed: int) -> AttnInputs:
    """Relabel each pool's pages by a random permutation pi: page p moves to pi[p], and every block
    table entry p becomes pi[p] (entries that are not pages are left as they are)."""
    gen = _gen(seed)

    def relabel(_, pool, table):
        n = pool.shape[0]
        pi = torch.randperm(n, generator=gen).to(pool.device)
        moved = torch.empty_like(pool)
        moved[pi] = pool                                            # moved[pi[p]] = pool[p]
        t = table.long()
        is_page = (t >= 0) & (t < n)
        relabeled = torch.where(is_page, pi[t.clamp(0, max(n - 1, 0))], t) if n else t
        return moved, relabeled.to(table.dtype)
    return _map_pools(x, relabel)


@shape_class_property("P8", "attn")
def test_p8_page_permutation_is_bitwise_neutral(attn_impl, backend, device, shape_class, data):
    case, recipe = _draw(data, shape_class, attn_impl, backend, device)
    x = make_attn_inputs(case)
    x_b = permute_pages(x, data.draw(seeds, label="page permutation seed"))
    run_property("P8", "pages relabeled (pools and block tables) give bitwise equal output",
                 R + "impl_bitwise", inputs={"inputs": x, "inputs_b": x_b}, impl=attn_impl,
                 params={**recipe_params(recipe), "doc": "P8: bitwise equal after relabeling pages"},
                 recipe=recipe, case=case)


# %% P9 token independence

def change_other_tokens(x: AttnInputs, keep: torch.Tensor, seed: int, garbage: str) -> AttnInputs:
    """New data for every token outside `keep` [T] bool: its q rows and its indices; for batches
    without a kept token also seqused_kv and block-table rows; and every pool row no kept token
    reads (golden.attention_inputs.read_rows over the kept tokens' indices) becomes `garbage`. The kept
    tokens' q, indices, batch visibility, tables and read rows are unchanged."""
    gen = _gen(seed)
    T, H, D = x.q.shape
    B, S, W = x.seqused_kv.shape[0], x.tokens_per_batch, x.window
    BS = x.ori_kv.shape[1]
    dev = x.q.device
    keep_c = keep.cpu()
    read_ori, read_cmp = read_rows(x.replace(sparse_indices=torch.where(
        keep[:, None].to(dev), x.sparse_indices, torch.full_like(x.sparse_indices, -1))))
    batch_kept = keep_c.reshape(B, S).any(dim=1)                                        # [B]
    q_new = torch.randn(T, H, D, generator=gen).to(torch.bfloat16)
    q = torch.where(keep_c[:, None, None], x.q.cpu(), q_new)
    top = W + x.cmp_block_table.shape[1] * BS                           # indices stay in table range
    idx_new = torch.randint(-2, top + 3, x.sparse_indices.shape, generator=gen)
    idx = torch.where(keep_c[:, None], x.sparse_indices.cpu().long(), idx_new)
    used_new = torch.randint(0, top + 1, (B,), generator=gen)
    seqused = torch.where(batch_kept, x.seqused_kv.cpu().long(), used_new)
    read = {"ori_kv": read_ori, "cmp_kv": read_cmp}

    def new_pool(name, pool, table):
        table_new = torch.randint(0, max(pool.shape[0], 1), table.shape, generator=gen)
        t = torch.where(batch_kept[:, None], table.cpu().long(), table_new)
        return _unread_to_garbage(pool, read[name], garbage, gen), t.to(table.dtype).to(dev)
    return _map_pools(x.replace(q=_like(x.q, q.to(dev)), sparse_indices=_like(x.sparse_indices, idx.to(dev)),
                                seqused_kv=_like(x.seqused_kv, seqused.to(dev))), new_pool)


@shape_class_property("P9", "attn")
def test_p9_token_independence(attn_impl, backend, device, shape_class, data):
    case, recipe = _draw(data, shape_class, attn_impl, backend, device)
    T = case.tokens
    # one or two kept tokens: most of the data (other batches included) then changes
    kept = data.draw(st.sets(st.integers(0, T - 1), min_size=1, max_size=2), label="kept tokens")
    keep = [t in kept for t in range(T)]
    garbage = data.draw(st.sampled_from(GARBAGE), label="garbage")
    x = make_attn_inputs(case)
    x_b = change_other_tokens(x, torch.tensor(keep), data.draw(seeds, label="change seed"), garbage)
    tokens = [t for t in range(T) if keep[t]]
    run_property("P9", "kept tokens bitwise unchanged when other tokens' data changes",
                 R + "impl_bitwise", inputs={"inputs": x, "inputs_b": x_b}, impl=attn_impl,
                 params={**recipe_params(recipe), "tokens": tokens,
                         "doc": "P9: kept tokens bitwise equal after changing other tokens' data"},
                 recipe=recipe, case=case)


# %% P10 memory safety

def fill_unread_rows(x: AttnInputs, seed: int, garbage: str) -> AttnInputs:
    """Every pool row no valid index reaches (NaN in make_attn_inputs) becomes finite garbage;
    in a large-offset pool only the live pages (the pages below them were never written and no
    table names them: golden.attention_inputs.large_offset_base), so the rest stays unallocated."""
    base = large_offset_base(x.cmp_kv)
    if base:
        live = fill_unread_rows(x.replace(cmp_kv=live_pages(x.cmp_kv),
                                          cmp_block_table=_shift_pages(x.cmp_block_table, -base)),
                                seed, garbage)
        return live.replace(cmp_kv=with_live_pages(live.cmp_kv, x.cmp_kv.shape[0]),
                            cmp_block_table=x.cmp_block_table)
    gen = _gen(seed)
    read_ori, read_cmp = read_rows(x)
    read = {"ori_kv": read_ori, "cmp_kv": read_cmp}

    def fill(name, pool, table):
        return _unread_to_garbage(pool, read[name], garbage, gen), table
    return _map_pools(x, fill)


@shape_class_property("P10", "attn")
def test_p10_unread_rows_never_matter(attn_impl, backend, device, shape_class, data):
    case, recipe = _draw(data, shape_class, attn_impl, backend, device)
    case = case.replace(nan_unused=True)
    x = make_attn_inputs(case)
    garbage = data.draw(st.sampled_from(GARBAGE), label="garbage")
    x_b = fill_unread_rows(x, data.draw(seeds, label="garbage seed"), garbage)
    run_property("P10", "NaN vs finite garbage in unread rows: finite, bitwise equal output",
                 R + "p10_unread_rows", inputs={"inputs": x, "inputs_b": x_b}, impl=attn_impl,
                 params=recipe_params(recipe), recipe=recipe, case=case)


# %% P11 determinism

@shape_class_property("P11", "attn")
def test_p11_reruns_are_bitwise_equal(attn_impl, backend, device, shape_class, data):
    case, recipe = _draw(data, shape_class, attn_impl, backend, device)
    run_property("P11", "two runs on the same inputs are bitwise equal", R + "impl_bitwise",
                 inputs={"inputs": make_attn_inputs(case)}, impl=attn_impl,
                 params={**recipe_params(recipe), "doc": "P11: rerun bitwise equal"},
                 recipe=recipe, case=case)
