"""Backend choice: CUDA when available, else the Triton interpreter on the CPU; `--backend` or
KERNELPROP_BACKEND overrides. Must run before triton is imported (it reads TRITON_INTERPRET then)."""
from __future__ import annotations

import os

from kernelprop.core import knobs


def choose_backend(requested: str | None) -> str:
    requested = requested or knobs.backend.get() or "auto"
    if requested not in ("auto", "cpu", "cuda"):
        raise ValueError(f"--backend must be auto, cpu or cuda, got {requested!r}")
    import torch

    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError("--backend cuda was asked for but torch sees no CUDA device")
    if requested == "cpu":
        os.environ["TRITON_INTERPRET"] = "1"
    else:
        os.environ.pop("TRITON_INTERPRET", None)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
        index = int(worker[2:]) if worker[2:].isdigit() else 0
        torch.cuda.set_device(index % torch.cuda.device_count())  # one GPU per xdist worker
    knobs.backend.set(requested)
    return requested


def device_name(backend: str) -> str:
    import torch

    if backend == "cuda":
        return torch.cuda.get_device_name()
    return "cpu (Triton interpreter)"
