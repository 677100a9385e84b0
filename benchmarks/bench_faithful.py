"""Interpreter speed with and without the faithful patches (a script, not a test).

    python benchmarks/bench_faithful.py [--calls N]

Runs each bundled kernel (sparse decode attention T=4 H=3 D=40 K=29, RMSNorm [64, 512] bf16,
the indexer top-k), and a small bf16 row kernel whose every operation the patches replace, N times
raw and N times faithful, interleaved call by call (alternating which goes first) so that a loaded
machine slows both alike, and prints the median milliseconds per call of each and their ratio. Only the
ratio is meaningful on a shared machine. CPU interpreter only (TRITON_INTERPRET=1 is set here).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault("TRITON_INTERPRET", "1")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from kernelprop.faithful import faithful_interpreter, raw_interpreter  # noqa: E402
from kernelprop.golden.indexer import IndexerCase, make_indexer_inputs  # noqa: E402
from kernelprop.golden.inputs import AttnCase, make_attn_inputs  # noqa: E402
from kernelprop.kernels import sparse_decode_attention  # noqa: E402
from kernelprop.kernels.rms_norm import rms_norm  # noqa: E402
from kernelprop.kernels.sparse_indexer import sparse_indexer_topk  # noqa: E402


@triton.jit
def _bf16_rows_kernel(x_ptr, y_ptr, D: tl.constexpr):
    """A third-party-style row kernel on bf16 values: bf16 x*x, fp32 mean, rsqrt, bf16 store."""
    offs = tl.program_id(0) * D + tl.arange(0, D)
    x = tl.load(x_ptr + offs)
    sq = (x * x + x).to(tl.float32)
    inv = tl.math.rsqrt(tl.sum(sq, 0) / D + 1e-6)
    tl.store(y_ptr + offs, x.to(tl.float32) * inv)


def workloads() -> dict:
    attn = make_attn_inputs(AttnCase(seed=0, batches=2, tokens_per_batch=2, heads=3, head_dim=40,
                                     page_size=8, window=16, topk=24, extra=5, device="cpu"))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 512, generator=g).to(torch.bfloat16)
    w = torch.randn(512, generator=g).to(torch.bfloat16)
    indexer = make_indexer_inputs(IndexerCase(seed=5, batches=2, tokens_per_batch=2, heads=3, head_dim=24,
                                              page_size=4, window=4, topk=7, max_cmp_len=30))
    y = torch.empty_like(x)
    return {"bf16 row kernel [64, 512]": lambda: _bf16_rows_kernel[(64,)](x, y, D=512),
            "sparse_decode_attention": lambda: attn.call(sparse_decode_attention),
            "rms_norm": lambda: rms_norm(x, w, eps=1e-6),
            "sparse_indexer_topk": lambda: indexer.call(sparse_indexer_topk)}


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'kernel':<26}{'raw ms':>10}{'faithful ms':>13}{'ratio':>8}   ({args.calls} calls each, medians)")
    for name, fn in workloads().items():
        raw, faithful = [], []
        with raw_interpreter():
            fn()  # first call rewrites the kernel's AST: not timed
        for call in range(args.calls):  # alternate which goes first: no order advantage
            for mode in ((0, 1) if call % 2 == 0 else (1, 0)):
                with (faithful_interpreter() if mode else raw_interpreter()):
                    (faithful if mode else raw).append(timed(fn))
        r, f = statistics.median(raw), statistics.median(faithful)
        print(f"{name:<26}{r:>10.1f}{f:>13.1f}{f / r:>8.2f}")


if __name__ == "__main__":
    main()
