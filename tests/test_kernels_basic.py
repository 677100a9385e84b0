"""Smoke tests of the bundled Triton kernels (fast: well under a minute on the interpreter).

What is here: argument checks name the argument (P13), empty rows give exact zeros (P7), the
kernels' in-kernel bf16 rounding is bit-exact against golden.rounding, and kernel vs golden on
small cases for every recipe combination with a LOOSE sanity tolerance. The rigorous, derived
P1 bounds live in properties/; the tolerance here only catches gross errors (wrong rounding mode
everywhere, lost tiles, wrong rows), not one-ulp drift.
"""
from kernelprop import kernels  # noqa: F401  (sets TRITON_INTERPRET=1 before triton is imported, on CPU)

import itertools

import pytest
import torch

from kernelprop.golden.attention import sparse_attention_golden
from kernelprop.golden.inputs import AttnCase, make_attn_inputs
from kernelprop.golden.rmsnorm import rms_norm_golden
from kernelprop.golden.rounding import round_to_bf16
from kernelprop.kernels import AttnRecipe, sparse_decode_attention
from kernelprop.kernels.rms_norm import rms_norm
from kernelprop.golden.rmsnorm_inputs import NormRecipe
from kernelprop.kernels.sparse_attention import _attn_config

# Smoke tolerance: max |kernel - golden| <= SMOKE_REL * max |golden|. Not derived (see the module
# docstring): one bf16 flip moves o by ~2^-8 * p_j |k_j| / L, so 2e-2 admits a few flips but not a
# systematically wrong P (truncation everywhere gives ~2.4e-3 relative per SPEC 4, lost tiles O(1)).
SMOKE_REL = 2e-2
# Tight check of the P rounding on the interpreter only: there exp and the dots are numpy fp32, so
# kernel and golden share every P bit and differ by summation order alone (measured <= 5e-7 of
# max |o|); a wrong rounding mode moves o by ~1e-3. On GPU tl.exp is approximate (SPEC 5) and P
# flips are legitimate: that case is the derived P1 bound's job (properties/).
INTERP_REL = 1e-5
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _small_case(**changes) -> AttnCase:
    """T=4, H=3, D=40, K=45 with pads, out-of-range and duplicate indices, shuffled, strided views
    and NaN in every pool row no valid index reaches."""
    base = AttnCase(seed=0, batches=2, tokens_per_batch=2, heads=3, head_dim=40, page_size=8,
                    window=16, topk=24, extra=5, pad_prob=0.2, oob_prob=0.1, dup_prob=0.1,
                    shuffle=True, strided=True, nan_unused=True, device=DEVICE)
    return base.replace(**changes)


def _assert_close_smoke(o: torch.Tensor, ref: torch.Tensor, what: str) -> None:
    assert o.shape == ref.shape and o.dtype == torch.float32, what
    assert torch.isfinite(o).all(), f"{what}: non-finite output"
    err = (o - ref).abs()
    scale = ref.abs().max().item()
    worst = tuple(int(i) for i in torch.unravel_index(err.argmax(), err.shape))
    assert err.max().item() <= SMOKE_REL * scale, (
        f"{what}: max |o - golden| = {err.max().item():.3g} at {worst} "
        f"(o={o[worst].item():.6g}, golden={ref[worst].item():.6g}) > {SMOKE_REL} * {scale:.3g}")


# %% attributes (SPEC 6)

def test_declared_recipes():
    assert sparse_decode_attention.recipe == AttnRecipe() and sparse_decode_attention.accepts_recipe
    assert rms_norm.recipe == NormRecipe() and rms_norm.accepts_recipe


# %% P1 smoke: kernel vs golden for every recipe combination

@pytest.mark.parametrize("p_dtype,l_from,rounding",
                         list(itertools.product(("bf16", "fp32"), ("rounded", "unrounded"), ("rne", "rtz", "rna"))))
def test_attention_matches_golden_smoke(p_dtype, l_from, rounding):
    """P1 (smoke): tiles 5 (non-divisor, several tiles) and 64 (> K: one tile)."""
    seed = ("bf16", "fp32").index(p_dtype) * 6 + ("rounded", "unrounded").index(l_from) * 3 \
        + ("rne", "rtz", "rna").index(rounding)
    inputs = make_attn_inputs(_small_case(seed=seed))
    for tile in (5, 64):
        recipe = AttnRecipe(tile=tile, p_dtype=p_dtype, l_from=l_from, rounding=rounding)
        o = inputs.call(sparse_decode_attention, recipe=recipe)
        ref = inputs.call(sparse_attention_golden, recipe=recipe)
        _assert_close_smoke(o, ref, f"{recipe}")


def test_attention_two_pass_tile_smoke():
    """P1 (smoke): a tile wider than the lane block (TWO_PASS path) and a head count > 16."""
    case = _small_case(heads=20, head_dim=64, window=64, topk=150, max_cmp_len=200, strided=False)
    inputs = make_attn_inputs(case)
    recipe = AttnRecipe(tile=150)
    assert _attn_config(20, 64, 150, inputs.sparse_indices.shape[1])["TWO_PASS"]
    _assert_close_smoke(inputs.call(sparse_decode_attention, recipe=recipe),
                        inputs.call(sparse_attention_golden, recipe=recipe), "two-pass tile 150")


@pytest.mark.parametrize("head_dim,heads,tile", [(300, 2, 7), (576, 2, 64), (512, 32, 64)])
def test_attention_column_blocks_smoke(head_dim, heads, tile):
    """P1 (smoke): a head dim split into two column blocks: 300 = 256 + a 64-wide tail with 20
    masked columns, 576 = 512 + 64 (the widest CUDA draw), and 512 = 256 + 256 at 32 heads (the
    DSV4 layout); several tiles and one tile."""
    case = _small_case(head_dim=head_dim, heads=heads, topk=12, extra=2)
    cfg = _attn_config(heads, head_dim, tile, case.window + case.topk + case.extra)
    assert cfg["HAS_TAIL"] and cfg["BLOCK_D"] + cfg["BLOCK_E"] <= head_dim + 20
    inputs = make_attn_inputs(case)
    recipe = AttnRecipe(tile=tile)
    o = inputs.call(sparse_decode_attention, recipe=recipe)
    ref = inputs.call(sparse_attention_golden, recipe=recipe)
    _assert_close_smoke(o, ref, f"D={head_dim} tile {tile}")
    if not torch.cuda.is_available():  # interpreter: numpy exp and fp32 dots, summation order only
        assert (o - ref).abs().max().item() <= INTERP_REL * ref.abs().max().item()


@pytest.mark.skipif(torch.cuda.is_available(), reason="tight only where exp is numpy's (interpreter)")
def test_attention_bf16_p_rounding_is_recipe_exact():
    """The in-kernel P rounding is golden.rounding's for each mode: kernel == golden within
    INTERP_REL of max |o| (summation order only), while the rne and rtz goldens differ by far more."""
    inputs = make_attn_inputs(_small_case(seed=7, strided=False))
    refs = {}
    for mode in ("rne", "rtz", "rna"):
        o = inputs.call(sparse_decode_attention, recipe=AttnRecipe(rounding=mode))
        refs[mode] = inputs.call(sparse_attention_golden, recipe=AttnRecipe(rounding=mode))
        err = (o - refs[mode]).abs().max().item()
        assert err <= INTERP_REL * refs[mode].abs().max().item(), (mode, err)
    gap = (refs["rne"] - refs["rtz"]).abs().max().item()
    assert gap > 10 * INTERP_REL * refs["rne"].abs().max().item()  # the inputs exercise the rounding


# %% P7: empty rows, empty tensors

def test_attention_no_valid_key_gives_exact_zeros():
    inputs = make_attn_inputs(_small_case(strided=False))
    idx = inputs.sparse_indices.clone()
    idx[1] = -1                                       # token 1: pads only
    idx[2] = 10 ** 6                                  # token 2: out of range only
    o = inputs.replace(sparse_indices=idx).call(sparse_decode_attention)
    assert torch.equal(o[1], torch.zeros_like(o[1])) and torch.equal(o[2], torch.zeros_like(o[2]))
    # seqused 0 for a batch: used <= 0 for its tokens, nothing visible
    seq = inputs.seqused_kv.clone()
    seq[0] = 0
    o = inputs.replace(seqused_kv=seq).call(sparse_decode_attention)
    assert torch.equal(o[:2], torch.zeros_like(o[:2]))


@pytest.mark.parametrize("sink", [float("inf"), float("-inf")])
def test_attention_infinite_sinks_are_finite(sink):
    inputs = make_attn_inputs(_small_case(strided=False))
    o = inputs.replace(attn_sink=torch.full_like(inputs.attn_sink, sink)).call(sparse_decode_attention)
    assert torch.isfinite(o).all()
    if sink == float("inf"):
        assert torch.equal(o, torch.zeros_like(o))


def test_attention_empty_batch():
    inputs = make_attn_inputs(_small_case(strided=False))
    B0 = inputs.ori_block_table[:0]
    o = sparse_decode_attention(inputs.q[:0], inputs.ori_kv, B0, inputs.cmp_kv, inputs.cmp_block_table[:0],
                                inputs.sparse_indices[:0], inputs.seqused_kv[:0], inputs.attn_sink,
                                window=inputs.window, tokens_per_batch=inputs.tokens_per_batch)
    assert o.shape == (0,) + tuple(inputs.q.shape[1:]) and o.dtype == torch.float32


# %% P13: bad input names the argument

def _bad_attn_inputs():
    """(label, function of AttnInputs -> (args, kwargs), exception, words the message must hold)."""
    def with_(**kw):
        def f(i):
            return i.replace(**{k: v(i) for k, v in kw.items() if k in i.TENSORS}).args(), \
                {**i.kwargs(), **{k: v(i) for k, v in kw.items() if k not in i.TENSORS}}
        return f
    return [
        ("q dtype", with_(q=lambda i: i.q.float()), TypeError, ["q"]),
        ("q not a tensor", with_(q=lambda i: i.q.tolist()), TypeError, ["q"]),
        ("q rank", with_(q=lambda i: i.q[0]), ValueError, ["q"]),
        ("q stride", with_(q=lambda i: i.q.transpose(1, 2).contiguous().transpose(1, 2)), ValueError, ["q", "stride"]),
        ("ori_kv dtype", with_(ori_kv=lambda i: i.ori_kv.half()), TypeError, ["ori_kv"]),
        ("ori_kv D", with_(ori_kv=lambda i: i.ori_kv[..., :-1]), ValueError, ["ori_kv"]),
        ("cmp_kv page size", with_(cmp_kv=lambda i: i.cmp_kv[:, :-1]), ValueError, ["cmp_kv"]),
        ("cmp_kv stride", with_(cmp_kv=lambda i: i.cmp_kv.transpose(1, 2).contiguous().transpose(1, 2)),
         ValueError, ["cmp_kv", "stride"]),
        ("ori_block_table dtype", with_(ori_block_table=lambda i: i.ori_block_table.long()), TypeError,
         ["ori_block_table"]),
        ("cmp_block_table rows", with_(cmp_block_table=lambda i: i.cmp_block_table[:1]), ValueError,
         ["cmp_block_table"]),
        ("sparse_indices dtype", with_(sparse_indices=lambda i: i.sparse_indices.long()), TypeError,
         ["sparse_indices"]),
        ("sparse_indices rows", with_(sparse_indices=lambda i: i.sparse_indices[:-1]), ValueError,
         ["sparse_indices"]),
        ("seqused_kv shape", with_(seqused_kv=lambda i: i.seqused_kv[:, None]), ValueError, ["seqused_kv"]),
        ("attn_sink dtype", with_(attn_sink=lambda i: i.attn_sink.double()), TypeError, ["attn_sink"]),
        ("attn_sink shape", with_(attn_sink=lambda i: i.attn_sink[:-1]), ValueError, ["attn_sink"]),
        ("attn_sink NaN", with_(attn_sink=lambda i: torch.full_like(i.attn_sink, float("nan"))), ValueError,
         ["attn_sink"]),
        ("device", with_(attn_sink=lambda i: i.attn_sink.to("meta")), ValueError, ["attn_sink", "device"]),
        ("T % S", with_(tokens_per_batch=lambda i: 3), ValueError, ["tokens_per_batch"]),
        ("window", with_(window=lambda i: 0), ValueError, ["window"]),
        ("softmax_scale", with_(softmax_scale=lambda i: -1.0), ValueError, ["softmax_scale"]),
        ("softmax_scale inf", with_(softmax_scale=lambda i: float("inf")), ValueError, ["softmax_scale"]),
    ]


@pytest.mark.parametrize("label,mutate,exc,words", _bad_attn_inputs(), ids=lambda v: v if isinstance(v, str) else "")
def test_attention_bad_input_names_argument(label, mutate, exc, words):
    """P13: each bad argument raises exc whose message names it."""
    args, kwargs = mutate(make_attn_inputs(_small_case(strided=False)))
    with pytest.raises(exc) as info:
        sparse_decode_attention(*args, **kwargs)
    for word in words:
        assert word in str(info.value), f"{label}: {info.value!r} does not name {word!r}"


def test_attention_bad_recipe():
    inputs = make_attn_inputs(_small_case(strided=False))
    with pytest.raises(TypeError, match="recipe"):
        inputs.call(sparse_decode_attention, recipe=NormRecipe())
    with pytest.raises(NotImplementedError, match="compacted"):
        inputs.call(sparse_decode_attention, recipe=AttnRecipe(tiling="compacted"))


def _first_valid_window_and_cmp(inputs):
    """(t, k) of a valid window index and of a valid compressed index (shuffled rows)."""
    from kernelprop.golden.attention import valid_index_mask
    valid = valid_index_mask(inputs.sparse_indices, inputs.seqused_kv, window=inputs.window,
                             tokens_per_batch=inputs.tokens_per_batch)
    r = inputs.sparse_indices
    win = (valid & (r < inputs.window)).nonzero()[0].tolist()
    cmp = (valid & (r >= inputs.window)).nonzero()[0].tolist()
    return win, cmp


@pytest.mark.parametrize("table", ["ori_block_table", "cmp_block_table"])
def test_attention_page_out_of_pool(table):
    """P13: a valid index whose page id is outside its pool raises (check_indices=True) naming the
    table and the token; with check_indices=False that lane is ignored, never read."""
    inputs = make_attn_inputs(_small_case(strided=False))
    win, cmp = _first_valid_window_and_cmp(inputs)
    t, k = win if table == "ori_block_table" else cmp
    r = int(inputs.sparse_indices[t, k])
    slot = r if table == "ori_block_table" else r - inputs.window
    b = t // inputs.tokens_per_batch
    bad = getattr(inputs, table).clone()
    pool = inputs.ori_kv if table == "ori_block_table" else inputs.cmp_kv
    bad[b, slot // pool.shape[1]] = pool.shape[0] + 3
    broken = inputs.replace(**{table: bad})
    with pytest.raises(ValueError) as info:
        broken.call(sparse_decode_attention)
    assert table in str(info.value) and f"token {t}" in str(info.value)
    o = broken.call(sparse_decode_attention, check_indices=False)
    assert torch.isfinite(o).all()


def test_attention_block_column_out_of_table():
    """P13: a valid index needing a block column beyond the table width raises naming the table."""
    inputs = make_attn_inputs(_small_case(strided=False))
    _, (t, k) = _first_valid_window_and_cmp(inputs)
    narrow = inputs.cmp_block_table[:, :0]
    with pytest.raises(ValueError, match="cmp_block_table"):
        inputs.replace(cmp_block_table=narrow).call(sparse_decode_attention)
    o = inputs.replace(cmp_block_table=narrow).call(sparse_decode_attention, check_indices=False)
    assert torch.isfinite(o).all()


# %% RMSNorm

def test_rms_norm_bf16_rounding_bit_exact():
    """The output rounding is golden.rounding.round_to_bf16, bit for bit, ties included.

    x = +-1 and eps = 0 make ss = D exactly, v = 1, inv = 1 under every INV variant, so y = x * w
    exactly and the output is round(+-w): w carries random low bits and exact ties (0x8000).
    """
    g = torch.Generator().manual_seed(1)
    D = 96
    x = torch.where(torch.rand(5, D, generator=g) < 0.5, -1.0, 1.0)
    bits = torch.randint(0x3E000000, 0x41000000, (D,), generator=g, dtype=torch.int64)
    bits[::3] = (bits[::3] & ~0xFFFF) | 0x8000                      # exact ties
    bits[1::3] = (bits[1::3] & ~0x1FFFF) | 0x18000                  # ties with an odd upper half
    w = bits.to(torch.int32).view(torch.float32)
    for mode in ("rne", "rtz", "rna"):
        for inv in ("rsqrt", "recip_sqrt", "recip_sqrt_rn"):
            y = rms_norm(x, w, eps=0.0, recipe=NormRecipe(inv=inv, rounding=mode))
            want = round_to_bf16(x * w, mode).to(torch.bfloat16)
            assert torch.equal(y.view(torch.int16), want.view(torch.int16)), (mode, inv)


def test_rms_norm_matches_torch_same_op_order_bitwise():
    """fp32 x, no weight, chunk None: equal to a torch rewrite with the same op order, bit for bit.
    x holds small integers so every x^2 and every partial sum is exact in fp32: the (unspecified)
    summation order of tl.sum cannot matter, and the remaining ops are correctly rounded on both
    sides (div_rn, + eps, 1/sqrt on the interpreter; torch fp32 is IEEE)."""
    g = torch.Generator().manual_seed(2)
    x = torch.randint(-50, 51, (6, 3, 77), generator=g).float()
    for rounding in ("rne", "rtz", "rna"):
        y = rms_norm(x, eps=1e-6, recipe=NormRecipe(rounding=rounding))
        v = (x * x).sum(-1, keepdim=True) / 77 + torch.tensor(1e-6, dtype=torch.float32)
        ref = round_to_bf16(x * (1.0 / torch.sqrt(v)), rounding).to(torch.bfloat16)
        assert torch.equal(y.view(torch.int16), ref.view(torch.int16)), rounding


@pytest.mark.parametrize("dtype,chunk,out_dtype,weight", [
    (torch.bfloat16, None, "bf16", True),
    (torch.float32, 7, "fp32", False),
    (torch.bfloat16, 128, "bf16", True),
])
def test_rms_norm_matches_golden_smoke(dtype, chunk, out_dtype, weight):
    """P1 (smoke): odd D, chunked sums, a strided row view; at most a few bf16 flips (output
    rounding boundary) or fp32 ulps differ."""
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(9, 2 * 333, generator=g) * 4).to(dtype)[:, ::2]
    x = x.contiguous()[:, :300]                                     # row stride 333, last dim contiguous
    w = (1 + 0.5 * torch.randn(300, generator=g)).to(dtype) if weight else None
    recipe = NormRecipe(chunk=chunk, out_dtype=out_dtype)
    y = rms_norm(x, w, recipe=recipe)
    ref = rms_norm_golden(x, w, recipe=recipe)
    assert y.dtype == ref.dtype and y.shape == x.shape
    rel = ((y.float() - ref.float()).abs() / ref.float().abs().clamp_min(1e-30)).max().item()
    assert rel <= 2 ** -7, f"max relative difference {rel:.3g} > one bf16 ulp"


def test_rms_norm_empty_and_1d():
    assert rms_norm(torch.zeros(0, 8)).shape == (0, 8)
    y = rms_norm(torch.ones(5), eps=0.0)
    assert torch.equal(y, torch.ones(5, dtype=torch.bfloat16))


@pytest.mark.parametrize("label,call,exc,word", [
    ("x dtype", lambda: rms_norm(torch.ones(2, 4, dtype=torch.float16)), TypeError, "x"),
    ("x not a tensor", lambda: rms_norm([1.0, 2.0]), TypeError, "x"),
    ("x stride", lambda: rms_norm(torch.ones(4, 3).t()), ValueError, "x"),
    ("weight shape", lambda: rms_norm(torch.ones(2, 4), torch.ones(5)), ValueError, "weight"),
    ("weight dtype", lambda: rms_norm(torch.ones(2, 4), torch.ones(4, dtype=torch.bfloat16)), TypeError, "weight"),
    ("weight device", lambda: rms_norm(torch.ones(2, 4), torch.ones(4, device="meta")), ValueError, "weight"),
    ("eps negative", lambda: rms_norm(torch.ones(2, 4), eps=-1.0), ValueError, "eps"),
    ("eps inf", lambda: rms_norm(torch.ones(2, 4), eps=float("inf")), ValueError, "eps"),
    ("eps type", lambda: rms_norm(torch.ones(2, 4), eps="1e-6"), TypeError, "eps"),
    ("recipe type", lambda: rms_norm(torch.ones(2, 4), recipe=AttnRecipe()), TypeError, "recipe"),
    ("rsqrt_approx", lambda: rms_norm(torch.ones(2, 4), recipe=NormRecipe(inv="rsqrt_approx")),
     NotImplementedError, "recipe.inv"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_rms_norm_bad_input_names_argument(label, call, exc, word):
    """P13 for rms_norm."""
    with pytest.raises(exc) as info:
        call()
    assert word in str(info.value), f"{label}: {info.value!r} does not name {word!r}"
