"""A minimal adapter for the PTX audit demo (`./kp compile --impl sparse_attention=tests/planted/
sglang_decode_audit.py:sparse_decode_attention`): SGLang's Triton decode attention (PyPI sglang,
installed --no-deps at test time) over the sparse indices' valid rows, gathered into a page-size-1
KV buffer with one KV head (MQA: keys = values), per-head sinks, 8 KV splits. Not a verified
adapter (the adapters branch has those): the audit only needs its launches. SGLang's runtime
utilities (orjson, environment registry, device queries) are stubbed when they cannot be imported:
the decode kernels themselves need only torch and triton."""
import sys
import types

import torch


def _stub_sglang_runtime() -> None:
    """Make `sglang.kernels.ops.attention.decode_attention` importable without SGLang's runtime:
    its parent packages become plain namespace packages over the installed directories (their
    __init__ files import the whole server), and the two runtime modules it imports are stubs."""
    if "sglang.srt.environ" in sys.modules:
        return
    import importlib.util
    import pathlib

    root = pathlib.Path(importlib.util.find_spec("sglang").origin).parent
    for name in ("sglang", "sglang.kernels", "sglang.kernels.ops", "sglang.kernels.ops.attention", "sglang.srt"):
        package = types.ModuleType(name)
        package.__path__ = [str(root.joinpath(*name.split(".")[1:]))]
        sys.modules[name] = package

    class _Flag:
        def get(self):
            return False

    class _Envs:
        def __getattr__(self, name):
            return _Flag()

    environ = types.ModuleType("sglang.srt.environ")
    environ.envs = _Envs()
    utils = types.ModuleType("sglang.srt.utils")
    utils.get_device_core_count = lambda device_id=0: 132        # H100 SXM SMs
    utils.is_hip = lambda: False
    utils.is_gfx95_supported = lambda: False
    utils.is_gfx1250_supported = lambda: False
    sys.modules["sglang.srt.environ"] = environ
    sys.modules["sglang.srt.utils"] = utils


def sparse_decode_attention(q, ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices,
                            seqused_kv, attn_sink, *, window, tokens_per_batch, softmax_scale=None):
    _stub_sglang_runtime()
    from sglang.kernels.ops.attention.decode_attention import decode_attention_fwd

    from kernelprop.golden.attention import gather_kv

    T, H, D = q.shape
    kv = gather_kv(ori_kv, ori_block_table, cmp_kv, cmp_block_table, sparse_indices, seqused_kv,
                   window=window, tokens_per_batch=tokens_per_batch)
    counts = kv.valid.sum(1)
    buffer = kv.rows[kv.valid].reshape(-1, 1, D).contiguous()            # [N, 1 head, D]
    indptr = torch.zeros(T + 1, dtype=torch.int32)
    indptr[1:] = counts.cumsum(0)
    indices = torch.arange(buffer.shape[0], dtype=torch.int32)
    splits = 8
    o = torch.empty(T, H, D, dtype=q.dtype)
    logits = torch.empty(T, H, splits, D, dtype=torch.float32)
    lse = torch.empty(T, H, splits, dtype=torch.float32)
    scale = D ** -0.5 if softmax_scale is None else softmax_scale
    decode_attention_fwd(q, buffer, buffer, o, indptr, indices, logits, lse,
                         torch.full((T,), splits, dtype=torch.int32), splits, scale, 1.0, 1.0,
                         sinks=attn_sink)
    return o.float()
