"""Shape-class coverage: which of the shapes where real kernels differ from toy ones each example hit.

A property no example reaches is not a property (SPEC section 4, "Power at real shapes"). The
classes below are the shapes where a bug can hide from interpreter-sized examples (the real-shape
mutants of impls/mutants show one per class): each is recognized from the
*inputs the property actually ran on* (after its transformations), never from what a strategy
meant to draw, so the counts are evidence. An op declares its classes as its Inputs type's
`SHAPE_CLASSES` and recognizes them in `Inputs.shape_classes(recipe)` (golden/values.py; e.g.
golden/attention_classes.py for sparse attention).

Collection: `run_property` calls `observe(case, inputs, recipe)` once per example (the first check
of an example; later checks on the same `case` object are the same example). Counts are kept per
test in this process, emitted as hypothesis `event()`s, and attached by conftest to the test's
report (`user_properties`), so the terminal table also works under pytest-xdist. `expect(...)`
(called by the draw helpers of properties/strategies.py) records the classes a test is meant to
reach; the table flags an expected class that got zero examples.
"""
from __future__ import annotations

from typing import Iterable, Optional



USER_PROPERTY = "kernelprop_shape_classes"


# %% classification

def classes_of(label: str) -> tuple:
    """The shape classes of the op labelled `label` (registry `Op.label`): its Inputs type's
    SHAPE_CLASSES (an op declares its own classes there and recognizes them in
    `Inputs.shape_classes(recipe)`, golden/values.py's protocol)."""
    from kernelprop.core.registry import OPS

    for o in OPS:
        if o.label == label:
            return tuple(o.inputs_type.SHAPE_CLASSES)
    raise ValueError(f"no registered op is labelled {label!r}")


def all_classes() -> tuple:
    """Every registered op's shape classes (registry order, each name once)."""
    from kernelprop.core.registry import OPS

    return tuple(dict.fromkeys(c for o in OPS if o.shape_classes for c in classes_of(o.label)))


def classify(inputs, recipe=None) -> frozenset:
    """Classes of an inputs object: its own `shape_classes(recipe)` (golden/values.py's protocol;
    the recipe under test gives e.g. attention's tile)."""
    own = getattr(inputs, "shape_classes", None)
    return frozenset(own(recipe)) if callable(own) else frozenset()


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
