"""Loads and stores outside the launch's tensors fail as on a GPU, not in the host's memory.

The raw interpreter dereferences a kernel's pointers in the host process: an offset that wraps
(row * stride in int32 past 2^31 elements) or runs past a tensor reads or writes whatever memory
lies there, and an unmapped address kills the whole run with a segmentation fault. On a GPU the
same access is an illegal-address error of that launch (or reads another allocation). Here every
masked load and store checks its active lanes against the storages of the launch's tensor
arguments (the tensors passed to the kernel, inside tuples and TensorDescriptors too) and raises
`IllegalAddress` for a lane outside all of them, so the implementation's call fails and the
property reports it. Block-pointer loads and stores (their own boundary checks) and atomics are
not checked.
"""
from __future__ import annotations

import numpy as np

_launch: list = []   # [(start, end) byte ranges] of the running launch's tensor storages


class IllegalAddress(Exception):
    """A kernel's load or store addressed memory outside every tensor argument of its launch."""


def _ranges(args) -> list:
    out = []

    def visit(a):
        if isinstance(a, (tuple, list)):
            for b in a:
                visit(b)
        elif hasattr(a, "base") and hasattr(a, "block_shape"):   # a TensorDescriptor
            visit(a.base)
        elif hasattr(a, "untyped_storage"):
            storage = a.untyped_storage()
            out.append((storage.data_ptr(), storage.data_ptr() + storage.nbytes()))

    visit(list(args))
    return out


def _check(op: str, ptrs, mask) -> None:
    if not _launch:
        return
    p = np.asarray(ptrs.data).astype(np.uint64, copy=False)
    active = p[np.broadcast_to(np.asarray(mask.data, dtype=bool), p.shape)]
    if active.size == 0:
        return
    size = np.uint64(np.dtype(_np_dtype(ptrs)).itemsize)
    inside = np.zeros(active.shape, dtype=bool)
    for start, end in _launch[-1]:
        inside |= (active >= np.uint64(start)) & (active + size <= np.uint64(end))
    if not bool(inside.all()):
        bad = active[~inside]
        raise IllegalAddress(f"{op} of {bad.size} element(s) outside every tensor argument of the "
                             f"launch (first at {int(bad[0]):#x}): an illegal address on a GPU")


def _np_dtype(ptrs):
    from triton.runtime.interpreter import _get_np_dtype

    return _get_np_dtype(ptrs.get_element_ty())


def install(patcher) -> None:
    from triton.runtime import interpreter as _interp

    raw_init = _interp.GridExecutor._init_args_hst
    raw_call = _interp.GridExecutor.__call__
    raw_load = _interp.InterpreterBuilder.create_masked_load
    raw_store = _interp.InterpreterBuilder.create_masked_store

    def init_args_hst(self, args_dev, kwargs):
        args_hst, kwargs_hst = raw_init(self, args_dev, kwargs)
        _launch.append(_ranges([args_hst, list(kwargs_hst.values())]))
        return args_hst, kwargs_hst

    def call(self, *args, **kwargs):
        depth = len(_launch)
        try:
            return raw_call(self, *args, **kwargs)
        finally:
            del _launch[depth:]

    def load(self, ptrs, mask, other, cache_modifier, eviction_policy, is_volatile):
        _check("load", ptrs, mask)
        return raw_load(self, ptrs, mask, other, cache_modifier, eviction_policy, is_volatile)

    def store(self, ptrs, value, mask, cache_modifier, eviction_policy):
        _check("store", ptrs, mask)
        return raw_store(self, ptrs, value, mask, cache_modifier, eviction_policy)

    patcher.set_attr(_interp.GridExecutor, "_init_args_hst", init_args_hst)
    patcher.set_attr(_interp.GridExecutor, "__call__", call)
    patcher.set_attr(_interp.InterpreterBuilder, "create_masked_load", load)
    patcher.set_attr(_interp.InterpreterBuilder, "create_masked_store", store)
