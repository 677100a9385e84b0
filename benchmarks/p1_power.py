"""P1's power and soundness at the reference shape (issue 9): how far correct and buggy
implementations sit from the P1 bound, attention at D=512, K=640 and RMSNorm at D=8192.

    python benchmarks/p1_power.py [--examples N] [--batches B] [--tokens-per-batch S] [--heads H]
        [--model NAME] [--decompose] [--norm-examples N] [--norm-rows R] [--norm-dim D]
    python benchmarks/p1_power.py --decompose-seeds SEED ... [--tokens-per-batch 2 --heads 64]

The reference preset (`--sizes reference`, B = 1): --tokens-per-batch 2 --heads 64 (128 rows an
example); the default T = 1, H = 2 is the small shape of the first issue 9 measurements.

Every implementation here is plain torch (the Triton interpreter is too slow at D = 512). Correct
ones: impls/torch_reference.py (fp32 bmm scores, exp2), an fp32-matmul one (torch.matmul, expf),
one that sums each dot in blocks of 16 products (block sums added left to right). Buggy ones
(each declares the default recipe, rne bf16 P): P truncated (rtz), P rounded to fp16, L rounded
to bf16 after every merge, the rescale factors a, b rounded to bf16. Printed per implementation,
over the per-example worst (the max over every element of an example): worst, median, min and the
share of examples over 1x and 2x, for P1's ratio |impl - golden| / bound ("old") and for the
margin ratio ("new", docs/bounds.md#p1-margin: the distance outside golden +- the bound's
discrete P flips, in units of the rest of the bound; > 1 exactly where old > 1). Goals (issue 9):
correct ones worst < 0.5, buggy ones median >= 2. For the bugs also per data kind: the share
over the bound and the share of examples where the output equals the golden bit for bit (no
bound can catch those). --decompose: the bound's terms (flips, merges, maxima, denominator,
output) and the error at each correct implementation's worst element.

Minimal detectable relative perturbation (printed per model): a change of delta max|o| at one
element violates P1 where delta > bound_d / max|o|, so the smallest detectable one is
min_d bound_d / max|o| (the measure behind issue 9's "6.6e-6 at small D"); printed: its median over
examples, and the bound's size max_d bound_d / max|o| (issue 9's "4.4% of max|o|"), median.

RMSNorm: bf16 and fp32 outputs (--norm-out), each under the worst-case and P1's Azuma sum model.
A bf16 output's "new" is measured in fp32 (docs/bounds-output-rounding.md#margin): the distance
from the golden's fp32 value to the fp32 values that round to the output, over the fp32 bound on
that side (minus the P flips for attention). "old" is under P1's bf16 bound on the output's side
of the golden's value (exact membership of [OUT(lo), OUT(hi)]); "clamped": elements where the
margin's own verdict differs (ties at an open cell end) and is clamped to P1's; "symmetric-only
passes": elements the former symmetric bf16 bound (attention's reachable_bf16, RMSNorm's
pair_bound) passed and P1 now fails (and examples that the symmetric bound passed entirely).
--attn-out bf16: the attention implementations' outputs rounded to bf16 (nearest-even), checked
as P1 checks out_dtype "bf16".
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from kernelprop.golden.attention import sparse_attention_trace  # noqa: E402
from kernelprop.golden.attention_bounds import attention_p1_bound, attention_p1_terms  # noqa: E402
from kernelprop.golden.attention_bounds import MODELS as BOUND_MODELS  # noqa: E402
from kernelprop.golden.metrics import bound_ratio, margin_ratio  # noqa: E402
from kernelprop.golden.output_margin import (Fp32Domain, cell_margin, margin_for_verdict,  # noqa: E402
                                             sided_bound)
from kernelprop.golden.output_rounding import reachable_bf16  # noqa: E402
from kernelprop.golden.attention_inputs import AttnCase, make_attn_inputs, AttnRecipe
from kernelprop.golden.rmsnorm_inputs import NormCase, NormRecipe, make_norm_inputs  # noqa: E402
from kernelprop.golden.rmsnorm import rms_norm_golden  # noqa: E402
from kernelprop.golden.rounding import round_to_bf16  # noqa: E402
from kernelprop.impls.torch_reference import rms_norm as torch_rms_norm  # noqa: E402
from kernelprop.impls.h100_emulation import sparse_decode_attention as h100_attention  # noqa: E402
from kernelprop.kernels.sparse_attention import sparse_decode_attention as bundled_attention  # noqa: E402
from kernelprop.golden.attention_bounds import cuda_model_for_ptx  # noqa: E402
from kernelprop.core.ptx_audit import declared_ptx  # noqa: E402
from kernelprop.impls.torch_reference import sparse_decode_attention as torch_reference  # noqa: E402


# %% torch attention variants (positional tiling, the default recipe's tile)

def _bf16(x: torch.Tensor) -> torch.Tensor:
    return round_to_bf16(x.contiguous(), "rne")


def variant_attention(x, *, dot: str = "matmul", p_round: str = "rne", l_bf16: bool = False,
                      factors_bf16: bool = False, tile: int = 64) -> torch.Tensor:
    """The tiled recipe in fp32 torch with one knob per variant (see the module docstring)."""
    from kernelprop.golden.attention import gather_kv
    kv = gather_kv(x.ori_kv, x.ori_block_table, x.cmp_kv, x.cmp_block_table, x.sparse_indices,
                   x.seqused_kv, window=x.window, tokens_per_batch=x.tokens_per_batch)
    q = x.q.float()
    T, H, D = q.shape
    K = kv.rows.shape[1]
    rows = kv.rows.float()                                                # [T, K, D]
    scale = torch.tensor(D ** -0.5 if x.softmax_scale is None else x.softmax_scale)
    if dot == "matmul":
        dots = torch.matmul(q, rows.transpose(1, 2))                      # [T, H, K]
    elif dot == "block16":
        prod = q[:, :, None, :] * rows[:, None, :, :]                     # [T, H, K, D] exact
        pad = (-D) % 16
        prod = torch.nn.functional.pad(prod, (0, pad)).reshape(T, H, K, -1, 16)
        blocks = prod.sum(-1)                                             # fp32 block sums
        dots = torch.zeros(T, H, K)
        for b in range(blocks.shape[-1]):
            dots = dots + blocks[..., b]
    else:
        raise ValueError(f"dot must be matmul or block16, got {dot!r}")
    s = dots * scale
    M = torch.full((T, H), -math.inf)
    L = torch.zeros(T, H)
    O = torch.zeros(T, H, D)
    for start in range(0, K, tile):
        ok = kv.valid[:, None, start:start + tile]
        st = torch.where(ok, s[:, :, start:start + tile], -math.inf)
        m = st.amax(-1)
        live = ok.any(-1).expand(T, H)
        m0 = torch.where(live, m, 0.0)
        e = torch.where(ok, torch.exp(st - m0[..., None]), 0.0)
        if p_round == "fp16":
            p = e.half().float()
        else:
            p = round_to_bf16(e, p_round)
        l_t = p.sum(-1)
        o_t = torch.matmul(p, rows[:, start:start + tile])
        M_new = torch.where(live, torch.maximum(M, m0), M)
        a = torch.where(torch.isfinite(M), torch.exp(M - M_new), 0.0)
        b = torch.exp(m0 - M_new)
        if factors_bf16:
            a, b = _bf16(a), _bf16(b)
        L = torch.where(live, a * L + b * l_t, L)
        if l_bf16:
            L = _bf16(L)
        O = torch.where(live[..., None], a[..., None] * O + b[..., None] * o_t, O)
        M = M_new
    seen = torch.isfinite(M)
    denom = L + torch.exp(x.attn_sink.float()[None] - torch.where(seen, M, 0.0))
    return torch.where(seen[..., None], O / denom[..., None], 0.0)


# the bound models, and the CUDA figures the bundled kernel's PTX calls for (P1 on CUDA selects them)
MODELS = {**BOUND_MODELS, "cuda_bundled_ptx": cuda_model_for_ptx(declared_ptx(bundled_attention, AttnRecipe()))}

ATTN_IMPLS = {
    "torch_reference (bmm, exp2)": (True, lambda x: x.call(torch_reference, recipe=AttnRecipe())),
    "fp32 matmul, expf": (True, lambda x: variant_attention(x)),
    "dot in blocks of 16": (True, lambda x: variant_attention(x, dot="block16")),
    "emulated H100 (impls/h100_emulation.py)": (True, lambda x: x.call(h100_attention, recipe=AttnRecipe())),
    "BUG P truncated (rtz)": (False, lambda x: variant_attention(x, p_round="rtz")),
    "BUG P in fp16": (False, lambda x: variant_attention(x, p_round="fp16")),
    "BUG L in bf16": (False, lambda x: variant_attention(x, l_bf16=True)),
    "BUG rescale factors in bf16": (False, lambda x: variant_attention(x, factors_bf16=True)),
}


DATA_KINDS = ("normal", "uniform", "heavy", "large_logits")


def attention_case(seed: int, batches: int, tokens_per_batch: int, heads: int) -> AttnCase:
    """D = 512, K = 640 (128 window + 512 top-k), pages of 128, the default scale 512^-0.5;
    T = batches x tokens_per_batch query tokens (the reference preset: S = 2 tokens per batch)."""
    return AttnCase(seed=seed, batches=batches, tokens_per_batch=tokens_per_batch, heads=heads,
                    head_dim=512, page_size=128, window=128, topk=512, max_cmp_len=1024,
                    min_used=128 + 1024, data=DATA_KINDS[seed % 4], sink="finite")


@dataclass(frozen=True)
class Scores:
    """One implementation's per-example worst ratios: P1's |a - e| / bound (`old`) and the
    margin ratio (`new`: distance outside golden +- the P flips over the continuous part)."""

    old: list
    new: list
    clamped: list = dataclasses.field(default_factory=list)  # per example, see the docstring
    tightened: list = dataclasses.field(default_factory=list)
    caught: list = dataclasses.field(default_factory=list)  # examples only the sided bound fails

    def by_data(self) -> str:
        """Per data kind (seed % 4): share of examples over the bound, and share where the
        implementation's output equals the golden's exactly (no signal for any bound)."""
        parts = []
        for k, kind in enumerate(DATA_KINDS):
            o = self.old[k::4]
            if o:
                parts.append(f"{kind} >1x {sum(v > 1 for v in o) / len(o):.0%} exact "
                             f"{sum(v == 0 for v in o) / len(o):.0%}")
        return "; ".join(parts)

    def line(self, name: str, correct: bool) -> str:
        o, n = sorted(self.old), sorted(self.new)
        mid = len(o) // 2
        over = lambda v, k: f"{sum(x > k for x in v) / len(v):6.1%}"  # noqa: E731
        goal = (o[-1] < 0.5, n[-1] < 0.5) if correct else (o[mid] >= 2, n[mid] >= 2)
        mark = lambda ok: "meets" if ok else "MISSES"  # noqa: E731
        return (f"  {name:30s} old: worst {o[-1]:8.3g} median {o[mid]:8.3g} min {o[0]:8.3g} >1x "
                f"{over(o, 1)} >2x {over(o, 2)} | new: worst {n[-1]:8.3g} median {n[mid]:8.3g} min "
                f"{n[0]:8.3g} >1x {over(n, 1)} >2x {over(n, 2)} | "
                + (f"clamped {sum(self.clamped)} symmetric-only passes {sum(self.tightened)} "
                   f"(examples {sum(self.caught)}) | " if self.clamped else "") + "goal "
                f"{'worst < 0.5' if correct else 'median >= 2'}: old {mark(goal[0])}, new {mark(goal[1])}")


def _decompose(x, fn, recipe: AttnRecipe, backend, name: str, seed: int) -> None:
    """Item 1 of issue 9: the bound's terms and the error at one example's worst element."""
    trace = x.call(sparse_attention_trace, recipe=recipe)
    terms = attention_p1_terms(trace, x.q, x.attn_sink, recipe, softmax_scale=x.softmax_scale,
                               backend=backend)
    o = trace.o.double()
    err = (fn(x).double() - o).abs()
    ratio = bound_ratio(err, torch.zeros_like(err), terms.total)
    t, h, d = (int(i) for i in torch.unravel_index(ratio.argmax(), ratio.shape))
    at = lambda v: float(v[t, h, d])  # noqa: E731
    print(f"  {name} seed {seed} ({DATA_KINDS[seed % 4]}) worst at "
          f"{(t, h, d)}: |err| {at(err):.4g} = {at(ratio):.3g} of bound {at(terms.total):.4g}: flips "
          f"{at(terms.flips):.4g}, merges {at(terms.merges):.4g}, maxima {at(terms.maxima):.4g}, denominator "
          f"{at(terms.denominator):.4g}, output {at(terms.output):.4g}; |o| {abs(at(o)):.4g}, "
          f"max|o| of the row {float(o[t, h].abs().max()):.4g}; undecided P in the row "
          f"{int(terms.undecided[t, h])} of {int(trace.valid[t].sum())}; margin ratio "
          f"{float(margin_ratio(err, torch.zeros_like(err), terms.total, terms.flips)[t, h, d]):.3g}")


def _score_bf16(scores: Scores, actual, expected, symmetric, domain: Fp32Domain) -> None:
    """One example of a bf16 output: P1's ratio under its sided bound (exact membership of
    [OUT(lo), OUT(hi)]), the fp32-domain margin (clamped to that verdict), the elements where the
    clamp engaged (ties) and those the former symmetric bound passed but P1 now fails."""
    bound = sided_bound(actual, expected, domain, symmetric)
    old = bound_ratio(actual, expected, bound)
    raw = cell_margin(actual, domain)
    scores.old.append(float(old.max()))
    scores.new.append(float(margin_for_verdict(raw, old > 1).max()))
    scores.clamped.append(int(((raw > 1) != (old > 1)).sum()))
    symmetric = bound_ratio(actual, expected, symmetric)
    scores.tightened.append(int(((old > 1) & (symmetric <= 1)).sum()))
    scores.caught.append(bool(old.max() > 1 and symmetric.max() <= 1))


def attention_power(examples: int, batches: int, tokens_per_batch: int, heads: int,
                    model: str, decompose: bool, out: str = "fp32") -> None:
    backend = MODELS[model]
    scores = {name: Scores([], []) for name in ATTN_IMPLS}
    detect, size = [], []
    start = time.perf_counter()
    recipe = AttnRecipe()
    for seed in range(examples):
        x = make_attn_inputs(attention_case(seed, batches, tokens_per_batch, heads))
        trace = x.call(sparse_attention_trace, recipe=recipe)
        terms = attention_p1_terms(trace, x.q, x.attn_sink, recipe, softmax_scale=x.softmax_scale,
                                   backend=backend)
        o = trace.o.double()
        detect.append(float(terms.total.min() / o.abs().max()))
        size.append(float(terms.total.max() / o.abs().max()))
        for name, (_, fn) in ATTN_IMPLS.items():
            if out == "bf16":
                _score_bf16(scores[name], fn(x).to(torch.bfloat16), *reachable_bf16(o, terms.total),
                            Fp32Domain(o, terms.total, terms.total, terms.flips, "rne"))
                continue
            actual = fn(x).double()
            scores[name].old.append(float(bound_ratio(actual, o, terms.total).max()))
            scores[name].new.append(float(margin_ratio(actual, o, terms.total, terms.flips).max()))
    took = time.perf_counter() - start
    T = batches * tokens_per_batch
    print(f"\n[attention] D=512 K=640 B={batches} S={tokens_per_batch} (T={T}) H={heads}: {T * heads} "
          f"(token, head) rows per example, {examples} examples (data kinds normal/uniform/heavy/"
          f"large_logits), {out} output, model {model!r}: {backend}, {took:.0f} s ({took / examples:.2f} s an "
          f"example, 7 implementations); per example the worst over its rows; old = |impl - golden| "
          f"/ bound, new = margin ratio (docs/bounds.md#p1-margin); >1x, >2x: share of examples")
    for name, (correct, _) in ATTN_IMPLS.items():
        print(scores[name].line(name, correct))
    for name, (correct, _) in ATTN_IMPLS.items():
        if not correct:
            print(f"  {name:30s} per data kind: {scores[name].by_data()}")
    detect.sort(), size.sort()
    print(f"  minimal detectable relative perturbation of o (median over examples): "
          f"{detect[len(detect) // 2]:.3g}; bound / max|o| median {size[len(size) // 2]:.3g}")
    if decompose:
        for name, (correct, fn) in ATTN_IMPLS.items():
            if correct:
                seed = max(range(examples), key=lambda i: scores[name].old[i])
                x = make_attn_inputs(attention_case(seed, batches, tokens_per_batch, heads))
                _decompose(x, fn, recipe, backend, name, seed)


def small_detectable(examples: int, model: str) -> None:
    """The minimal detectable relative perturbation at the small default shape (AttnCase(): T=4,
    H=3, D=40, K=40, normal data), defined as for D = 512."""
    backend = MODELS[model]
    recipe = AttnRecipe()
    detect = []
    for seed in range(examples):
        x = make_attn_inputs(AttnCase(seed=seed))
        trace = x.call(sparse_attention_trace, recipe=recipe)
        bound = attention_p1_bound(trace, x.q, x.attn_sink, recipe, softmax_scale=x.softmax_scale,
                                   backend=backend)
        o = trace.o.double()
        detect.append(float(bound.min() / o.abs().max()))
    detect.sort()
    print(f"\n[attention, small] AttnCase() defaults (T=4 H=3 D=40 K=40), {examples} examples, model "
          f"{model!r}: minimal detectable relative perturbation of o (median) "
          f"{detect[len(detect) // 2]:.3g}")


# %% RMSNorm at D = 8192

def _norm_variant(x, weight, eps, *, inv: str = "recip_sqrt", order: str = "torch",
                  chunk: int = 256, out: str = "bf16") -> torch.Tensor:
    """fp32 RMSNorm with another summation order (torch sum, chunks of 256 left to right, or a
    backward sequential-ish order: chunks reversed) and INV, output rounded (RNE) to `out`."""
    xf = x.float()
    sq = xf * xf
    if order == "torch":
        ss = sq.sum(-1)
    else:
        starts = list(range(0, x.shape[-1], chunk))
        ss = torch.zeros(x.shape[:-1])
        for start in (starts if order == "chunks" else starts[::-1]):
            ss = ss + sq[..., start:start + chunk].sum(-1)
    v = ss / x.shape[-1] + eps
    inv_v = torch.rsqrt(v) if inv == "rsqrt" else 1.0 / torch.sqrt(v)
    y = xf * inv_v[..., None]
    if weight is not None:
        y = y * weight.float()
    return y.to(torch.bfloat16) if out == "bf16" else y


def norm_impls(out: str) -> dict:
    """name -> (correct?, fn(NormInputs)) for an output dtype."""
    recipe = NormRecipe(out_dtype=out)
    bug = NormRecipe(inv="rsqrt_approx", approx_bits=12, out_dtype=out)
    return {
        "torch_reference (recip_sqrt)": (True, lambda n: n.call(torch_rms_norm, recipe=recipe)),
        "torch rsqrt, chunks of 256": (True, lambda n: _norm_variant(
            n.x, n.weight, n.eps, inv="rsqrt", order="chunks", out=out)),
        "chunks reversed": (True, lambda n: _norm_variant(n.x, n.weight, n.eps, order="reversed",
                                                           out=out)),
        "BUG rsqrt with 12 correct bits": (False, lambda n: n.call(rms_norm_golden, recipe=bug)),
    }


def norm_power(examples: int, rows: int, dim: int, outs=("bf16", "fp32")) -> None:
    from kernelprop.golden.rmsnorm import rms_norm_trace
    from kernelprop.properties.replays_norm import (INV_ULPS, SUM_LAMBDA, p1_bound, p1_domain,
                                                    p1_interval)
    for out in outs:
        recipe = NormRecipe(out_dtype=out)
        impls = norm_impls(out)
        for sum_lambda in (None, SUM_LAMBDA):
            start = time.perf_counter()
            scores = {name: Scores([], []) for name in impls}
            undecided = []
            for seed in range(examples):
                data = ("normal", "uniform", "heavy", "int8")[seed % 4]
                n = make_norm_inputs(NormCase(seed=seed, rows=rows, dim=dim, data=data,
                                              weight=bool(seed % 2), eps=1e-6))
                trace = n.call(rms_norm_trace, recipe=recipe)
                iv = p1_interval(trace, n, recipe, INV_ULPS["cpu"], sum_lambda)
                bound = p1_bound(trace, n, recipe, INV_ULPS["cpu"], iv=iv)
                discrete = torch.zeros_like(bound)
                undecided.append(float((bound > 0).double().mean()))
                y = trace.y.double()
                for name, (_, fn) in impls.items():
                    if out == "bf16":
                        _score_bf16(scores[name], fn(n), y, bound, p1_domain(trace, iv, recipe))
                        continue
                    actual = fn(n).double()
                    scores[name].old.append(float(bound_ratio(actual, y, bound).max()))
                    scores[name].new.append(float(margin_ratio(actual, y, bound, discrete).max()))
            model = "worst case gamma_{D-1}" if sum_lambda is None else f"Azuma lambda = {sum_lambda}"
            took = time.perf_counter() - start
            print(f"\n[rms_norm] D={dim}, {rows} rows, {out} output, {examples} examples (normal/"
                  f"uniform/heavy/int8, weight on odd seeds), sum model {model}, {took:.0f} s; "
                  + (f"undecided bf16 outputs (median) {sorted(undecided)[len(undecided) // 2]:.4f}"
                     if out == "bf16" else "no discrete part (fp32 output): new = old"))
            for name, (correct, _) in impls.items():
                print(scores[name].line(name, correct))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=1)
    parser.add_argument("--tokens-per-batch", type=int, default=1, help="2 at the reference preset")
    parser.add_argument("--heads", type=int, default=2, help="64 at the reference preset")
    parser.add_argument("--decompose", action="store_true",
                        help="print the bound's terms at each correct implementation's worst element")
    parser.add_argument("--no-small", action="store_true", help="skip the small-shape detectability")
    parser.add_argument("--decompose-seeds", type=int, nargs="*", default=None,
                        help="only print the decomposition at these attention seeds (correct ones)")
    parser.add_argument("--model", default="random", choices=sorted(MODELS))
    parser.add_argument("--norm-examples", type=int, default=1000)
    parser.add_argument("--norm-rows", type=int, default=8)
    parser.add_argument("--norm-dim", type=int, default=8192)
    parser.add_argument("--norm-out", choices=("bf16", "fp32", "both"), default="both")
    parser.add_argument("--attn-out", choices=("bf16", "fp32"), default="fp32")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.decompose_seeds:
        for seed in args.decompose_seeds:
            x = make_attn_inputs(attention_case(seed, args.batches, args.tokens_per_batch, args.heads))
            for name, (correct, fn) in ATTN_IMPLS.items():
                if correct:
                    _decompose(x, fn, AttnRecipe(), MODELS[args.model], name, seed)
        return
    if args.examples:
        if not args.no_small:
            small_detectable(min(args.examples, 200), "worst")
            small_detectable(min(args.examples, 200), args.model)
        attention_power(args.examples, args.batches, args.tokens_per_batch, args.heads, args.model,
                        args.decompose, args.attn_out)
    if args.norm_examples:
        norm_power(args.norm_examples, args.norm_rows, args.norm_dim,
                   ("bf16", "fp32") if args.norm_out == "both" else (args.norm_out,))


if __name__ == "__main__":
    main()
