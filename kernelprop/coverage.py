"""Shape-class coverage: which of the shapes where real kernels differ from toy ones each example hit.

A property no example reaches is not a property (SPEC section 4, "Power at real shapes"). The
classes below are the shapes where a bug can hide from interpreter-sized examples (the real-shape
mutants of impls/mutants show one per class): each is recognized from the
*inputs the property actually ran on* (after its transformations), never from what a strategy
meant to draw, so the counts are evidence.

Attention classes (SparseInputs + the recipe's tile):
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
                       lazily allocated: properties.strategies.OPT_IN_CLASSES)
Every other op declares its classes with its Inputs type (golden/values.py's protocol):
`SHAPE_CLASSES` names them and `shape_classes(recipe)` recognizes them in the inputs.

Collection: `run_property` calls `observe(case, inputs, recipe)` once per example (the first check
of an example; later checks on the same `case` object are the same example). Counts are kept per
test in this process, emitted as hypothesis `event()`s, and attached by conftest to the test's
report (`user_properties`), so the terminal table also works under pytest-xdist. `expect(...)`
(called by the draw helpers of properties/strategies.py) records the classes a test is meant to
reach; the table flags an expected class that got zero examples.
"""
from __future__ import annotations

import math
from typing import Iterable, Optional

import torch

ATTN_CLASSES = ("multi_tile", "many_heads", "mtp_depth", "npow2_default_scale",
                "large_logits_sink", "tc_adversarial", "reference", "engine_tables", "many_rows",
                "huge_scores", "large_offsets")
LARGE = 16.0          # |score| and |sink| from which "large logits x large sink" counts
SECOND_HEAD_BLOCK = 17
ROW_SWITCH = 64       # query rows above which kernels switch path (many_rows: T > ROW_SWITCH)
SENTINEL = -5e4       # huge_scores: every valid score of a token below it

USER_PROPERTY = "kernelprop_shape_classes"


# %% classification

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
    one page that two batches' reached columns (golden.inputs.reached_columns) both name?"""
    from kernelprop.golden.inputs import reached_columns  # local: golden imports nothing from here

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
    from kernelprop.golden.attention import gather_kv  # local: golden imports nothing from here

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


def classes_of(label: str) -> tuple:
    """The shape classes of the op labelled `label` (registry `Op.label`): attention's above, else
    the op's Inputs type's SHAPE_CLASSES (an op declares its own classes there and recognizes them
    in `Inputs.shape_classes()`)."""
    if label == "attn":
        return ATTN_CLASSES
    from kernelprop.registry import OPS

    for o in OPS:
        if o.label == label:
            return tuple(o.inputs_type.SHAPE_CLASSES)
    raise ValueError(f"no registered op is labelled {label!r}")


def all_classes() -> tuple:
    """Every registered op's shape classes (registry order, each name once)."""
    from kernelprop.registry import OPS

    return tuple(dict.fromkeys(c for o in OPS if o.shape_classes for c in classes_of(o.label)))


def classify(inputs, recipe=None) -> frozenset:
    """Classes of an inputs object (AttnInputs, or any Inputs with its own `shape_classes()`); the
    recipe gives the tile."""
    from kernelprop.golden.values import TensorArgs

    if getattr(type(inputs), "shape_classes", TensorArgs.shape_classes) is not TensorArgs.shape_classes:
        return frozenset(inputs.shape_classes())
    if hasattr(inputs, "sparse_indices"):
        return attn_classes(inputs, getattr(recipe, "tile", None))
    return frozenset()


# %% collection (per test, in this process)

_state: dict = {"nodeid": None, "counts": {}, "expected": None, "not_applicable": {},
                "examples": 0, "last_case": None}


def begin(nodeid: str, marker=None) -> None:
    """Start a test; `marker` is its shape_classes mark (properties.strategies.over_shape_classes),
    whose not_applicable {class: why} the table prints."""
    na = dict(marker.kwargs.get("not_applicable", {})) if marker is not None else {}
    _state.update(nodeid=nodeid, counts={}, expected=None, not_applicable=na, examples=0,
                  last_case=None)


def expect(classes: Iterable[str], not_applicable: Optional[dict] = None) -> None:
    """The classes the running test draws (called by the draw helpers on every example)."""
    if _state["expected"] is None:
        _state["expected"] = tuple(classes)
        _state["not_applicable"].update(not_applicable or {})


def observe(case, inputs: dict, recipe=None) -> frozenset:
    """Count one example's classes (once per `case` object); returns them."""
    if case is None or case is _state["last_case"]:
        return frozenset()
    _state["last_case"] = case
    first = next(iter(inputs.values()), None) if inputs else None
    found = classify(first, recipe) if first is not None else frozenset()
    _state["examples"] += 1
    for name in found:
        _state["counts"][name] = _state["counts"].get(name, 0) + 1
    try:
        from hypothesis import currently_in_test_context, event
        if currently_in_test_context():
            for name in sorted(found):
                event(f"shape class: {name}")
    except ImportError:  # pragma: no cover (replay runs without hypothesis)
        pass
    return found


def snapshot() -> Optional[dict]:
    """JSON-able counts of the running test (what conftest attaches to its report), or None."""
    if _state["expected"] is None and not _state["counts"]:
        return None
    return {"examples": _state["examples"], "counts": dict(_state["counts"]),
            "expected": list(_state["expected"] or ()),
            "not_applicable": dict(_state["not_applicable"])}


def missing(snap: dict) -> list:
    """Expected classes that got zero examples."""
    return [c for c in snap.get("expected", ()) if not snap["counts"].get(c)]


def by_test(rows: list) -> list:
    """Merge the snapshots of one test's parametrizations (node ids differing only in [...])."""
    merged: dict = {}
    for nodeid, snap in rows:
        base = nodeid.split("[", 1)[0]
        into = merged.setdefault(base, {"examples": 0, "counts": {}, "expected": [],
                                        "not_applicable": {}})
        into["examples"] += snap.get("examples", 0)
        for c, n in snap.get("counts", {}).items():
            into["counts"][c] = into["counts"].get(c, 0) + n
        into["expected"] += [c for c in snap.get("expected", ()) if c not in into["expected"]]
        into["not_applicable"].update(snap.get("not_applicable", {}))
    return sorted(merged.items())


def table_lines(rows: list) -> list:
    """rows: (nodeid, snapshot), merged per test function. One line per test: examples, then
    count per class; a class the test draws that got zero is flagged '0!', one it does not draw
    shows '-'."""
    seen = [c for _, snap in rows for c in (*snap.get("expected", ()), *snap.get("counts", {}))]
    names = list(dict.fromkeys(all_classes() + tuple(seen)))
    short = {c: c[:12] for c in names}
    head = f"{'examples':>8} " + " ".join(f"{short[c]:>12}" for c in names) + "  test"
    lines = [head]
    for nodeid, snap in by_test(rows):
        cells = []
        for c in names:
            n = snap["counts"].get(c, 0)
            if c in snap.get("expected", ()):
                cells.append(f"{n if n else '0!':>12}")
            else:
                cells.append(f"{n if n else '-':>12}")
        lines.append(f"{snap['examples']:>8} " + " ".join(cells) + f"  {nodeid}")
    return lines


def report_rows(stats: dict) -> list:
    """(nodeid, snapshot) of every test report carrying a coverage snapshot (xdist-safe: the
    snapshots travel in user_properties)."""
    return [(rep.nodeid, value) for key in ("passed", "failed") for rep in stats.get(key, [])
            if getattr(rep, "when", "") == "call"
            for name, value in getattr(rep, "user_properties", []) if name == USER_PROPERTY]


def terminal_summary(terminalreporter) -> None:
    """The 'kernelprop shape classes' section: per test, examples per class; '0!' flags a class
    the test draws that no example reached (a failing test stops early, so only passed tests
    are flagged in the closing line)."""
    rows = report_rows(terminalreporter.stats)
    if not rows:
        return
    terminalreporter.section("kernelprop shape classes (examples per class, from the inputs)")
    for line in table_lines(rows):
        terminalreporter.write_line(line)
    passed = {rep.nodeid for rep in terminalreporter.stats.get("passed", [])}
    zero = [(nodeid, missing(snap)) for nodeid, snap in rows if nodeid in passed and missing(snap)]
    # per parametrization: a class parametrization none of whose examples reached its class
    for nodeid, classes in zero:
        terminalreporter.write_line(f"ZERO examples of {', '.join(classes)}: {nodeid}")
    notes = {f"{c}: {why}" for _, snap in rows for c, why in snap.get("not_applicable", {}).items()}
    for note in sorted(notes):
        terminalreporter.write_line(f"not applicable (by design) {note}")
