"""Kernel benchmark (a script, not a test): sparse decode attention and RMSNorm on the GPU.

    python benchmarks/bench_kernels.py [--json PATH] [--small]

Prints, from ONE run on one card: the card's copy bandwidth (torch clone of 1 GiB, read + write),
the sparse attention kernel's median time (triton.testing.do_bench) at the DeepSeek-V4 decode shape
(T=128, H=64, D=512, 128 window + 512 compressed indices, pages of 128, S=2), the bytes that must
move (q, each token's gathered rows, the fp32 output, the indices) and the achieved fraction of the
copy bandwidth, the speed ratio against a torch eager reference (gather + matmul + softmax), and
RMSNorm [32768, 4096] bf16 against F.rms_norm and torch.compile(F.rms_norm). `--small` shrinks every
shape so the script can be smoke-tested on the CPU interpreter (timings then mean nothing).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from kernelprop.golden.inputs import AttnCase, make_attn_inputs  # noqa: E402


def bench(fn, *, cuda: bool, reps: int = 50) -> float:
    """Median milliseconds per call."""
    if cuda:
        import triton.testing

        return float(triton.testing.do_bench(fn, warmup=25, rep=reps, return_mode="median"))
    fn()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return sorted(times)[1]


def copy_bandwidth(cuda: bool, nbytes: int) -> float:
    """Bytes/s of a device-to-device clone (counts read + write)."""
    src = torch.empty(nbytes // 2, dtype=torch.bfloat16, device="cuda" if cuda else "cpu")
    ms = bench(lambda: src.clone(), cuda=cuda)
    return 2 * src.numel() * 2 / (ms * 1e-3)


def torch_eager_attention(x):
    """Plain torch reference: gather rows, fp32 scores, softmax with sink, P.V."""
    from kernelprop.golden.attention import gather_kv

    kv = gather_kv(x.ori_kv, x.ori_block_table, x.cmp_kv, x.cmp_block_table, x.sparse_indices,
                   x.seqused_kv, window=x.window, tokens_per_batch=x.tokens_per_batch)
    rows = kv.rows.float()                                                   # [T, K, D]
    scale = x.q.shape[-1] ** -0.5 if x.softmax_scale is None else x.softmax_scale
    s = torch.einsum("thd,tkd->thk", x.q.float(), rows) * scale
    s = s.masked_fill(~kv.valid[:, None, :], float("-inf"))
    sink = x.attn_sink[None, :, None].expand(s.shape[0], -1, 1)
    p = torch.softmax(torch.cat([s, sink], dim=-1), dim=-1)[..., :-1]
    return torch.einsum("thk,tkd->thd", p, rows)


def attention_bench(cuda: bool, small: bool, bandwidth: float) -> dict:
    from kernelprop.kernels import sparse_decode_attention

    B, S, H, D, BS, W, topk = (2, 2, 4, 64, 16, 16, 32) if small else (64, 2, 64, 512, 128, 128, 512)
    case = AttnCase(seed=0, batches=B, tokens_per_batch=S, heads=H, head_dim=D, page_size=BS,
                    window=W, topk=topk, max_cmp_len=4 * topk, min_used=W + 4 * topk - 1,
                    nan_unused=False, device="cuda" if cuda else "cpu")
    x = make_attn_inputs(case)
    T, K = x.sparse_indices.shape
    kernel_ms = bench(lambda: x.call(sparse_decode_attention, check_indices=False), cuda=cuda)
    eager_ms = bench(lambda: torch_eager_attention(x), cuda=cuda)
    moved = T * H * D * 2 + T * K * D * 2 + T * H * D * 4 + T * K * 4
    achieved = moved / (kernel_ms * 1e-3)
    return {"shape": dict(T=T, H=H, D=D, K=K, page=BS, S=S), "kernel_us": kernel_ms * 1e3,
            "torch_eager_us": eager_ms * 1e3, "speedup_vs_eager": eager_ms / kernel_ms,
            "bytes_moved": moved, "floor_us": moved / bandwidth * 1e6,
            "fraction_of_copy_bw": achieved / bandwidth}


def rmsnorm_bench(cuda: bool, small: bool, bandwidth: float) -> dict:
    import torch.nn.functional as F

    from kernelprop.kernels.rms_norm import rms_norm

    rows, dim = (64, 256) if small else (32768, 4096)
    dev = "cuda" if cuda else "cpu"
    x = torch.randn(rows, dim, device=dev).to(torch.bfloat16)
    w = torch.randn(dim, device=dev).to(torch.bfloat16)
    ours = bench(lambda: rms_norm(x, w, eps=1e-6), cuda=cuda)
    eager = bench(lambda: F.rms_norm(x, (dim,), w, 1e-6), cuda=cuda)
    out = {"shape": [rows, dim], "kernel_us": ours * 1e3, "torch_rms_norm_us": eager * 1e3}
    if cuda:
        compiled = torch.compile(lambda a, b: F.rms_norm(a, (dim,), b, 1e-6))
        compiled(x, w)
        out["torch_compile_us"] = bench(lambda: compiled(x, w), cuda=cuda) * 1e3
        out["speedup_vs_compile"] = out["torch_compile_us"] / out["kernel_us"]
    moved = 2 * x.numel() * 2 + w.numel() * 2
    out["fraction_of_copy_bw"] = moved / (ours * 1e-3) / bandwidth
    out["speedup_vs_torch_rms_norm"] = eager / ours
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the results as JSON here")
    parser.add_argument("--small", action="store_true", help="tiny shapes (CPU smoke test)")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name() if cuda else "cpu (Triton interpreter)"
    bandwidth = copy_bandwidth(cuda, 2**20 if args.small else 2**30)
    results = {"device": device, "torch": torch.__version__, "copy_bandwidth_GBps": bandwidth / 1e9}
    results["attention"] = attention_bench(cuda, args.small, bandwidth)
    results["rms_norm"] = rmsnorm_bench(cuda, args.small, bandwidth)
    try:
        import triton

        results["triton"] = triton.__version__
    except ImportError:
        pass
    a, r = results["attention"], results["rms_norm"]
    print(f"device: {device}; copy bandwidth {bandwidth / 1e9:.0f} GB/s (read + write)")
    print(f"sparse attention {a['shape']}: kernel {a['kernel_us']:.1f} us, torch eager "
          f"{a['torch_eager_us']:.1f} us -> {a['speedup_vs_eager']:.1f}x; moves "
          f"{a['bytes_moved'] / 1e6:.1f} MB, floor {a['floor_us']:.1f} us, "
          f"{100 * a['fraction_of_copy_bw']:.0f}% of copy bandwidth")
    line = (f"rms_norm {r['shape']}: kernel {r['kernel_us']:.1f} us, F.rms_norm "
            f"{r['torch_rms_norm_us']:.1f} us ({r['speedup_vs_torch_rms_norm']:.2f}x)")
    if "torch_compile_us" in r:
        line += f", torch.compile {r['torch_compile_us']:.1f} us ({r['speedup_vs_compile']:.2f}x)"
    print(line + f"; {100 * r['fraction_of_copy_bw']:.0f}% of copy bandwidth")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
