"""The CUDA error model's instruction figures measured on the GPU (a script for the first GPU run,
benchmarks/gpu_check.sh; docs/bounds.md#gpu-model):

    python benchmarks/gpu_instruction_errors.py [--json PATH]

Per modelled instruction, the worst error over its argument range against the model's allowance
(ratio <= 1: the model holds on this GPU):
  tl.exp              ex2.approx.f32 of fp32(x log2 e): relative to exp(x), allowance
                      attention_bounds.exp_rel(CUDA_MODEL) (normal results, x in [-87, 0])
  tl.math.rsqrt       rsqrt.approx.ftz.f32: relative, allowance INV_ULPS_BY_VARIANT["cuda"]["rsqrt"] 2^-23
  1 / tl.sqrt         sqrt.approx.ftz + div.full: allowance ["recip_sqrt"] 2^-23
  div_rn(1, sqrt_rn)  sqrt.rn + div.rn: allowance ["recip_sqrt_rn"] 2^-23
  bf16 tl.dot, D=512  wgmma k16 with fp32 accumulation on adversarial data (same-sign heavy-tailed,
                      one dominant product, the suite's tc_adversarial kind, zero-mean i.i.d.):
                      |dot - exact| / TensorCoreModel(extra_bits=0).dot_error, and the extra-bit
                      counts b whose bit-exact emulation (golden.error_model.tc_dot_emulate) equals
                      the GPU on every dot: the tensor-core parameter this GPU has.
Importing it needs no GPU; without CUDA it prints that it skipped and exits 0.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from kernelprop.golden.error_model import FP32_ULP_REL, TensorCoreModel, tc_dot_emulate  # noqa: E402

BLOCK = 1024
D = 512


@triton.jit
def _unary_kernel(x_ptr, y_ptr, n, OP: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask, other=1.0)
    if OP == 0:
        y = tl.exp(x)
    elif OP == 1:
        y = tl.math.rsqrt(x)
    elif OP == 2:
        y = 1.0 / tl.sqrt(x)
    else:
        y = tl.math.div_rn(1.0, tl.math.sqrt_rn(x))
    tl.store(y_ptr + offs, y, mask=mask)


@triton.jit
def _dot_kernel(q_ptr, k_ptr, s_ptr, M: tl.constexpr, N: tl.constexpr, DIM: tl.constexpr):
    rm = tl.arange(0, M)
    rn = tl.arange(0, N)
    rd = tl.arange(0, DIM)
    q = tl.load(q_ptr + rm[:, None] * DIM + rd[None, :])
    k = tl.load(k_ptr + rd[:, None] * N + rn[None, :])
    tl.store(s_ptr + rm[:, None] * N + rn[None, :], tl.dot(q, k, out_dtype=tl.float32))


def _unary(x: torch.Tensor, op: int) -> torch.Tensor:
    y = torch.empty_like(x)
    _unary_kernel[(triton.cdiv(x.numel(), BLOCK),)](x, y, x.numel(), OP=op, BLOCK=BLOCK)
    return y


def _ratio(got: torch.Tensor, exact: torch.Tensor, allowed) -> tuple[float, float]:
    rel = ((got.double() - exact) / exact).abs()
    return float((rel / allowed).max()), float(rel.max() / FP32_ULP_REL)


def instruction_rows(dev: str) -> list[dict]:
    from kernelprop.golden.attention_bounds import CUDA_MODEL, exp_rel
    from kernelprop.golden.rmsnorm_bounds import INV_ULPS_BY_VARIANT

    gen = torch.Generator().manual_seed(0)
    rows = []
    x = (-torch.rand(1 << 22, generator=gen, dtype=torch.float64) * 87).float()
    x = torch.cat([x, -torch.arange(0, 87 * 64, dtype=torch.float32) / 64])
    exact = torch.exp(x.double())
    got = _unary(x.to(dev), 0).cpu()
    ratio, worst = _ratio(got, exact, exp_rel(x.double(), CUDA_MODEL))
    rows.append(dict(instruction="tl.exp (ex2.approx.f32)", worst_rel_units=worst, ratio=ratio))
    v = torch.exp2(torch.rand(1 << 22, generator=gen, dtype=torch.float64) * 250 - 125).float()
    exact = 1 / v.double().sqrt()
    for op, (name, variant) in enumerate((("tl.math.rsqrt (rsqrt.approx.ftz)", "rsqrt"),
                                          ("1 / tl.sqrt (sqrt.approx.ftz + div.full)", "recip_sqrt"),
                                          ("div_rn(1, sqrt_rn) (sqrt.rn + div.rn)", "recip_sqrt_rn")), 1):
        got = _unary(v.to(dev), op).cpu()
        ratio, worst = _ratio(got, exact, INV_ULPS_BY_VARIANT["cuda"][variant] * FP32_ULP_REL)
        rows.append(dict(instruction=name, worst_rel_units=worst, ratio=ratio))
    return rows


def _dot_data(kind: str, gen: torch.Generator, n: int) -> torch.Tensor:
    """[n, D] fp32 rows of one adversarial kind."""
    from kernelprop.golden.sampling import tc_adversarial_values

    if kind == "iid":
        return torch.randn(n, D, generator=gen)
    if kind == "heavy_same_sign":
        return torch.exp(3 * torch.randn(n, D, generator=gen))
    if kind == "dominant":
        x = torch.rand(n, D, generator=gen) + 0.5
        x[:, 37] = 2.0 ** 14
        return x
    return tc_adversarial_values(gen, (n, D))


def dot_rows(dev: str) -> list[dict]:
    rows = []
    gen = torch.Generator().manual_seed(1)
    M = N = 64
    for kind in ("iid", "heavy_same_sign", "dominant", "tc_adversarial"):
        q = _dot_data(kind, gen, M).bfloat16()
        k = _dot_data(kind, gen, N).bfloat16()
        s = torch.empty(M, N, dtype=torch.float32, device=dev)
        _dot_kernel[(1,)](q.to(dev).contiguous(), k.t().contiguous().to(dev), s, M=M, N=N, DIM=D)
        got = s.cpu().double()
        prod = q.double()[:, None, :] * k.double()[None, :, :]
        err = (got - prod.sum(-1)).abs()
        allowed = TensorCoreModel(extra_bits=0).dot_error(prod)
        matches = [b for b in range(0, 9)
                   if torch.equal(tc_dot_emulate(q[:, None, :], k[None, :, :], TensorCoreModel(extra_bits=b)),
                                  got.float())]
        rows.append(dict(instruction=f"bf16 tl.dot D={D} ({kind})",
                         worst_rel_units=float((err / prod.abs().sum(-1)).max() / FP32_ULP_REL),
                         ratio=float((err / allowed.clamp_min(1e-300)).max()),
                         emulation_bits_matching=matches))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_instruction_errors: no CUDA device: skipped")
        return 0
    rows = instruction_rows("cuda") + dot_rows("cuda")
    print(f"{'instruction':58} {'worst (2^-23 rel)':>18} {'worst / allowance':>18}  emulation bits")
    for r in rows:
        print(f"{r['instruction']:58} {r['worst_rel_units']:18.3f} {r['ratio']:18.3f}  "
              f"{r.get('emulation_bits_matching', '')}")
    bad = [r["instruction"] for r in rows if r["ratio"] > 1]
    print("model holds on this GPU" if not bad else f"OUTSIDE THE MODEL: {bad}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({"rows": rows, "device": torch.cuda.get_device_name()},
                                                      indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
