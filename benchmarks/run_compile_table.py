"""Run the compile table's reference kernels once each on the GPU, beside their roofline predictions.

    python benchmarks/run_compile_table.py [--json PATH] [--dry-run] [--only NAME ...]

For each reference point of kernelprop.commands.compile (the same KernelLaunch the wrappers build, now on
real CUDA tensors): the kernel's median time (triton.testing.do_bench; also through a CUDA graph,
do_bench_cudagraph, which removes the launch overhead), a device-to-device copy of
the same byte count the roofline says must cross HBM (read + write, measured in the same run),
and the predictions of kernelprop.commands.roofline at the model's 3.0 TB/s and at this run's measured copy
bandwidth. `--dry-run` (no GPU needed) prints the predictions only, to check the CPU-side parts.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kernelprop.commands.compile import build_launch, reference_points  # noqa: E402
from kernelprop.commands.roofline import attention_roofline, norm_roofline  # noqa: E402


ROOFLINE_KINDS = ("attention", "rms_norm")   # points with a model in kernelprop.commands.roofline


def roofline_of(point, launch):
    c = launch.constexprs
    if point.kind == "attention":
        return attention_roofline(T=point.tokens, H=point.shape.heads, D=point.shape.head_dim, K=point.indices,
                                  block_h=c["BLOCK_H"])
    in_bytes = 2 if point.dtype == "bf16" else 4
    out_bytes = 2 if point.recipe.out_dtype == "bf16" else 4
    return norm_roofline(rows=point.rows, dim=point.dim, in_bytes=in_bytes, out_bytes=out_bytes,
                         weight=point.weight, block_r=c["BLOCK_R"])


def copy_us(nbytes: int) -> float:
    """Median microseconds of a device copy that reads nbytes / 2 and writes nbytes / 2."""
    import torch
    import triton.testing

    src = torch.empty(max(1, nbytes // 4), dtype=torch.bfloat16, device="cuda").normal_()
    dst = torch.empty_like(src)
    return float(triton.testing.do_bench(lambda: dst.copy_(src), warmup=25, rep=100, return_mode="median")) * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the rows as JSON here")
    parser.add_argument("--dry-run", action="store_true", help="predictions only (meta tensors, no GPU)")
    parser.add_argument("--only", nargs="*", help="keep points whose name contains one of these")
    args = parser.parse_args()
    points = [p for p in reference_points() if p.kind in ROOFLINE_KINDS
              and (not args.only or any(s in p.name for s in args.only))]
    rows = []
    if not args.dry_run:
        import torch
        import triton.testing

        if not torch.cuda.is_available():
            print("no CUDA device: use --dry-run for the predictions", file=sys.stderr)
            return 2
    for point in points:
        launch = build_launch(point, device="meta" if args.dry_run else "cuda")
        model = roofline_of(point, launch)
        row = {"name": point.name, "programs": launch.programs, "hbm_bytes": model.hbm_bytes,
               "l2_bytes": model.l2_bytes, "predicted_us": model.predicted_us(),
               "model_terms_us": model.times_us()}
        if not args.dry_run:
            launch.run()
            torch.cuda.synchronize()
            row["kernel_us"] = float(triton.testing.do_bench(launch.run, warmup=25, rep=100,
                                                             return_mode="median")) * 1e3
            try:  # launch overhead out (a ~40 us kernel is near Python's launch cost)
                row["kernel_graph_us"] = float(triton.testing.do_bench_cudagraph(
                    launch.run, rep=100, return_mode="median")) * 1e3
            except Exception as exc:  # noqa: BLE001  (a capture failure must not end the table)
                row["kernel_graph_error"] = f"{type(exc).__name__}: {exc}"[:200]
            row["copy_us"] = copy_us(model.hbm_bytes)
            row["copy_bw_GBps"] = model.hbm_bytes / (row["copy_us"] * 1e-6) / 1e9
            row["predicted_at_copy_bw_us"] = model.predicted_us(hbm_bw=row["copy_bw_GBps"] * 1e9)
            row["fraction_of_copy"] = row["copy_us"] / row["kernel_us"]
        rows.append(row)
        del launch
    head = f"{'config point':36} {'programs':>8} {'MB':>8} {'pred us':>8}"
    if not args.dry_run:
        head += f" {'kernel us':>9} {'graph us':>8} {'copy us':>8} {'pred@copy':>9} {'copy/kernel':>11}"
    print(head)
    for r in rows:
        line = f"{r['name'][:36]:36} {r['programs']:8d} {r['hbm_bytes'] / 1e6:8.1f} {r['predicted_us']:8.1f}"
        if "kernel_us" in r:
            line += (f" {r['kernel_us']:9.1f} {r.get('kernel_graph_us', float('nan')):8.1f} {r['copy_us']:8.1f}"
                     f" {r['predicted_at_copy_bw_us']:9.1f}"
                     f" {r['fraction_of_copy']:11.2f}")
        print(line)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
