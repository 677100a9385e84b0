"""P1 for the norm recipes of real models (SPEC 3) at D = 4096: the bound's size and which mutant
it catches, on the golden (no kernel runs; plain torch).

    python benchmarks/norm_recipes.py [--rows R] [--dim D] [--seeds N]

Per recipe and x dtype (normal data, weight 1 + 0.5 randn, eps 1e-6): max over elements of the P1
bound / max|y| (inv_ulps 1, cpu; 3, cuda), the share of elements whose bound is > 0 (undecided
output roundings; bf16 outputs only), and for the matching planted bug (called with the row's recipe) (impls/mutants/rmsnorm.py) the share of
elements outside the P1 interval (> 0: P1 kills it on this input).
"""
from __future__ import annotations

import argparse


from kernelprop.golden.rmsnorm_inputs import NormCase, NormRecipe, make_norm_inputs
from kernelprop.golden.rmsnorm import rms_norm_trace
from kernelprop.golden.rmsnorm_bounds import SUM_LAMBDA, p1_bound, p1_interval
from kernelprop.impls.mutants import rmsnorm as m

RECIPES = [  # name, recipe, x dtype, the planted bug of that recipe (or None)
    ("default", NormRecipe(), "bf16", None),
    ("gemma (weight_offset 1, out input)", m.GEMMA, "bf16", m.gemma_no_offset),
    ("gemma, fp32 x", m.GEMMA, "fp32", m.gemma_no_offset),
    ("llama (round_before_weight, out input)", m.LLAMA, "bf16", m.llama_no_cast),
    ("llama, cast rtz", m.LLAMA, "bf16", m.llama_cast_rtz),
    ("llama recipe, fp32 x, out bf16", m.LLAMA.replace(out_dtype="bf16"), "fp32", m.llama_no_cast),
    ("out_dtype input, fp32 x", m.OUT_FOLLOWS_INPUT, "fp32", m.input_dtype_always_bf16),
    ("compute_dtype input (Liger none)", m.NARROW, "bf16", m.narrow_in_fp32),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--dim", type=int, default=4096)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    print("| recipe | x | P1 bound / max abs y (cpu / cuda) | undecided % (cpu) | bug | bug outside P1 % |")
    print("|---|---|---|---|---|---|")
    for name, recipe, dtype, bug in RECIPES:
        sizes, undecided, outside = {1.0: [], 3.0: []}, [], []
        for seed in range(args.seeds):
            x = make_norm_inputs(NormCase(seed=seed, rows=args.rows, dim=args.dim, dtype=dtype))
            trace = x.call(rms_norm_trace, recipe=recipe)
            resolved = recipe.for_input(x.x.dtype)
            top = trace.y.double().abs().max().item()
            for ulps in sizes:
                iv = p1_interval(trace, x, resolved, ulps, SUM_LAMBDA)
                bound = p1_bound(trace, x, resolved, ulps, iv=iv)
                sizes[ulps].append(bound.max().item() / top)
                if ulps == 1.0:
                    if resolved.out_dtype == "bf16":
                        undecided.append(100 * (bound > 0).double().mean().item())
                    if bug is not None:
                        y = x.call(bug, recipe=recipe).double()
                        lo, hi = _out(iv, resolved, y.dtype)
                        out = (y < lo) | (y > hi)
                        outside.append(100 * out.double().mean().item())
        fmt = lambda v: f"{min(v):.2e}-{max(v):.2e}" if v else "- (fp32 output)"  # noqa: E731
        bug_name = "-" if bug is None else type(bug).__name__
        bug_cell = "-" if bug is None else fmt(outside)
        print(f"| {name} | {dtype} | {fmt(sizes[1.0])} / {fmt(sizes[3.0])} | {fmt(undecided)} | "
              f"{bug_name} | {bug_cell} |")


def _out(iv, recipe, dtype):
    """The P1 interval in the output's terms: the output rounding of its ends (bf16), else itself."""
    from kernelprop.golden.rmsnorm_bounds import to_grid
    return to_grid(iv[0], iv[1], recipe.out_dtype, recipe.rounding)


if __name__ == "__main__":
    main()
