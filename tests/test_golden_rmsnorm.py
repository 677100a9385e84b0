"""rms_norm_golden (golden/rmsnorm.py) against rms_norm_fp64 within a bound derived here from the
golden's op model, for every INV variant, chunk order, output dtype and rounding.

Golden op model (golden/rmsnorm.py docstring), u = 2^-24, c = number of chunks (1 for None / >= D):
  ss  = fp32 sum of x^2: each chunk partial formed in fp64 and rounded once, partials added left
        to right in fp32. All terms >= 0, at most c chained roundings on any path:
        |ss - ss_exact| <= gamma(c) ss_exact + 2^-150 (half the smallest subnormal: fp32 underflow).
  v   = fp32(fp32(ss / D) + fp32(eps)): relative error <= (gamma(c) + u) share + 2u,
        share = (ss / D) / v (the part of v that carries ss's error).
  inv = INV(v): exact 1/sqrt moves by <= rel_v / 2 (1 + rel_v); INV itself adds
        rsqrt: u (fp64 1/sqrt rounded once), recip_sqrt / recip_sqrt_rn: 2u (sqrt, then divide),
        rsqrt_approx(k): 2^-k (a k-bit significand in [0.5, 1) is off by <= half its ulp 2^-(k+1),
        i.e. <= 2^-k relative at the bottom of the binade) + u (the cast to fp32).
  y32 = fp32(fp32(x inv) w): 2 more roundings (1 without weight).
  => |y32 - y64| <= rel |y64|, rel = (1 + rel_v/2 (1 + rel_v)) (1 + rel_inv) (1 + u)^2 - 1.
  bf16 output: |y - y32| <= h ulp_bf16(y32), h = 1/2 (rne, rna) or 1 (rtz). So
  |y - y64| <= h ulp_bf16(y32) + rel |y64|: half a bf16 ulp of the output plus the fp32 terms.
"""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from kernelprop.golden.rmsnorm_inputs import INV_VARIANTS, NORM_DATA_KINDS, NormCase, NormRecipe, make_norm_inputs
from kernelprop.golden.error_model import U_FP32 as U, gamma
from kernelprop.golden.rmsnorm import rms_norm_fp64, rms_norm_golden, rms_norm_trace
from kernelprop.golden.rounding import bf16_ulp

HALF_SUBNORMAL = 2.0 ** -150


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny tensors: intra-op threads only add synchronisation (and stall on a shared machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def inv_rel(recipe: NormRecipe) -> float:
    if recipe.inv == "rsqrt":
        return U
    if recipe.inv in ("recip_sqrt", "recip_sqrt_rn"):
        return 2 * U
    return 2.0 ** -recipe.approx_bits + U


def chunks(D: int, chunk) -> int:
    return 1 if chunk is None or chunk >= D else -(-D // chunk)


def fp32_rel_bound(trace, x, weight, recipe: NormRecipe) -> torch.Tensor:
    """[..., 1] float64: bound on |y32 - y64| / |y64| per row (module docstring)."""
    D = x.shape[-1]
    g = gamma(chunks(D, recipe.chunk))
    ss = trace.ss.double()
    v = trace.v.double()
    share = torch.where(v > 0, (ss / D) / v, torch.ones_like(v)).clamp(max=1.0)
    # the subnormal floor of ss, relative to v
    floor = torch.where(v > 0, HALF_SUBNORMAL / D / v, torch.zeros_like(v))
    rel_v = (g + U) * share + 2 * U + floor * (1 + g)
    rel_inv_v = rel_v / 2 * (1 + rel_v)
    steps = 2 if weight is not None else 1
    rel = (1 + rel_inv_v) * (1 + inv_rel(recipe)) * (1 + U) ** steps - 1
    return rel[..., None]


def check_against_fp64(inputs, recipe: NormRecipe):
    """Asserts the derived bound; returns (max err / bound, max rel err of y32)."""
    x, w, eps = inputs.x, inputs.weight, inputs.eps
    trace = rms_norm_trace(x, w, eps=eps, recipe=recipe)
    y64 = rms_norm_fp64(x, w, eps=eps)
    rel = fp32_rel_bound(trace, x, w, recipe)
    fp32_err = (trace.y_fp32.double() - y64).abs()
    fp32_bound = rel * y64.abs()
    assert bool((fp32_err <= fp32_bound).all()), \
        f"{recipe}: fp32 path off by {float((fp32_err / fp32_bound).max()):.3g}x its bound"
    if recipe.out_dtype == "fp32":
        err, bound = fp32_err, fp32_bound
    else:
        h = 1.0 if recipe.rounding == "rtz" else 0.5
        half_ulp = h * bf16_ulp(trace.y_fp32).double()
        assert bool(((trace.y.double() - trace.y_fp32.double()).abs() <= half_ulp).all())
        err, bound = (trace.y.double() - y64).abs(), half_ulp + fp32_bound
        assert bool((err <= bound).all()), f"{recipe}: max err/bound {float((err / bound).max()):.3g}"
    ratio = torch.where(err == 0, 0.0, err / bound)
    nz = y64 != 0
    rel_err = float((fp32_err[nz] / y64.abs()[nz]).max()) if bool(nz.any()) else 0.0
    return float(ratio.max()) if ratio.numel() else 0.0, rel_err


RECIPES = [NormRecipe(inv=inv, out_dtype=od, rounding=rd, approx_bits=k)
           for inv, od, rd, k in itertools.product(INV_VARIANTS, ("bf16", "fp32"), ("rne", "rtz", "rna"), (12,))
           if od == "bf16" or rd == "rne"]


@pytest.mark.spec("P2")
@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: f"{r.inv}-{r.out_dtype}-{r.rounding}")
def test_golden_within_derived_bound_of_fp64(recipe):
    for i, (data, dtype) in enumerate(itertools.product(NORM_DATA_KINDS, ("bf16", "fp32"))):
        if data == "zero":
            continue  # exact zeros: checked in test_zero_rows_give_zeros
        case = NormCase(seed=i, rows=6, dim=(64, 40, 512, 7)[i % 4], heads=(0, 3)[i % 2], dtype=dtype,
                        data=data, weight=i % 3 != 0, eps=(1e-6, 1e-5, 0.0)[i % 3] if data != "tiny" else 1e-6,
                        strided=i % 5 == 0)
        check_against_fp64(make_norm_inputs(case), recipe)


def test_report_norm_closeness(capsys):
    worst = {}
    for recipe in (NormRecipe(), NormRecipe(inv="rsqrt", out_dtype="fp32"), NormRecipe(out_dtype="fp32")):
        r_max = e_max = 0.0
        for seed, data in itertools.product(range(3), ("normal", "heavy", "int8", "uniform")):
            x = make_norm_inputs(NormCase(seed=seed, rows=64, dim=512, data=data))
            r, e = check_against_fp64(x, recipe)
            r_max, e_max = max(r_max, r), max(e_max, e)
        worst[f"{recipe.inv}/{recipe.out_dtype}"] = (r_max, e_max / U)
    with capsys.disabled():
        print("\n[rms_norm golden vs fp64] " + "; ".join(
            f"{k}: max err/bound {r:.5f}, fp32-path max rel err {e:.2f} u" for k, (r, e) in worst.items()))


@pytest.mark.spec("P12")
@pytest.mark.parametrize("dtype", ["bf16", "fp32"])
def test_chunked_sum_of_squares_within_gamma(dtype):
    """chunk 1, 7, D, None: ss within gamma(chunks) of exact; outputs within the derived bound; two
    chunkings within the sum of their bounds; chunk D and None are the same single reduction."""
    for seed, data in itertools.product(range(3), ("normal", "heavy", "int8", "huge", "uniform")):
        inputs = make_norm_inputs(NormCase(seed=seed, rows=8, dim=96, data=data, dtype=dtype))
        x = inputs.x
        D = x.shape[-1]
        exact = (x.double() ** 2).sum(-1)
        traces = {}
        for chunk in (1, 7, D, None):
            recipe = NormRecipe(chunk=chunk, out_dtype="fp32")
            tr = rms_norm_trace(x, inputs.weight, eps=inputs.eps, recipe=recipe)
            g = gamma(chunks(D, chunk))
            assert bool(((tr.ss.double() - exact).abs() <= g * exact + HALF_SUBNORMAL).all()), chunk
            check_against_fp64(inputs, recipe)
            check_against_fp64(inputs, recipe.replace(out_dtype="bf16"))
            traces[chunk] = (tr, g)
        for (ca, (ta, ga)), (cb, (tb, gb)) in itertools.combinations(traces.items(), 2):
            assert bool(((ta.ss.double() - tb.ss.double()).abs() <= (ga + gb) * exact + 2 * HALF_SUBNORMAL).all())
        assert torch.equal(traces[D][0].y, traces[None][0].y)
        assert torch.equal(traces[D][0].ss, traces[None][0].ss)


@pytest.mark.spec("P4")
@pytest.mark.parametrize("k", [1, 2, 5, 8, 12, 16, 23])
def test_rsqrt_approx_relative_error(k, capsys):
    """rsqrt_approx(k) rounds exact 1/sqrt(v) to a k-bit significand in [0.5, 1): relative error
    <= 2^-k (+ u for the fp32 cast). NOT <= 2^-(k+1): that holds only at the top of the binade;
    near significand 0.5 half an ulp (2^-(k+1)) is 2^-k relative, and the trace reaches it."""
    x = make_norm_inputs(NormCase(seed=k, rows=4096, dim=16, data="uniform", dtype="fp32")).x
    trace = rms_norm_trace(x, eps=1e-6, recipe=NormRecipe(inv="rsqrt_approx", approx_bits=k))
    exact = 1 / torch.sqrt(trace.v.double())
    rel = ((trace.inv.double() - exact) / exact).abs()
    assert float(rel.max()) <= 2.0 ** -k + U
    if k >= 5:  # enough distinct values to land near the bottom of a binade
        assert float(rel.max()) > 2.0 ** -(k + 1)
    with capsys.disabled():
        print(f"\n[rsqrt_approx k={k}] max rel err = {float(rel.max()) * 2 ** k:.3f} * 2^-{k}")


def test_zero_rows_give_zeros_with_positive_eps():
    for recipe, dtype in itertools.product(
            [NormRecipe(inv=i, out_dtype=o) for i in INV_VARIANTS for o in ("bf16", "fp32")], ("bf16", "fp32")):
        inputs = make_norm_inputs(NormCase(rows=3, dim=64, data="zero", dtype=dtype, eps=1e-6))
        y = rms_norm_golden(inputs.x, inputs.weight, eps=inputs.eps, recipe=recipe)
        assert torch.equal(y.float(), torch.zeros_like(y.float())), recipe
        assert torch.equal(rms_norm_fp64(inputs.x, inputs.weight, eps=inputs.eps),
                           torch.zeros_like(inputs.x, dtype=torch.float64))


def test_zero_row_with_zero_eps_is_nan():
    """Documented behaviour, not a SPEC requirement: with eps = 0 a zero row has v = 0, so
    INV(0) = +inf and y = 0 * inf = NaN, in the golden (every INV, both out dtypes), in the fp64
    truth (0 / sqrt(0)) and in torch.nn.functional.rms_norm alike. Nonzero rows are unaffected."""
    x = torch.zeros(2, 64, dtype=torch.bfloat16)
    x[1] = torch.randn(64, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    for inv, out in itertools.product(INV_VARIANTS, ("bf16", "fp32")):
        trace = rms_norm_trace(x, eps=0.0, recipe=NormRecipe(inv=inv, out_dtype=out))
        assert math.isinf(float(trace.inv[0])) and bool(torch.isnan(trace.y[0]).all()), (inv, out)
        assert bool(torch.isfinite(trace.y[1]).all())
    assert bool(torch.isnan(rms_norm_fp64(x, eps=0.0)[0]).all())
    assert bool(torch.isnan(torch.nn.functional.rms_norm(x.float(), (64,), eps=0.0)[0]).all())
