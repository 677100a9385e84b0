"""python -m kernelprop replay REPORT [--impl KIND=PATH_OR_MODULE:CALLABLE] [--backend B] [--json]

Reruns a saved counterexample without hypothesis: loads REPORT (a report.json or its directory)
and its inputs.pt, rebuilds the inputs objects and the implementation (the one the report names,
or --impl to try another, e.g. a fixed kernel), calls the property's replay function on them,
and prints golden.metrics.compare() and the property's check.

Exit status: 1 while the failure reproduces (the check fails or the replay function raises),
0 once it passes, 2 when the report cannot be replayed (missing files, an implementation that
cannot take the recorded recipe, ...).

Nothing here imports hypothesis, so a report replays after any hypothesis upgrade.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import traceback
from pathlib import Path

from kernelprop.core import knobs

EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2


class ReplayError(Exception):
    """The report cannot be replayed (exit 2)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m kernelprop replay",
                                description="Rerun a saved counterexample (no hypothesis needed).")
    p.add_argument("report", help="report.json, or the report directory holding it")
    p.add_argument("--impl", action="append", default=[], metavar="KIND=PATH_OR_MODULE:CALLABLE",
                   help="replay against another implementation of KIND (e.g. the fixed kernel)")
    p.add_argument("--backend", default=None, choices=["auto", "cpu", "cuda"],
                   help="CUDA if available, else the Triton CPU interpreter (KERNELPROP_BACKEND)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    return p


def load_report(path: str | os.PathLike) -> tuple[Path, dict]:
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    if not path.is_file():
        raise ReplayError(f"no report at {path}")
    data = json.loads(path.read_text())
    if not str(data.get("schema", "")).startswith("kernelprop-report/"):
        raise ReplayError(f"{path} is not a kernelprop report (schema {data.get('schema')!r})")
    return path, data


def load_inputs(report_path: Path, data: dict, device: str) -> tuple[dict, dict]:
    """{name: AttnInputs/NormInputs} on `device`, and the saved outcome tensors."""
    import torch

    from kernelprop.core.evidence import resolve

    file = report_path.parent / data.get("inputs_file", "inputs.pt")
    if not file.is_file():
        raise ReplayError(f"the report's tensors are missing: {file}")
    saved = torch.load(file, map_location="cpu", weights_only=True)
    inputs = {}
    for name, entry in saved["inputs"].items():
        cls = resolve(entry["type"])
        state = {k: (v.to(device) if isinstance(v, torch.Tensor) else v)
                 for k, v in entry["state"].items()}
        inputs[name] = cls.from_state_dict(state)
    return inputs, saved.get("outcome") or {}


def _resolve_spec(spec: str, recorded_cwd: str | None) -> str:
    """A file spec relative to the directory pytest ran in still resolves from elsewhere."""
    where, sep, attr = spec.rpartition(":")
    looks_like_file = where.endswith(".py") or "/" in where or where.startswith(".")
    if looks_like_file and not Path(where).expanduser().is_absolute() and not Path(where).exists() \
            and recorded_cwd and (Path(recorded_cwd) / where).exists():
        return f"{Path(recorded_cwd) / where}{sep}{attr}"
    return spec


def build_impl(data: dict, overrides: list[str]):
    from kernelprop.core.impl import make_impl, parse_impl_option

    info = data.get("impl") or {}
    kind = info.get("kind")
    targets = {}
    for value in overrides:
        try:
            k, target = parse_impl_option(value)
        except ValueError as err:
            raise ReplayError(str(err)) from err
        targets[k] = target
    unused = set(targets) - {kind}
    if unused:
        print(f"replay: note: --impl {', '.join(sorted(unused))} unused (the report's "
              f"implementation is {kind})", file=sys.stderr)
    if kind is None:
        return None
    spec = targets.get(kind) or _resolve_spec(info.get("spec") or "", info.get("cwd"))
    try:
        return make_impl(kind, spec or None)
    except (ValueError, ImportError) as err:
        raise ReplayError(f"cannot load {kind} implementation {spec!r}: {err}") from err


def check_replay_recipe(impl, data: dict, inputs: dict) -> None:
    """An --impl that cannot take the recorded recipe cannot replay the report (not a fix). A
    shape-dependent recipe is resolved on the stored inputs, as the draw resolved it."""
    recipe = data.get("recipe")
    if impl is None or not isinstance(recipe, dict):
        return
    from kernelprop.core.plain import from_plain
    from kernelprop.core.registry import BY_KIND

    recipe_type = BY_KIND[impl.kind].recipe_type
    if data.get("recipe_type") != recipe_type.__name__:
        return
    try:
        wanted = from_plain(recipe_type, recipe)
    except (TypeError, ValueError):
        return
    example = inputs.get("inputs") if impl.shape_dependent else None
    if not impl.supports(wanted, example):
        raise ReplayError(impl.unsupported_reason(wanted))


def replay(report: str | os.PathLike, impl_overrides: list[str] = (), backend: str | None = None):
    """Rerun one report; returns (verdict, comparison dict or None, impl, data)."""
    from kernelprop.core.backend import choose_backend

    backend = choose_backend(backend)  # before anything imports triton
    from kernelprop.faithful import enter_for_backend

    enter_for_backend(backend)  # the same faithful interpreter as the suite's run (SPEC section 8)
    device = "cuda" if backend == "cuda" else "cpu"
    path, data = load_report(report)
    if data.get("stale_evidence"):
        raise ReplayError("this report's failing example raised before its comparison, so its "
                          "inputs were never recorded; reproduce it with the hypothesis decorator "
                          f"in report.md: {(data.get('hypothesis') or {}).get('decorator')}")
    inputs, _ = load_inputs(path, data, device)
    impl = build_impl(data, list(impl_overrides))

    from kernelprop.core.evidence import resolve
    from kernelprop.core.verdict import check_outcome, comparison, derived_truth, exception_verdict

    fn_name = (data.get("replay") or {}).get("function")
    if not fn_name:
        raise ReplayError("the report names no replay function")
    try:
        fn = resolve(fn_name)
    except (ImportError, AttributeError) as err:
        raise ReplayError(f"replay function {fn_name} not found: {err}") from err
    params = (data.get("replay") or {}).get("params") or {}
    check_replay_recipe(impl, data, inputs)
    try:
        outcome = fn(inputs, impl, params)
    except Exception as err:  # noqa: BLE001
        traceback.print_exc()
        return exception_verdict(err, ""), None, impl, data
    verdict = check_outcome(outcome)
    truth, source = derived_truth(inputs, outcome)
    verdict.add_truth(outcome.truth if outcome.truth is not None else truth)
    comp = comparison(outcome, truth)
    comp["truth_source"] = "the property's own fp64 truth" if outcome.truth is not None else source
    return verdict, comp, impl, data


def _was(data: dict) -> str:
    f = data.get("failure") or {}
    worst = f.get("worst")
    try:
        worst = float(worst)
    except (TypeError, ValueError):
        worst = math.nan
    if f.get("kind") == "exception":
        return "raised"
    label = "differing elements" if f.get("kind") == "bitwise" else "worst |a - e| / bound"
    return f"{label} {worst:.4g}"


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        verdict, comp, impl, data = replay(args.report, args.impl, args.backend)
    except ReplayError as err:
        print(f"replay: {err}", file=sys.stderr)
        return EXIT_ERROR
    from kernelprop.core.backend import device_name
    from kernelprop.commands.report import plain

    code = EXIT_FAIL if verdict.failing else EXIT_PASS
    if args.json:
        print(json.dumps(plain({"report": str(args.report), "reproduces": verdict.failing,
                                "verdict": verdict.to_dict(),
                                "metrics": comp and comp["metrics"],
                                "impl": getattr(impl, "spec", None)}), allow_nan=False))
        return code
    backend = knobs.backend.get() or "cpu"
    print(f"replay {data.get('property_id')} {data.get('check')}: {data.get('nodeid')}")
    print(f"  impl {impl.kind}={impl.spec}" if impl is not None else "  impl: none")
    print(f"  backend {backend} ({device_name(backend)}); report run {data.get('run_id')}, "
          f"then {_was(data)}")
    if data.get("bound_doc"):
        print(f"  bound: {data['bound_doc']}")
    print(f"  check: {verdict.line()}")
    if comp is not None:
        print("  " + comp["text"].replace("\n", "\n  "))
        if comp.get("truth_source"):
            print(f"  truth: {comp['truth_source']}")
    if verdict.failing:
        print("STILL FAILS: the counterexample reproduces (exit 1)")
    else:
        print("PASSES: the counterexample no longer fails (exit 0)")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
