"""JSON-able plain values: what reports, replay and the Inputs' describe() print (no hypothesis)."""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

SMALL = 256          # tensors with at most this many elements are printed in full


def plain(obj: Any) -> Any:
    """JSON-able form: dataclasses and dicts recurse, tensors summarized, non-finite floats as
    the strings "inf", "-inf", "nan" (strict JSON)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return tensor_summary(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else ("nan" if math.isnan(obj) else
                                               ("inf" if obj > 0 else "-inf"))
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    return repr(obj)


def tensor_summary(x: torch.Tensor) -> dict:
    out = {"shape": list(x.shape), "dtype": str(x.dtype).replace("torch.", ""),
           "stride": list(x.stride()), "contiguous": x.is_contiguous(), "device": str(x.device)}
    if x.numel() <= SMALL:
        out["values"] = plain(x.detach().cpu().tolist())
    elif x.is_floating_point():
        finite = x[torch.isfinite(x)].double()
        out["nan"] = int(torch.isnan(x).sum())
        out["absmax"] = float(finite.abs().max()) if finite.numel() else None
    return out


def from_plain(cls: type, value: Any, default: Any = None) -> Any:
    """The `cls` value a params entry holds: the object itself (params made in a test), or built
    from its plain() dict (params read back from a report's JSON); `default` where it is absent."""
    if value is None or value == {}:
        return default
    return value if isinstance(value, cls) else cls(**value)
