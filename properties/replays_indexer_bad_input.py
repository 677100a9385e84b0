"""I6 (bad input as P13) for the indexer: its corruptions, their replay, and its P13 argument table
(kernelprop.core.registry: Op.bad_input). Same verdict rules as properties/replays_bad_input.py."""
from __future__ import annotations

from kernelprop.core.evidence import Outcome
from kernelprop.golden.indexer import IndexerCase, cmp_valid
from kernelprop.properties.indexer_limits import IndexerLimits
from kernelprop.properties.replays_bad_input import (BadInputTable, corrupt_tensor, raise_outcome,
                                                     same_outcome, call_with_timeout)

TENSORS = ("index_q", "index_k", "cmp_block_table", "weights", "seqused_kv")
BAD_DTYPES = {"index_q": ("float32", "float16"), "index_k": ("float32", "int8"),
              "cmp_block_table": ("int64", "float32"), "weights": ("bfloat16", "float64"),
              "seqused_kv": ("int64", "float32")}
SIZES = {"index_q": (-1, ("index_q", "index_k")), "index_k": (-1, ("index_k", "index_q")),
         "weights": (1, ("weights",)), "seqused_kv": (0, ("seqused_kv",)),
         "cmp_block_table": (0, ("cmp_block_table",))}
BAD_SCALARS = {"window": (0, -2, 1.5, None), "tokens_per_batch": ("nondivisor", 0, True),
               "topk": (0, -1, 2.5, "4")}
BAD_RECIPES = {"str": "fp32", "dict": {"score_dtype": "fp32"}, "int": 1}


def corruption_list(*, recipes: bool, cuda: bool) -> list:
    out = [{"kind": "not_tensor", "arg": a} for a in TENSORS]
    out += [{"kind": "dtype", "arg": a, "dtype": d} for a in TENSORS for d in BAD_DTYPES[a]]
    out += [{"kind": "rank", "arg": a, "how": h} for a in TENSORS for h in ("add", "drop")]
    out += [{"kind": "size", "arg": a, "dim": SIZES[a][0]} for a in TENSORS]
    out += [{"kind": "stride", "arg": a} for a in ("index_q", "index_k", "weights")]
    out += [{"kind": "bad_page", "page": p} for p in ("n_pages", "-1")]
    out += [{"kind": "scalar", "arg": a, "value": v} for a in BAD_SCALARS for v in BAD_SCALARS[a]]
    if recipes:
        out += [{"kind": "recipe", "value": v} for v in BAD_RECIPES]
    if cuda:
        out += [{"kind": "device", "arg": a} for a in TENSORS[1:]]
    return out


def _call(fn, x, recipe=None, **over):
    args = tuple(over.pop(n, getattr(x, n)) for n in TENSORS)
    kwargs = {**x.kwargs(), **over}
    if recipe is not None:
        kwargs["recipe"] = recipe
    return call_with_timeout(fn, args, kwargs)


def p13_indexer(inputs: dict, impl, params: dict) -> Outcome:
    x = inputs["inputs"]
    fn, kind, arg = impl.fn, params["kind"], params.get("arg")
    desc = f"{kind} {arg or ''}".strip()
    if kind == "scalar":
        value = params["value"]
        if value == "nondivisor":
            value = x.index_q.shape[0] + 1
        return raise_outcome(f"{arg}={value!r}", *_call(fn, x, **{arg: value}), (arg,), False)
    if kind == "recipe":
        return raise_outcome(f"recipe of type {params['value']}",
                              *_call(fn, x, recipe=BAD_RECIPES[params["value"]]), ("recipe",), False)
    if kind == "bad_page":
        valid = cmp_valid(x.seqused_kv, window=x.window, tokens_per_batch=x.tokens_per_batch,
                          tokens=x.index_q.shape[0])
        t = int(valid.argmax())
        if int(valid[t]) == 0:
            raise ValueError("I6 bad_page needs a token with a visible compressed slot")
        table = x.cmp_block_table.clone()
        table[t // x.tokens_per_batch, 0] = x.index_k.shape[0] if params["page"] == "n_pages" else -1
        return raise_outcome(f"{desc} in cmp_block_table", *_call(fn, x, cmp_block_table=table),
                              ("cmp_block_table",), False)
    bad = corrupt_tensor(getattr(x, arg), params)
    got = _call(fn, x, **{arg: bad})
    names = SIZES[arg][1] if kind == "size" else ((arg, "index_q") if kind == "device" else (arg,))
    if kind == "stride":
        ref = _call(fn, x)
        return same_outcome(desc, *got, ref[1] if ref[0] == "ok" else None, names, True)
    return raise_outcome(desc, *got, names, False)


def _with_visible_slot(case: IndexerCase) -> IndexerCase:
    return case.replace(max_cmp_len=max(case.max_cmp_len, 1), min_cmp_len=1)


TABLE = BadInputTable(
    TENSORS, corruption_list, "kernelprop.properties.replays_indexer_bad_input:p13_indexer",
    "bad indexer input: clear error naming the argument, or the documented semantics",
    IndexerCase(seed=3, batches=2, tokens_per_batch=2, heads=2, head_dim=8, page_size=4, window=4,
                topk=5, max_cmp_len=10, min_cmp_len=1),
    case_kwargs={"limits": IndexerLimits(batches=2, tokens_per_batch=2, heads=3, head_dim=16, page_size=4,
                                         window=8, topk=8, cmp_len=16)},
    fix_case=_with_visible_slot)
