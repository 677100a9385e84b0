"""The faithful interpreter (kernelprop.faithful, SPEC section 8) against torch's CPU semantics.

Every operation runs inside a real @triton.jit kernel under the interpreter (one launch over a big
block), so the test proves what kernels see. References:
  cast fp32 -> bf16/fp16   torch's RNE `.to()`; rtz: the fp32 bits truncated (bf16) / torch's RNE
                           stepped one ulp toward zero where it rounded away (fp16)
  bf16/fp16 + - * /        torch on the bf16/fp16 tensors (computes in fp32, rounds once)
  math on bf16             torch on the upcast value in fp64, rounded to fp32, then RNE to bf16
                           (numpy's and torch's fp32 exp disagree in the last fp32 bit on 3182 of
                           the 2^16 inputs, one of which survives the bf16 rounding: fp64 is the
                           one reference both round from)
  tl.dot bf16              |dot - exact| <= gamma_K * sum_k |a_ik b_kj|, gamma_K = K u / (1 - K u),
                           u = 2^-24: K exact products (8 + 8 bits <= 24) summed in fp32 in any order
                           make at most K - 1 roundings of relative size u each (Higham, Thm 4.4).
NaN compares as NaN (payloads are not compared). The raw interpreter fails most of these (checked
by test_raw_interpreter_differs, so the conformance tests can fail).
"""
import os

if "TRITON_INTERPRET" not in os.environ:
    os.environ["TRITON_INTERPRET"] = "1"

import numpy as np
import pytest
import torch
import triton
import triton.language as tl
from triton.language.extra import libdevice

from kernelprop.faithful import (CannotCheckOnBackend, autotune_config, faithful_interpreter,
                                 last_autotune_config, raw_interpreter)

pytestmark = pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1",
                                reason="the faithful interpreter patches the CPU interpreter")

ALL_BF16 = torch.arange(-32768, 32768, dtype=torch.int32).to(torch.int16).view(torch.bfloat16)
RNG = np.random.default_rng(20261206)


def same(actual: torch.Tensor, expected: torch.Tensor) -> int:
    """Number of elements whose bits differ (NaN == NaN)."""
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    a, e = actual.float(), expected.float()
    both_nan = torch.isnan(a) & torch.isnan(e)
    bits = {2: torch.int16, 4: torch.int32}[actual.element_size()]
    differ = (actual.view(bits) != expected.view(bits)) & ~both_nan
    return int(differ.sum())


# --- kernels -----------------------------------------------------------------------------------
@triton.jit
def _cast_kernel(x_ptr, y_ptr, n, RTZ: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    x = tl.load(x_ptr + offs, mask=m)
    if RTZ:
        y = x.to(y_ptr.dtype.element_ty, fp_downcast_rounding="rtz")
    else:
        y = x.to(y_ptr.dtype.element_ty)
    tl.store(y_ptr + offs, y, mask=m)


@triton.jit
def _store_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    tl.store(y_ptr + offs, tl.load(x_ptr + offs, mask=m), mask=m)  # the store casts fp32 -> bf16


@triton.jit
def _binary_kernel(a_ptr, b_ptr, y_ptr, n, OP: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    a = tl.load(a_ptr + offs, mask=m)
    b = tl.load(b_ptr + offs, mask=m)
    if OP == 0:
        y = a + b
    elif OP == 1:
        y = a - b
    elif OP == 2:
        y = a * b
    elif OP == 3:
        y = a / b
    elif OP == 4:
        y = tl.where(a < b, 1.0, 0.0).to(a.dtype)
    else:
        y = tl.maximum(a, b)
    tl.store(y_ptr + offs, y, mask=m)


@triton.jit
def _unary_kernel(x_ptr, y_ptr, n, OP: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    x = tl.load(x_ptr + offs, mask=m).to(tl.float32)  # bf16, widened exactly
    if OP == 0:
        y = libdevice.sqrt(x)
    elif OP == 1:
        y = libdevice.rsqrt(x)
    elif OP == 2:
        y = libdevice.exp(x)
    elif OP == 3:
        y = libdevice.exp2(x)
    elif OP == 4:
        y = libdevice.log(x)
    elif OP == 5:
        y = libdevice.log2(x)
    elif OP == 6:
        y = libdevice.sin(x)
    elif OP == 7:
        y = libdevice.cos(x)
    elif OP == 8:
        y = libdevice.tanh(x)
    elif OP == 9:
        y = libdevice.pow(x, 1.3)
    elif OP == 10:
        y = libdevice.div_rn(1.0, x)
    elif OP == 11:
        y = libdevice.sqrt_rn(x)
    elif OP == 12:
        y = libdevice.fast_expf(x)
    elif OP == 13:
        y = libdevice.erf(x)
    else:
        y = libdevice.log1p(x)
    tl.store(y_ptr + offs, y, mask=m)  # fp32 -> bf16 pointer: RNE store


@triton.jit
def _dot_kernel(a_ptr, b_ptr, c_ptr, M: tl.constexpr, K: tl.constexpr, N: tl.constexpr):
    rm, rk, rn = tl.arange(0, M), tl.arange(0, K), tl.arange(0, N)
    a = tl.load(a_ptr + rm[:, None] * K + rk[None, :])
    b = tl.load(b_ptr + rk[:, None] * N + rn[None, :])
    tl.store(c_ptr + rm[:, None] * N + rn[None, :], tl.dot(a, b, out_dtype=tl.float32))


@triton.jit
def _reduce_kernel(x_ptr, out_ptr, N: tl.constexpr):
    x = tl.load(x_ptr + tl.arange(0, N))  # bf16
    tl.store(out_ptr + 0, tl.max(x, 0))
    tl.store(out_ptr + 1, tl.min(x, 0))
    tl.store(out_ptr + 2, tl.argmax(x, 0).to(tl.bfloat16))


def launch(kernel, n, *args, block=1 << 16, **meta):
    kernel[(triton.cdiv(n, block),)](*args, n, BLOCK=block, **meta)


# --- casts -------------------------------------------------------------------------------------
def rounding_boundaries() -> torch.Tensor:
    """fp32 values at and next to every bf16 rounding boundary, over all 2^16 bf16 patterns:
    exact ties (low half 0x8000), their neighbours (0x7FFF, 0x8001), the bf16 values themselves
    (0x0000) and 0x0001/0xFFFF; the patterns cover +-0, subnormals, the largest finite (whose
    tie rounds to inf), inf and NaN."""
    high = np.arange(1 << 16, dtype=np.uint32) << 16
    low = np.array([0x0000, 0x0001, 0x7FFF, 0x8000, 0x8001, 0xFFFF], dtype=np.uint32)
    return torch.from_numpy((high[:, None] | low[None, :]).reshape(-1).view(np.float32).copy())


def torch_rtz(x: torch.Tensor, dtype) -> torch.Tensor:
    if dtype == torch.bfloat16:
        bits = x.view(torch.int32) >> 16
        out = bits.to(torch.int16).view(torch.bfloat16)
        return torch.where(torch.isnan(x), torch.tensor(float("nan"), dtype=dtype), out)
    near = x.to(dtype)
    up = torch.isfinite(x) & (near.float().abs() > x.abs())
    stepped = (near.view(torch.int16) - 1).view(dtype)
    return torch.where(up, stepped, near)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("rtz", [False, True])
def test_cast_rounding_boundaries(dtype, rtz):
    x = rounding_boundaries()
    y = torch.empty(x.shape, dtype=dtype)
    with faithful_interpreter():
        launch(_cast_kernel, x.numel(), x, y, RTZ=rtz, block=1 << 19)
    expected = torch_rtz(x, dtype) if rtz else x.to(dtype)
    assert same(y, expected) == 0


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cast_and_store_random_fp32(dtype):
    """2^24 (bf16) / 2^22 (fp16) random fp32 bit patterns (every exponent, NaN and inf), cast and
    stored."""
    for _ in range(4 if dtype == torch.bfloat16 else 1):
        bits = RNG.integers(0, 1 << 32, size=1 << 22, dtype=np.uint64).astype(np.uint32)
        x = torch.from_numpy(bits.view(np.float32).copy())
        y = torch.empty(x.shape, dtype=dtype)
        z = torch.empty(x.shape, dtype=dtype)
        with faithful_interpreter():
            launch(_cast_kernel, x.numel(), x, y, RTZ=False, block=1 << 20)
            launch(_store_kernel, x.numel(), x, z, block=1 << 20)
        expected = x.to(dtype)
        assert same(y, expected) == 0
        assert same(z, expected) == 0


# --- arithmetic --------------------------------------------------------------------------------
def random_pairs(dtype, n=1 << 20):
    """Random finite bit patterns of dtype, magnitudes spread over the whole exponent range."""
    bits = RNG.integers(0, 1 << 16, size=(2, n), dtype=np.uint32).astype(np.uint16)
    x = torch.from_numpy(bits.view(np.int16).copy()).view(dtype)
    x = torch.where(torch.isfinite(x), x, torch.ones((), dtype=dtype))
    return x[0].contiguous(), x[1].contiguous()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "lt", "max"])
def test_binary_random_pairs(dtype, op):
    code = ["add", "sub", "mul", "div", "lt", "max"].index(op)
    a, b = random_pairs(dtype)
    y = torch.empty_like(a)
    with faithful_interpreter():
        launch(_binary_kernel, a.numel(), a, b, y, OP=code, block=1 << 20)
    expected = {"add": a + b, "sub": a - b, "mul": a * b, "div": a / b,
                "lt": (a < b).to(dtype), "max": torch.maximum(a, b)}[op]
    assert same(y, expected) == 0


# --- math on all 2^16 bf16 values --------------------------------------------------------------
UNARY = {"sqrt": torch.sqrt, "rsqrt": torch.rsqrt, "exp": torch.exp, "exp2": torch.exp2,
         "log": torch.log, "log2": torch.log2, "sin": torch.sin, "cos": torch.cos, "tanh": torch.tanh,
         "pow(x, 1.3)": lambda v: torch.pow(v, float(np.float32(1.3))),  # the kernel's fp32 constant
         "div_rn(1, x)": lambda v: 1.0 / v,
         "sqrt_rn": torch.sqrt, "fast_expf": torch.exp, "erf": torch.erf, "log1p": torch.log1p}


@pytest.mark.parametrize("name", list(UNARY))
def test_libdevice_all_bf16(name):
    """libdevice function of every bf16 value (as fp32), stored into a bf16 pointer."""
    x = ALL_BF16.clone()
    y = torch.empty_like(x)
    with faithful_interpreter():
        launch(_unary_kernel, x.numel(), x, y, OP=list(UNARY).index(name))
    expected = UNARY[name](x.double()).float().to(torch.bfloat16)
    assert same(y, expected) == 0


# --- dot, reductions ---------------------------------------------------------------------------
def test_bf16_dot_within_accumulation_bound():
    M, K, N = 16, 256, 16
    u = 2.0 ** -24
    gamma = K * u / (1 - K * u)
    worst = 0.0
    for trial in range(8):
        a = torch.from_numpy(RNG.standard_normal((M, K)) * 2.0 ** RNG.integers(-8, 8, (M, 1))).to(torch.bfloat16)
        b = torch.from_numpy(RNG.standard_normal((K, N))).to(torch.bfloat16)
        c = torch.empty(M, N)
        with faithful_interpreter():
            _dot_kernel[(1,)](a, b, c, M=M, K=K, N=N)
        exact = a.double() @ b.double()
        bound = gamma * (a.double().abs() @ b.double().abs())
        assert torch.all((c.double() - exact).abs() <= bound)
        assert torch.allclose(c, a.float() @ b.float(), rtol=0, atol=float(2 * bound.max()))
        worst = max(worst, float(((c.double() - exact).abs() / bound.clamp_min(1e-300)).max()))
    assert worst <= 1.0


def test_bf16_max_min_argmax_on_values():
    x = torch.from_numpy(RNG.standard_normal(256)).to(torch.bfloat16)
    out = torch.empty(3, dtype=torch.bfloat16)
    with faithful_interpreter():
        _reduce_kernel[(1,)](x, out, N=256)
    assert out[0] == x.max() and out[1] == x.min() and int(out[2].float()) == int(x.float().argmax())


@triton.jit
def _fma_kernel(a_ptr, b_ptr, c_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    a, b, c = tl.load(a_ptr + offs, mask=m), tl.load(b_ptr + offs, mask=m), tl.load(c_ptr + offs, mask=m)
    tl.store(y_ptr + offs, tl.fma(a, b, c), mask=m)


def test_fp32_fma_single_rounding():
    """fma.rn: one rounding of a*b + c. Triples are kept where the fp64 sum of the exact fp64
    product and c is itself exact (TwoSum error 0), so torch's fp64 -> fp32 cast of it is the one
    correctly rounded reference."""
    a, b, c = (RNG.standard_normal(1 << 18).astype(np.float32) for _ in range(3))
    p = a.astype(np.float64) * b.astype(np.float64)
    s = p + c
    bb = s - p
    exact = ((p - (s - bb)) + (c - bb)) == 0
    a, b, c, s = a[exact], b[exact], c[exact], s[exact]
    assert exact.mean() > 0.9
    ta, tb, tc = (torch.from_numpy(v.copy()) for v in (a, b, c))
    y, raw = torch.empty_like(ta), torch.empty_like(ta)
    with faithful_interpreter():
        launch(_fma_kernel, ta.numel(), ta, tb, tc, y, block=1 << 18)
    with raw_interpreter():
        launch(_fma_kernel, ta.numel(), ta, tb, tc, raw, block=1 << 18)
    expected = torch.from_numpy(s).float()
    assert same(y, expected) == 0
    assert same(raw, expected) > 0  # the raw interpreter rounds the product first


@triton.jit
def _misc_kernel(x_ptr, h_ptr, i_ptr, ib_ptr, full_ptr, sum_ptr, N: tl.constexpr):
    offs = tl.arange(0, N)
    x = tl.load(x_ptr + offs)                                   # bf16
    tl.store(h_ptr + offs, x.to(tl.float16))                    # bf16 -> fp16
    tl.store(ib_ptr + offs, tl.load(i_ptr + offs).to(tl.bfloat16))  # int32 -> bf16
    tl.store(full_ptr + offs, tl.full([N], 1.2345678, tl.bfloat16))  # builder.get_bf16
    tl.store(sum_ptr, tl.sum(x, 0))                             # bf16 reduction


def test_bf16_conversions_constants_and_sum():
    n = 1 << 16
    x = ALL_BF16.clone()
    ints = torch.from_numpy(RNG.integers(-(1 << 31), 1 << 31, n, dtype=np.int64).astype(np.int32))
    h, ib, full = torch.empty(n, dtype=torch.float16), torch.empty(n, dtype=torch.bfloat16), torch.empty(n, dtype=torch.bfloat16)
    total = torch.empty(1, dtype=torch.bfloat16)
    small = (torch.from_numpy(RNG.standard_normal(n)).abs()).to(torch.bfloat16)
    with faithful_interpreter():
        _misc_kernel[(1,)](x, h, ints, ib, full, total, N=n)
        assert same(h, x.to(torch.float16)) == 0
        assert same(ib, ints.float().to(torch.bfloat16)) == 0  # via fp32, as Triton lowers it
        assert same(full, torch.full((n,), 1.2345678, dtype=torch.float32).to(torch.bfloat16)) == 0
        _misc_kernel[(1,)](small, h, ints, ib, full, total, N=n)
    # pairwise tree of depth log2(n) = 16, each add rounded to bf16 (u = 2^-8):
    # |sum - exact| <= gamma_16 * sum|x|, gamma_16 = 16 u / (1 - 16 u)
    exact = small.double().sum()
    gamma = 16 * 2.0 ** -8 / (1 - 16 * 2.0 ** -8)
    assert abs(float(total.double()) - float(exact)) <= gamma * float(small.double().abs().sum())


@triton.jit
def _nan_max_kernel(a_ptr, b_ptr, y_ptr, z_ptr, lt_ptr, ne_ptr, N: tl.constexpr):
    offs = tl.arange(0, N)
    a, b = tl.load(a_ptr + offs), tl.load(b_ptr + offs)
    tl.store(y_ptr + offs, tl.maximum(a, b))                                     # max.f32
    tl.store(z_ptr + offs, tl.maximum(a, b, propagate_nan=tl.PropagateNan.ALL))  # NaN-propagating
    tl.store(lt_ptr + offs, (a < b).to(tl.int8))                                 # ordered: NaN false
    tl.store(ne_ptr + offs, (a != b).to(tl.int8))                                # unordered: NaN true


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_maximum_and_comparison_nan_rules(dtype):
    a = torch.tensor([1.0, float("nan"), -2.0, float("nan")], dtype=dtype)
    b = torch.tensor([float("nan"), 3.0, -1.0, float("nan")], dtype=dtype)
    y, z = torch.empty_like(a), torch.empty_like(a)
    lt, ne = torch.empty(4, dtype=torch.int8), torch.empty(4, dtype=torch.int8)
    with faithful_interpreter():
        _nan_max_kernel[(1,)](a, b, y, z, lt, ne, N=4)
    assert same(y, torch.fmax(a, b)) == 0 and same(z, torch.maximum(a, b)) == 0
    assert torch.equal(lt, (a < b).to(torch.int8)) and torch.equal(ne, (a != b).to(torch.int8))


# --- what the raw interpreter gets wrong (so the tests above can fail) -------------------------
def test_raw_interpreter_differs():
    x = rounding_boundaries()
    y = torch.empty(x.shape, dtype=torch.bfloat16)
    a, b = random_pairs(torch.bfloat16, 1 << 12)
    z = torch.empty_like(a)
    with raw_interpreter():
        launch(_cast_kernel, x.numel(), x, y, RTZ=False, block=1 << 19)
        launch(_binary_kernel, a.numel(), a, b, z, OP=2, block=1 << 12)
    assert same(y, x.to(torch.bfloat16)) > 0
    assert same(z, a * b) > 0


# --- a Liger-like kernel, autotune, errors -----------------------------------------------------
@triton.autotune(configs=[triton.Config({"BLOCK": 64}), triton.Config({"BLOCK": 128}),
                          triton.Config({"BLOCK": 256})], key=["n_cols"])
@triton.heuristics({"HAS_WEIGHT": lambda args: args["w_ptr"] is not None})
@triton.jit
def _liger_like_kernel(x_ptr, w_ptr, y_ptr, n_cols, eps, HAS_WEIGHT: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for start in range(0, n_cols, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        x = tl.load(x_ptr + row * n_cols + offs, mask=offs < n_cols, other=0.0)
        acc += (x * x).to(tl.float32)  # bf16 x*x, rounded to bf16, as Liger's casting_mode "none"
    inv = libdevice.rsqrt(tl.sum(acc, 0) / n_cols + eps.to(tl.float32))
    for start in range(0, n_cols, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        m = offs < n_cols
        x = tl.load(x_ptr + row * n_cols + offs, mask=m, other=0.0)
        y = x.to(tl.float32) * inv
        if HAS_WEIGHT:
            y = y * tl.load(w_ptr + offs, mask=m, other=0.0).to(tl.float32)
        tl.store(y_ptr + row * n_cols + offs, y, mask=m)


def test_liger_like_pattern_and_each_autotune_config():
    rows, cols = 3, 300
    x = torch.randn(rows, cols).to(torch.bfloat16)
    w = torch.randn(cols).to(torch.bfloat16)
    sq = (x * x).float()  # torch: bf16 x*x rounds once per element
    for index in range(3):
        y = torch.empty_like(x)
        with faithful_interpreter(), autotune_config(index):
            _liger_like_kernel[(rows,)](x, w, y, cols, 1e-6)
        choice = last_autotune_config(_liger_like_kernel)
        assert choice.index == index and choice.count == 3 and f"BLOCK: {64 << index}" in choice.config
        inv = torch.rsqrt(sq.sum(1, dtype=torch.float64) / cols + 1e-6).float()
        expected = (x.float() * inv[:, None] * w.float()).to(torch.bfloat16)
        ulps = (y.float() - expected.float()).abs() / expected.float().abs().clamp_min(1e-30)
        assert float(ulps.max()) <= 2.0 ** -7  # the fp32 sum order differs: at most 1 bf16 ulp
    with raw_interpreter(), pytest.raises(Exception, match="active drivers"):
        _liger_like_kernel[(rows,)](x, w, torch.empty_like(x), cols, 1e-6)  # raw: needs a driver


@triton.jit
def _fp8_kernel(x_ptr, y_ptr):
    tl.store(y_ptr, tl.load(x_ptr).to(tl.float8e4nv).to(tl.float32))


@triton.jit
def _tf32_dot_kernel(a_ptr, c_ptr, N: tl.constexpr):
    r = tl.arange(0, N)
    a = tl.load(a_ptr + r[:, None] * N + r[None, :])
    tl.store(c_ptr + r[:, None] * N + r[None, :], tl.dot(a, a))  # fp32: tf32 by default


@triton.jit
def _asm_kernel(x_ptr, y_ptr):
    x = tl.load(x_ptr)
    y = tl.inline_asm_elementwise("mov.b32 $0, $1;", "=r,r", [x], dtype=tl.float32, is_pure=True, pack=1)
    tl.store(y_ptr, y)


def test_unsupported_operation_raises_cannot_check():
    x, y = torch.ones(16 * 16), torch.empty(16 * 16)
    with faithful_interpreter():
        with pytest.raises(CannotCheckOnBackend, match="cannot be checked on this backend: conversion"):
            _fp8_kernel[(1,)](x, y)
        with pytest.raises(CannotCheckOnBackend, match="input_precision=tf32"):
            _tf32_dot_kernel[(1,)](x, y, N=16)
        with pytest.raises(CannotCheckOnBackend, match="inline_asm"):
            _asm_kernel[(1,)](x, y)


def test_patches_are_undone_and_version_is_checked(monkeypatch):
    from triton.runtime import interpreter

    from kernelprop.faithful import UnsupportedTritonVersion

    with raw_interpreter():
        before = interpreter.InterpreterBuilder.cast_impl
        with faithful_interpreter():
            assert interpreter.InterpreterBuilder.cast_impl is not before
        assert interpreter.InterpreterBuilder.cast_impl is before
        assert not hasattr(interpreter.InterpreterBuilder, "get_bf16")
        with monkeypatch.context() as patch:
            patch.setattr(triton, "__version__", "3.9.0")
            with pytest.raises(UnsupportedTritonVersion, match="3.9.0"):
                with faithful_interpreter():
                    pass


def test_raw_switch_and_backend_choice(monkeypatch):
    from kernelprop.faithful import enter_for_backend

    monkeypatch.setenv("KERNELPROP_RAW_INTERPRETER", "1")
    assert enter_for_backend("cpu") is False
    monkeypatch.delenv("KERNELPROP_RAW_INTERPRETER")
    assert enter_for_backend("cuda") is False
    from kernelprop.faithful import session_autotune_config

    monkeypatch.setenv("KERNELPROP_AUTOTUNE_CONFIG", "2")
    assert session_autotune_config() == 2
    monkeypatch.setenv("KERNELPROP_AUTOTUNE_CONFIG", "x")
    with pytest.raises(ValueError, match="KERNELPROP_AUTOTUNE_CONFIG"):
        session_autotune_config()
