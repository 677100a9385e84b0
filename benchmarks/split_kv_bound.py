"""P1 with and without split-KV at the reference head dim: the bound's size and a correct split
implementation's distance from it (docs/measurements.md#split-kv-and-shape-dependent-recipes).

    python benchmarks/split_kv_bound.py [--examples N] [--heads H] [--model random|cuda]

Shape: the reference class at small sizes (B = 1, S = 2, D = 512, W = 128, top-k 512, pages of
128; H = 64 by default), normal data, finite sinks. Per recipe, over examples: the median of
max_d bound_d / max|o| (the bound's size) and of min_d bound_d / max|o| (the smallest detectable
relative change), and the worst |impl - golden| / bound of impls/split_kv_reference.py (an
independent online-merge implementation; one-pass recipes run its kv_splits None path) and of
the split mutant that drops the sink.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from kernelprop.golden.attention import sparse_attention_trace  # noqa: E402
from kernelprop.golden.attention_bounds import MODELS, attention_p1_bound  # noqa: E402
from kernelprop.golden.attention_inputs import AttnCase, AttnRecipe, make_attn_inputs
from kernelprop.impls.mutants.attention import split_sink_dropped  # noqa: E402
from kernelprop.impls.split_kv_reference import sparse_decode_attention as split_reference  # noqa: E402

RECIPES = {
    "one pass, compacted, tile 64": AttnRecipe(tiling="compacted"),
    "split 8, align 32, tile 64 (SGLang)": AttnRecipe(tiling="compacted", kv_splits=8, split_align=32),
    "split 16, align 1, tile 16": AttnRecipe(tiling="compacted", tile=16, kv_splits=16),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=6)
    ap.add_argument("--heads", type=int, default=64)
    ap.add_argument("--model", default="random", choices=sorted(MODELS))
    args = ap.parse_args()
    model = MODELS[args.model]
    print(f"model {args.model}, B=1 S=2 H={args.heads} D=512 K=640, {args.examples} examples")
    print("| recipe | bound / max abs(o), median | smallest detectable change, median | "
          "correct split impl: worst error / bound | sink dropped: worst error / bound |")
    print("|---|---|---|---|---|")
    for name, recipe in RECIPES.items():
        size, detect, ok, bug = [], [], 0.0, 0.0
        for seed in range(args.examples):
            case = AttnCase(seed=seed, batches=1, tokens_per_batch=2, heads=args.heads,
                            head_dim=512, page_size=128, window=128, topk=512, max_cmp_len=1024,
                            min_used=600)
            x = make_attn_inputs(case)
            trace = x.call(sparse_attention_trace, recipe=recipe)
            bound = attention_p1_bound(trace, x.q, x.attn_sink, recipe, softmax_scale=None,
                                       backend=model)
            top = float(trace.o.abs().max())
            size.append(float(bound.max()) / top)
            detect.append(float(bound.min()) / top)
            for impl, acc in ((split_reference, "ok"), (split_sink_dropped, "bug")):
                err = (x.call(impl, recipe=recipe).double() - trace.o.double()).abs()
                ratio = float((err / bound).max())
                ok, bug = (max(ok, ratio), bug) if acc == "ok" else (ok, max(bug, ratio))
        print(f"| {name} | {statistics.median(size):.3g} | {statistics.median(detect):.3g} | "
              f"{ok:.3g} | {bug:.3g} |")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
