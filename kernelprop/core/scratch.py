"""Poisoned scratch: memory an implementation allocates without initializing holds NaN.

A kernel's workspaces (split-KV partials, gathered candidate rows, its output) come from the
caching allocator, which hands back whatever a previous kernel left there: in a serving engine,
NaN from padded batches or CUDA-graph capture. A test process instead gets fresh pages, mostly
zeros, which hide a read of memory the kernel never wrote (vLLM PR #47188, sglang PR #39288).
`poisoned_allocations()` makes every uninitialized allocation during an implementation's call
deterministic poison: torch.empty / empty_like / empty_strided / new_empty (and resize_) fill
floating tensors with NaN and integer tensors with their maximum (torch's
`fill_uninitialized_memory` under `use_deterministic_algorithms`, warn_only so that no op is
refused). `Impl.__call__` runs every call inside it, so every property of every op checks that
uninitialized memory never reaches a result: a correct kernel writes what it reads.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch


@contextmanager
def poisoned_allocations():
    """Inside: uninitialized torch allocations are NaN (floats) / the maximum (integers)."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = True
    try:
        yield
    finally:
        torch.utils.deterministic.fill_uninitialized_memory = fill
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
