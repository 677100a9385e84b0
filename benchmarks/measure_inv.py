"""P4 anchor measurement (a script, not a test): the three INV variants of the bundled RMSNorm at the
per-head q shape (T=128, H=64, Dh=512, no weight), on whatever backend runs it.

    python benchmarks/measure_inv.py [--json PATH] [--seeds N]

Per variant: the fp32 ulp distance of y = x * INV(ms + eps) (kernel, fp32 output) from the fp64 truth
rounded to fp32 (max, mean; it includes the one rounding of x * inv), and the BF16 mismatch ratio of
the kernel's bf16 output against the fp64 truth rounded to bf16 (nearest-even), and between variants.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from kernelprop.golden.metrics import ulp_distance_fp32  # noqa: E402
from kernelprop.golden.rmsnorm import rms_norm_fp64  # noqa: E402
from kernelprop.golden.rmsnorm_inputs import NormRecipe  # noqa: E402

VARIANTS = ("rsqrt", "recip_sqrt", "recip_sqrt_rn")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--small", action="store_true", help="T=8, H=4 (CPU smoke test)")
    args = parser.parse_args()
    from kernelprop.kernels.rms_norm import rms_norm

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    T, H, Dh = (8, 4, 512) if args.small else (128, 64, 512)
    rows = []
    stats = {v: {"ulp_max": 0, "ulp_sum": 0, "n": 0, "bf16_mismatch": 0} for v in VARIANTS}
    pair = {f"{a}|{b}": 0 for i, a in enumerate(VARIANTS) for b in VARIANTS[i + 1:]}
    total = 0
    for seed in range(args.seeds):
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(T, H, Dh, generator=gen).to(torch.bfloat16).to(dev)
        truth = rms_norm_fp64(x, None, eps=1e-6)
        truth32, truth16 = truth.float(), truth.float().to(torch.bfloat16)
        outs = {}
        for v in VARIANTS:
            y32 = rms_norm(x, None, eps=1e-6, recipe=NormRecipe(inv=v, out_dtype="fp32"))
            y16 = rms_norm(x, None, eps=1e-6, recipe=NormRecipe(inv=v))
            ulp = ulp_distance_fp32(y32, truth32)
            s = stats[v]
            s["ulp_max"] = max(s["ulp_max"], int(ulp.max()))
            s["ulp_sum"] += int(ulp.sum())
            s["n"] += ulp.numel()
            s["bf16_mismatch"] += int((y16 != truth16).sum())
            outs[v] = y16
        for key in pair:
            a, b = key.split("|")
            pair[key] += int((outs[a] != outs[b]).sum())
        total += x.numel()
    device = torch.cuda.get_device_name() if dev == "cuda" else "cpu (Triton interpreter)"
    print(f"device: {device}; shape T={T} H={H} Dh={Dh}; {args.seeds} seeds, {total} elements")
    print("| variant | max ulp of y vs fp64 | mean ulp | bf16 mismatch vs fp64-rounded |")
    print("|---|---|---|---|")
    for v in VARIANTS:
        s = stats[v]
        rows.append({"variant": v, "ulp_max": s["ulp_max"], "ulp_mean": s["ulp_sum"] / s["n"],
                     "bf16_mismatch_ratio": s["bf16_mismatch"] / total})
        print(f"| {v} | {s['ulp_max']} | {s['ulp_sum'] / s['n']:.3f} | "
              f"{100 * s['bf16_mismatch'] / total:.4f}% |")
    for key, count in pair.items():
        print(f"bf16 mismatch {key.replace('|', ' vs ')}: {100 * count / total:.4f}%")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(
            {"device": device, "rows": rows, "pairs": {k: c / total for k, c in pair.items()}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
