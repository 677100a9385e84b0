"""P13 (bad input): the verdict rules and tensor corruptions every op's argument table uses
(`BadInputTable`, kernelprop.core.registry: Op.bad_input; each op's table is in its own
properties/replays_<op>_bad_input.py; no hypothesis here).

A corruption is a JSON-able dict `params` applied to VALID inputs (an op's Inputs), so a
counterexample report saves the valid tensors plus the dict and a replay rebuilds the same bad call.
Each corruption either
  * must raise: TypeError or ValueError (NotImplementedError where `params["unsupported"]`) whose
    message names one of the arguments in `expect_names` (as a whole word), within TIMEOUT_S
    (a hang, any other exception, or a returned result fails), or
  * is accepted semantics ("accept"): the call must succeed and equal, bitwise, the call on an
    equivalent valid input (out-of-range indices are ignored, as if they were -1), or
  * may do either ("raise_or_same"): a non-unit last-dim stride may be rejected (naming the
    argument) or accepted with the result of the contiguous input, bitwise.

Outcomes are bitwise: for raising checks, actual = [0] when the verdict holds, [1] otherwise, with
the verdict (what was raised or returned) in `bound_doc` and `metrics`.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Callable

import torch

from kernelprop.core.evidence import Outcome

TIMEOUT_S = 120.0   # a call that takes longer is a hang (first GPU compile included)
DTYPES = {"float32": torch.float32, "float16": torch.float16, "float64": torch.float64,
          "bfloat16": torch.bfloat16, "int8": torch.int8, "int16": torch.int16,
          "int32": torch.int32, "int64": torch.int64, "bool": torch.bool}
# %% the verdict

def names_any(message: str, names) -> bool:
    """True when the message names one of `names` as a whole identifier (q is not in seqused_kv)."""
    return any(re.search(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])", message) for n in names)


def call_with_timeout(fn, args, kwargs, timeout: float = TIMEOUT_S):
    """("ok", result) | ("raised", exception) | ("hang", None); the call runs in a daemon thread."""
    box = {}

    def run():
        try:
            box["ok"] = fn(*args, **kwargs)
        except BaseException as err:  # noqa: BLE001  (a crash is an outcome here)
            box["raised"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return "hang", None
    return ("raised", box["raised"]) if "raised" in box else ("ok", box.get("ok"))


def _describe(status: str, value) -> str:
    if status == "hang":
        return f"no answer within {TIMEOUT_S:.0f} s (hang)"
    if status == "raised":
        return f"raised {type(value).__name__}: {str(value)[:300]}"
    shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
    return f"returned {shape} instead of raising"


def raise_outcome(desc: str, status: str, value, names, unsupported: bool) -> Outcome:
    allowed = (TypeError, ValueError) + ((NotImplementedError,) if unsupported else ())
    ok = status == "raised" and isinstance(value, allowed) and (
        isinstance(value, NotImplementedError) or names_any(str(value), names))
    want = "/".join(t.__name__ for t in allowed)
    doc = (f"P13 {desc}: expected {want} naming {' or '.join(names)}; "
           f"{_describe(status, value)}")
    flag = torch.tensor([0.0 if ok else 1.0])
    return Outcome(actual=flag, expected=torch.zeros(1), bound=None, bound_doc=doc,
                   metrics={"verdict": "ok" if ok else "bad", "got": _describe(status, value)})


def same_outcome(desc: str, status: str, value, reference, names, may_raise: bool) -> Outcome:
    """Accepted input: the result must equal `reference` bitwise (or, if may_raise, a clear error)."""
    if status == "ok" and isinstance(value, torch.Tensor) and isinstance(reference, torch.Tensor) \
            and value.shape == reference.shape and value.dtype == reference.dtype:
        return Outcome(actual=value, expected=reference, bound=None,
                       bound_doc=f"P13 {desc}: accepted, so equal bitwise to the equivalent valid call")
    if may_raise and status == "raised":
        return raise_outcome(desc, status, value, names, False)
    doc = (f"P13 {desc}: expected {'a clear error naming ' + ' or '.join(names) + ' or ' if may_raise else ''}"
           f"the result of the equivalent valid call; {_describe(status, value)}")
    return Outcome(actual=torch.ones(1), expected=torch.zeros(1), bound=None, bound_doc=doc,
                   metrics={"verdict": "bad", "got": _describe(status, value)})


# %% tensor corruptions (shared)

def _other_device(t: torch.Tensor) -> torch.Tensor:
    return t.to("cpu") if t.device.type == "cuda" else t.to("cuda")


def strided_last(t: torch.Tensor) -> torch.Tensor:
    """Same values, last-dim stride 2 (a view into a wider buffer)."""
    big = torch.zeros(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype, device=t.device)
    big[..., ::2] = t
    return big[..., ::2]


def _grow(t: torch.Tensor, dim: int) -> torch.Tensor:
    """One more slice along `dim` (a copy of the last one, or zeros if the dim is empty)."""
    if t.shape[dim] == 0:
        shape = list(t.shape)
        shape[dim] = 1
        return torch.zeros(shape, dtype=t.dtype, device=t.device)
    return torch.cat([t, t.narrow(dim, t.shape[dim] - 1, 1)], dim=dim)


def corrupt_tensor(t: torch.Tensor, params: dict):
    kind = params["kind"]
    if kind == "not_tensor":
        return t.tolist()
    if kind == "dtype":
        return t.to(DTYPES[params["dtype"]])
    if kind == "rank":  # add: a leading dim; drop: the first dim; scalar: a 0-dim tensor
        how = params["how"]
        if how == "add":
            return t.unsqueeze(0)
        return t.reshape(-1)[0] if how == "scalar" or t.dim() == 1 else t[0]
    if kind == "size":
        return _grow(t, params["dim"])
    if kind == "stride":
        return strided_last(t)
    if kind == "device":
        return _other_device(t)
    raise ValueError(f"unknown tensor corruption kind {kind!r}")


def _unchanged(case):
    return case


@dataclass(frozen=True)
class BadInputTable:
    """What P13 needs of one op: its corruptions, the replay that applies them, the check text, a
    fixed valid example (every corruption runs once on it) and how drawn examples are kept valid."""

    tensors: tuple                        # tensor arguments, in call order
    corruptions: Callable                 # (*, recipes: bool, cuda: bool) -> list of JSON dicts
    replay: str                           # "module:fn" (properties/checks.run_property)
    check: str                            # the check's one-line description
    fixed_case: object                    # a valid Case
    case_kwargs: dict = field(default_factory=dict)  # extra keywords for the op's case strategy
    fix_case: Callable = _unchanged       # Case -> Case applied to drawn examples


_HERE = "kernelprop.properties.replays_bad_input"
