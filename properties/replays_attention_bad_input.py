"""P13 (bad input) for sparse attention: its corruptions, their replay and its argument table
(kernelprop.core.registry: Op.bad_input). Same verdict rules as properties/replays_bad_input.py."""
from __future__ import annotations

import torch

from kernelprop.core.evidence import Outcome
from kernelprop.golden.attention import valid_index_mask, visible_lengths
from kernelprop.golden.attention_inputs import AttnCase
from kernelprop.golden.rmsnorm_inputs import NormRecipe
from kernelprop.properties.attention_limits import AttnLimits
from kernelprop.properties.replays_bad_input import (BadInputTable, call_with_timeout, corrupt_tensor,
                                                     raise_outcome, same_outcome)

TENSORS = ("q", "ori_kv", "ori_block_table", "cmp_kv", "cmp_block_table", "sparse_indices",
           "seqused_kv", "attn_sink")
BAD_DTYPES = {  # per argument: dtypes the contract (SPEC 2) excludes
    "q": ("float32", "float16", "float64", "int32"),
    "ori_kv": ("float32", "float16", "int8"),
    "cmp_kv": ("float32", "float16", "int8"),
    "ori_block_table": ("int64", "int16", "float32"),
    "cmp_block_table": ("int64", "int16", "float32"),
    "sparse_indices": ("int64", "int16", "float32"),
    "seqused_kv": ("int64", "float32"),
    "attn_sink": ("bfloat16", "float64", "float16"),
}
# one size mismatch per argument: (dim, names a message may use: the argument or its partner)
SIZE_MISMATCH = {
    "q": ((-1, ("q", "ori_kv", "cmp_kv")), (1, ("q", "attn_sink"))),
    "ori_kv": ((-1, ("ori_kv", "q")), (1, ("ori_kv", "cmp_kv"))),
    "cmp_kv": ((-1, ("cmp_kv", "q")), (1, ("cmp_kv", "ori_kv"))),
    "ori_block_table": ((0, ("ori_block_table",)),),
    "cmp_block_table": ((0, ("cmp_block_table",)),),
    "sparse_indices": ((0, ("sparse_indices", "q")),),
    "seqused_kv": ((0, ("seqused_kv",)),),
    "attn_sink": ((0, ("attn_sink", "q")),),
}
BAD_SCALARS = {
    "tokens_per_batch": ("nondivisor", 0, -1, 2.0, True, "2"),
    "window": (0, -3, 1.5, None, "8"),
    "softmax_scale": (-1.0, 0.0, float("nan"), float("inf"), "0.1"),
}
BAD_RECIPES = {"NormRecipe": NormRecipe(), "str": "recip_sqrt", "dict": {"tile": 64, "inv": "rsqrt"},
               "int": 1}


def _tensor_names(arg: str, params: dict):
    """The names a message about the corrupted `arg` may use."""
    if params["kind"] == "size":
        for dim, names in SIZE_MISMATCH[arg]:
            if dim == params["dim"]:
                return names
    if params["kind"] == "device":
        return (arg, "q")  # a mismatch involves the reference tensor too
    return (arg,)


def _bad_scalar(name: str, value, T: int):
    if value == "nondivisor":  # a tokens_per_batch that does not divide T
        return T + 1
    return value


def _call(x, recipe=None, **overrides):
    args = [overrides.pop(n, getattr(x, n)) for n in TENSORS]
    kwargs = dict(window=x.window, tokens_per_batch=x.tokens_per_batch, softmax_scale=x.softmax_scale)
    kwargs.update(overrides)
    if recipe is not None:
        kwargs["recipe"] = recipe
    return args, kwargs


def _valid_positions(x):
    """[T, K] valid mask and, per valid position, (is_window [T, K], block column [T, K])."""
    valid = valid_index_mask(x.sparse_indices, x.seqused_kv, window=x.window,
                             tokens_per_batch=x.tokens_per_batch)
    r = x.sparse_indices.long()
    is_win = valid & (r < x.window)
    slot = torch.where(is_win, r, r - x.window)
    return valid, is_win, slot // x.ori_kv.shape[1]


def _oob_indices(x, seed: int):
    """sparse_indices with some positions replaced by out-of-range values (never valid ones), and
    the same positions replaced by -1 instead."""
    gen = torch.Generator().manual_seed(seed)
    T, K = x.sparse_indices.shape
    _, win_valid, cmp_valid = visible_lengths(x.seqused_kv.cpu(), T, x.tokens_per_batch, x.window)
    W = x.window
    candidates = torch.stack([
        torch.full((T,), -2), torch.full((T,), -(2**31)), torch.full((T,), 2**31 - 1),
        W + cmp_valid,                                   # first compressed slot not yet visible
        W + cmp_valid + 1000,
        torch.where(win_valid < W, win_valid.clamp(min=0), torch.full((T,), -7)),  # window slot past used
    ], dim=1)                                                                       # [T, 6]
    pick = candidates.gather(1, torch.randint(candidates.shape[1], (T, K), generator=gen))
    where = torch.rand(T, K, generator=gen) < 0.4
    where[torch.randint(T, (1,), generator=gen), torch.randint(K, (1,), generator=gen)] = True
    idx = x.sparse_indices.cpu().long()
    bad = torch.where(where, pick, idx)
    # keep only replacements that are out of range for their token
    still_valid = valid_index_mask(bad, x.seqused_kv.cpu(), window=W, tokens_per_batch=x.tokens_per_batch)
    where = where & ~still_valid
    bad = torch.where(where, pick, idx)
    pads = torch.where(where, torch.full_like(idx, -1), idx)
    dev = x.sparse_indices.device
    return bad.int().to(dev), pads.int().to(dev)


def _bad_table(x, params: dict):
    """A valid index whose page id (or block column) lies outside its pool (or table)."""
    valid, is_win, blk = _valid_positions(x)
    which = params.get("which", "ori")
    mask = valid & (is_win if which == "ori" else ~is_win)
    if not bool(mask.any()):
        which = "cmp" if which == "ori" else "ori"
        mask = valid & (is_win if which == "ori" else ~is_win)
    if not bool(mask.any()):
        return None
    name = f"{which}_block_table"
    table = getattr(x, name).clone()
    pool = x.ori_kv if which == "ori" else x.cmp_kv
    if params["kind"] == "bad_column":      # drop the block columns the valid indices need
        need = int(blk[mask].max())
        return name, {name: table[:, :need]}
    t, k = (int(v) for v in mask.nonzero()[0])
    b = t // x.tokens_per_batch
    page = {"n_pages": pool.shape[0], "n_pages+5": pool.shape[0] + 5, "-1": -1,
            "int_max": 2**31 - 1}[params["page"]]
    table[b, int(blk[t, k])] = page
    return name, {name: table}


def p13_attention(inputs: dict, impl, params: dict) -> Outcome:
    """P13 for sparse_decode_attention: apply the corruption `params` to the valid inputs."""
    x = inputs["inputs"]
    fn = impl.fn
    kind, arg = params["kind"], params.get("arg")
    desc = f"{kind} {arg or ''} {params.get('detail', '')}".strip()
    if kind == "oob_index":
        bad, pads = _oob_indices(x, params["seed"])
        got = call_with_timeout(fn, *_call(x, sparse_indices=bad))
        ref = call_with_timeout(fn, *_call(x, sparse_indices=pads))
        if ref[0] != "ok":
            return same_outcome(desc + " (the -1 reference call failed)", *ref, None, (), False)
        return same_outcome(desc + ": out-of-range indices are ignored like -1", *got, ref[1], (),
                             False)
    if kind in ("bad_page", "bad_column"):
        found = _bad_table(x, params)
        if found is None:
            raise ValueError("P13 bad_page needs inputs with at least one valid index")
        name, override = found
        got = call_with_timeout(fn, *_call(x, **override))
        return raise_outcome(f"{desc} in {name}", *got, (name,), False)
    if kind == "scalar":
        value = _bad_scalar(arg, params["value"], x.q.shape[0])
        got = call_with_timeout(fn, *_call(x, **{arg: value}))
        return raise_outcome(f"{arg}={value!r}", *got, (arg,), False)
    if kind == "recipe":
        got = call_with_timeout(fn, *_call(x, recipe=BAD_RECIPES[params["value"]]))
        return raise_outcome(f"recipe of type {params['value']}", *got, ("recipe",), False)
    bad = corrupt_tensor(getattr(x, arg), params)
    got = call_with_timeout(fn, *_call(x, **{arg: bad}))
    names = _tensor_names(arg, params)
    if kind == "stride":
        ref = call_with_timeout(fn, *_call(x))
        return same_outcome(desc, *got, ref[1] if ref[0] == "ok" else None, names, True)
    return raise_outcome(desc, *got, names, False)


def corruption_list(*, recipes: bool, cuda: bool) -> list:
    """Every attention corruption (JSON-able dicts for p13_attention)."""
    out = [{"kind": "not_tensor", "arg": a} for a in TENSORS]
    out += [{"kind": "dtype", "arg": a, "dtype": d} for a in TENSORS for d in BAD_DTYPES[a]]
    out += [{"kind": "rank", "arg": a, "how": h} for a in TENSORS for h in ("add", "drop")]
    out += [{"kind": "size", "arg": a, "dim": d} for a in TENSORS for d, _ in SIZE_MISMATCH[a]]
    out += [{"kind": "stride", "arg": a} for a in TENSORS]
    out += [{"kind": "oob_index", "seed": s} for s in range(8)]
    out += [{"kind": "bad_page", "which": w, "page": p} for w in ("ori", "cmp")
            for p in ("n_pages", "n_pages+5", "-1", "int_max")]
    out += [{"kind": "bad_column", "which": w} for w in ("ori", "cmp")]
    out += [{"kind": "scalar", "arg": a, "value": v}
            for a in ("tokens_per_batch", "window", "softmax_scale") for v in BAD_SCALARS[a]]
    if recipes:
        out += [{"kind": "recipe", "value": v} for v in BAD_RECIPES]
    if cuda:
        out += [{"kind": "device", "arg": a} for a in TENSORS]
    return out


def _visible_slot_for_last_tokens(case: AttnCase) -> AttnCase:
    """Every batch's last token sees window slot 0, so a valid index exists (bad_page needs one)."""
    return case.replace(min_used=case.tokens_per_batch + 1, max_cmp_len=max(case.max_cmp_len, 3))


TABLE = BadInputTable(
    TENSORS, corruption_list, "kernelprop.properties.replays_attention_bad_input:p13_attention",
    "bad attention input: clear error naming the argument, or the documented semantics",
    AttnCase(seed=1, batches=2, tokens_per_batch=2, heads=3, head_dim=16, page_size=4, window=8,
             topk=6, max_cmp_len=12, min_used=3),
    case_kwargs={"pads": False, "limits": AttnLimits(batches=2, tokens_per_batch=2, heads=3, head_dim=16,
                                                   page_size=4, window=8, topk=8, extra=2, cmp_len=16)},
    fix_case=_visible_slot_for_last_tokens)
