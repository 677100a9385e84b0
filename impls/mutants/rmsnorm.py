"""Planted-bug RMSNorm: a correct base and one subclass per bug.

`RMSNorm` is impls/torch_reference.py's rms_norm (torch fp32 reductions, torch rsqrt / 1 / sqrt)
split into the steps a kernel engineer writes, plus the bundled wrapper's argument checks. Each
mutant overrides the one step its bug lives in and passes every recipe field through untouched,
bugs aside. Module-level instances are the `--impl` targets, e.g.
`--impl rms_norm=impls/mutants/rmsnorm.py:rsqrt_12bit`; MUTANTS and CONTROLS at the end are its
catalogue entries (its registry record's `catalogue`).

Math of the base (SPEC section 3), fp32 throughout:
    ss = sum x^2 (chunk partials added left to right), inv = INV(ss / D + eps),
    y = round_out((x * inv) * w), rounded once to recipe.out_dtype with recipe.rounding.
The recipes of real models (golden/rmsnorm_inputs.py NormRecipe): w' = offset + w in fp32;
round_before_weight rounds x * inv to the output dtype first; compute_dtype "input" on a bf16 x
rounds each step's fp32 result to bf16 (`narrow`).
"""
from __future__ import annotations

import torch

from kernelprop.golden.rmsnorm_inputs import NormRecipe
from kernelprop.golden.rounding import round_to_bf16
from kernelprop.impls.mutants._args import check_norm_args


def _same(t):
    return t


def _keep_bits(x: torch.Tensor, bits: int) -> torch.Tensor:
    """x (fp32, positive) rounded to `bits` significant bits: a hardware rsqrt's precision."""
    drop = 24 - bits
    raw = x.contiguous().view(torch.int32)
    return ((raw + (1 << (drop - 1))) & ~((1 << drop) - 1)).view(torch.float32)


class RMSNorm:
    """The correct base (a catalogue control: it must pass the whole suite)."""

    recipe = NormRecipe()
    accepts_recipe = True

    def __call__(self, x, weight=None, *, eps=1e-6, recipe=None):
        check_norm_args(x, weight, eps, recipe)
        recipe = self.effective_recipe(recipe).for_input(x.dtype)
        if recipe.inv == "rsqrt_approx":
            raise NotImplementedError("rsqrt_approx is a golden-only model of a hardware rsqrt")
        c = lambda t: self.narrow(t, recipe)  # noqa: E731
        xf = self.load(x)
        ss = c(self.sum_of_squares(xf, recipe.chunk, c))
        eps32 = c(torch.tensor(float(eps), dtype=torch.float32, device=x.device))
        if recipe.compute_dtype == "promote":   # bf16 x: bf16 squares and tl.sum, bf16 eps
            ss = self.promoted_sum(round_to_bf16(xf * xf, recipe.rounding), recipe.rounding)
            eps32 = round_to_bf16(eps32, recipe.rounding)
        inv = c(self.inv_rms(ss, x.shape[-1], eps32, recipe, c))
        y = self.apply(xf, inv, weight, x.dtype, recipe, c)
        return self.store(y, recipe)

    # -- steps (each mutant overrides one) --------------------------------------------------

    def effective_recipe(self, recipe):
        return self.recipe if recipe is None else recipe

    def load(self, x):
        return x.float()

    def narrow(self, t, recipe):
        """One rounding of an fp32 result to the compute dtype (recipe resolved for x)."""
        return round_to_bf16(t, recipe.rounding) if recipe.compute_dtype == "input" else t

    def sum_of_squares(self, xf, chunk, c=_same):
        sq = c(xf * xf)
        if chunk is None:
            return sq.sum(-1)
        ss = torch.zeros(xf.shape[:-1], device=xf.device)
        for start in self.chunk_starts(xf.shape[-1], chunk):
            ss = ss + sq[..., start:start + chunk].sum(-1)
        return ss

    def promoted_sum(self, sq, rounding):
        """A bf16 tl.sum: zero-padded to the block (next power of two), halves added pairwise,
        each addition rounded to bf16."""
        block = 1 << (sq.shape[-1] - 1).bit_length()
        s = torch.cat([sq, sq.new_zeros(*sq.shape[:-1], block - sq.shape[-1])], -1)
        while s.shape[-1] > 1:
            s = round_to_bf16(s[..., :s.shape[-1] // 2] + s[..., s.shape[-1] // 2:], rounding)
        return s[..., 0]

    def chunk_starts(self, n: int, chunk: int):
        """First columns of the chunks, in the order their partial sums are added."""
        return range(0, n, chunk)

    def mean(self, ss, D):
        return ss / D

    def inv_rms(self, ss, D, eps, recipe, c=_same):
        return self.inverse(c(c(self.mean(ss, D)) + eps), recipe)

    def inverse(self, v, recipe):
        return torch.rsqrt(v) if recipe.inv == "rsqrt" else 1.0 / torch.sqrt(v)

    def apply(self, xf, inv, weight, in_dtype, recipe=NormRecipe(), c=_same):
        t = c(xf * inv[..., None])
        if weight is None:
            return t
        w = c(self.offset_weight(weight, recipe))
        if recipe.compute_dtype == "promote":
            w = round_to_bf16(w, recipe.rounding)
        if recipe.round_before_weight:
            t = self.before_weight(t, recipe)
        return c(t * w)

    def offset_weight(self, weight, recipe):
        return weight.float() + recipe.weight_offset

    def before_weight(self, t, recipe):
        """round_before_weight: x * inv rounded to the output dtype."""
        return t if recipe.out_dtype == "fp32" else round_to_bf16(t, recipe.rounding)

    def store(self, y, recipe):
        if recipe.out_dtype == "fp32":
            return y
        return round_to_bf16(y, recipe.rounding).to(torch.bfloat16)


reference = RMSNorm()


class Rsqrt12Bits(RMSNorm):
    def inverse(self, v, recipe):
        return _keep_bits(torch.rsqrt(v), 12)


class Rsqrt10Bits(RMSNorm):
    def inverse(self, v, recipe):
        return _keep_bits(torch.rsqrt(v), 10)


class EpsAfterSqrt(RMSNorm):
    def inv_rms(self, ss, D, eps, recipe, c=_same):
        return 1.0 / (torch.sqrt(self.mean(ss, D)) + eps)


class EpsDropped(RMSNorm):
    def inv_rms(self, ss, D, eps, recipe, c=_same):
        return self.inverse(self.mean(ss, D), recipe)


class EpsAddedToSum(RMSNorm):
    def inv_rms(self, ss, D, eps, recipe, c=_same):
        return self.inverse((ss + eps) / D, recipe)


class MeanOverPaddedLength(RMSNorm):
    def mean(self, ss, D):
        return ss / (1 << (D - 1).bit_length())  # the kernel's BLOCK size, not D


class SquaresAccumulatedInBf16(RMSNorm):
    def sum_of_squares(self, xf, chunk, c=_same):
        acc = torch.zeros(xf.shape[:-1], dtype=torch.bfloat16, device=xf.device)
        for i in range(xf.shape[-1]):
            acc = acc + (xf[..., i] * xf[..., i]).to(torch.bfloat16)
        return acc.float()


class Fp32InputReadAsBf16(RMSNorm):
    def load(self, x):
        return x.to(torch.bfloat16).float()


class BF16BeforeWeight(RMSNorm):
    """Llama's casting mode: (x * inv) cast to x's dtype, then times the weight."""

    def apply(self, xf, inv, weight, in_dtype, recipe=NormRecipe(), c=_same):
        y = xf * inv[..., None]
        if in_dtype == torch.bfloat16:
            y = round_to_bf16(y, "rne")
        return y if weight is None else y * weight.float()


class OutputTruncated(RMSNorm):
    def store(self, y, recipe):
        if recipe.out_dtype == "fp32":
            return y
        return round_to_bf16(y, "rtz").to(torch.bfloat16)


class OutputThroughFp16(RMSNorm):
    def store(self, y, recipe):
        if recipe.out_dtype == "fp32":
            return y
        return y.to(torch.float16).to(torch.bfloat16)


class RecipeIgnored(RMSNorm):
    def effective_recipe(self, recipe):
        return NormRecipe()


class SubnormalsFlushed(RMSNorm):
    """fp32 subnormal squares flushed to zero (FTZ arithmetic on the CPU backend, where the
    golden and the recipe keep them): eps = 0 with tiny x gives ss = 0 and y = inf."""

    def sum_of_squares(self, xf, chunk, c=_same):
        # x^2 < 2^-126 (subnormal or zero in fp32) exactly when |x| < 2^-63: those squares flush
        return super().sum_of_squares(torch.where(xf.abs() < 2.0 ** -63, 0.0, xf), chunk, c)


# -- the recipes of real models, declared as shipped (no recipe keyword) ---------------------

GEMMA = NormRecipe(weight_offset=1.0, out_dtype="input")
LLAMA = NormRecipe(round_before_weight=True, out_dtype="input")
OUT_FOLLOWS_INPUT = NormRecipe(out_dtype="input")
NARROW = NormRecipe(compute_dtype="input", out_dtype="input")
PROMOTE = NormRecipe(inv="rsqrt", compute_dtype="promote", out_dtype="input")


class Declared(RMSNorm):
    """The base as a kernel ships one recipe: `recipe` declared, no recipe keyword."""

    accepts_recipe = False


class Gemma(Declared):
    recipe = GEMMA


class GemmaOffsetForgotten(Gemma):
    """Declares Gemma's 1 + w but multiplies by w."""

    def offset_weight(self, weight, recipe):
        return weight.float()


class Llama(Declared):
    recipe = LLAMA


class LlamaCastSkipped(Llama):
    """Declares Llama's cast of x * inv to the output dtype but multiplies the fp32 product."""

    def before_weight(self, t, recipe):
        return t


class LlamaCastTruncated(Llama):
    """The cast before the weight truncates (rtz) where the recipe rounds nearest-even."""

    def before_weight(self, t, recipe):
        return t if recipe.out_dtype == "fp32" else round_to_bf16(t, "rtz")


class OutputFollowsInput(Declared):
    recipe = OUT_FOLLOWS_INPUT


class OutputAlwaysBf16(OutputFollowsInput):
    """Declares out_dtype "input" but writes bf16 for an fp32 x too."""

    def store(self, y, recipe):
        return super().store(y, recipe.replace(out_dtype="bf16"))


class NarrowCompute(Declared):
    recipe = NARROW


class NarrowComputedInFp32(NarrowCompute):
    """Declares compute_dtype "input" (each step rounded to x's dtype) but computes in fp32."""

    def narrow(self, t, recipe):
        return t


class Promoted(Declared):
    recipe = PROMOTE


class PromotedFp32Sum(Promoted):
    """Declares Triton's promotion (bf16 tl.sum of the bf16 squares) but sums them in fp32."""

    def promoted_sum(self, sq, rounding):
        return sq.sum(-1)


# -- benign variant (a control: NOT a bug) ---------------------------------------------------

class ChunksSummedRightToLeft(RMSNorm):
    """Chunk partials added right to left: another order of an fp32 sum, within its error bound."""

    def promoted_sum(self, sq, rounding):
        """A bf16 tl.sum: zero-padded to the block (next power of two), halves added pairwise,
        each addition rounded to bf16."""
        block = 1 << (sq.shape[-1] - 1).bit_length()
        s = torch.cat([sq, sq.new_zeros(*sq.shape[:-1], block - sq.shape[-1])], -1)
        while s.shape[-1] > 1:
            s = round_to_bf16(s[..., :s.shape[-1] // 2] + s[..., s.shape[-1] // 2:], rounding)
        return s[..., 0]

    def chunk_starts(self, n: int, chunk: int):
        return reversed(super().chunk_starts(n, chunk))


rsqrt_12bit = Rsqrt12Bits()
rsqrt_10bit = Rsqrt10Bits()
eps_after_sqrt = EpsAfterSqrt()
eps_dropped = EpsDropped()
eps_in_sum = EpsAddedToSum()
mean_padded = MeanOverPaddedLength()
ss_bf16_acc = SquaresAccumulatedInBf16()
fp32_input_as_bf16 = Fp32InputReadAsBf16()
bf16_before_weight = BF16BeforeWeight()
out_rtz = OutputTruncated()
out_via_fp16 = OutputThroughFp16()
norm_recipe_ignored = RecipeIgnored()
reverse_chunks = ChunksSummedRightToLeft()
subnormals_flushed = SubnormalsFlushed()
gemma_reference = Gemma()
gemma_no_offset = GemmaOffsetForgotten()
llama_reference = Llama()
llama_no_cast = LlamaCastSkipped()
llama_cast_rtz = LlamaCastTruncated()
input_dtype_reference = OutputFollowsInput()
input_dtype_always_bf16 = OutputAlwaysBf16()
narrow_reference = NarrowCompute()
narrow_in_fp32 = NarrowComputedInFp32()
promote_reference = Promoted()
promote_fp32_sum = PromotedFp32Sum()


# -- non-finite input (shape class nonfinite_rows) ---------------------------------------------

class NanSwallowedByFmax(RMSNorm):
    """v guarded with fmax(v, FLT_MIN) against all-zero rows: fmax returns the number when the
    other operand is NaN, so a row whose sum of squares is NaN gets inv = 1 / sqrt(FLT_MIN) and
    finite outputs beside its NaN element, instead of NaN throughout."""

    def inv_rms(self, ss, D, eps, recipe, c=_same):
        v = torch.fmax(self.mean(ss, D) + torch.tensor(eps, dtype=torch.float32),
                       torch.tensor(torch.finfo(torch.float32).tiny))
        return self.inverse(v, recipe)


nan_swallowed_fmax = NanSwallowedByFmax()


# -- launch grids past 65535 rows (shape class grid_rows) ---------------------------------------

GRID_AXIS_CAP = 65535


class GridCappedRows(RMSNorm):
    """One program per row, the grid clamped to CUDA's 65535 programs per axis (rows on axis 1,
    or a wrapper that caps instead of folding): a grid-stride loop over rows then steps by
    65536 (the next power of two, not the grid it launched), so row 65535 (and every row r with
    r mod 65536 = 65535) is never written and keeps what the allocation held (NaN here: the
    suite poisons fresh allocations). Right for up to 65535 rows."""

    def store(self, y, recipe):
        out = super().store(y, recipe)
        rows = out.reshape(-1, out.shape[-1])
        skipped = torch.arange(rows.shape[0], device=out.device) % (GRID_AXIS_CAP + 1) == GRID_AXIS_CAP
        if bool(skipped.any()):
            rows = rows.clone()
            rows[skipped] = torch.empty_like(rows[skipped])  # never written
            out = rows.reshape(out.shape)
        return out


grid_capped_rows = GridCappedRows()


# -- address arithmetic past 2^31 elements (shape class large_offsets) ---------------------------

class Int32RowOffset(RMSNorm):
    """Each row's start, row * row_stride, formed in int32 (a program id times a stride, both
    int32): it wraps once a row starts at or past 2^31 elements, and the wrapped offset addresses
    another part of x's buffer (here counted from the buffer's end, as a negative index does; on
    a GPU, memory before x). Right while every row starts below 2^31 elements."""

    def load(self, x):
        D = x.shape[-1]
        x2 = x.reshape(-1, D)
        rows = torch.arange(x2.shape[0], dtype=torch.int64)
        starts = (rows * x2.stride(0) + 2 ** 31) % 2 ** 32 - 2 ** 31     # int32 arithmetic
        flat = x2.as_strided((x2.untyped_storage().nbytes() // x2.element_size(),), (1,), 0)
        index = starts[:, None] + x2.storage_offset() + torch.arange(D)[None, :] * x2.stride(1)
        return flat[index.to(flat.device)].reshape(x.shape).float()


int32_row_offset = Int32RowOffset()


NORM = "impls/mutants/rmsnorm.py"


def _catalogue():
    from kernelprop.impls.mutants import NO_ARG_CHECKS, Control, Mutant

    def m(fn, description, killers):
        return Mutant(fn, "rms_norm", f"{NORM}:{fn}", description, killers)

    mutants = [
        m("rsqrt_12bit", "INV is a hardware rsqrt with 12 correct bits", ("P1", "P12")),
        m("rsqrt_10bit", "INV is a hardware rsqrt with 10 correct bits", ("P1", "P12")),
        m("eps_after_sqrt", "inv = 1 / (sqrt(ss / D) + eps)", ("P1", "P12")),
        m("eps_dropped", "eps left out: all-zero rows give 0 * inf = NaN", ("P1",)),
        m("eps_in_sum", "inv = INV((ss + eps) / D): eps added before the mean", ("P1",)),
        m("mean_padded", "mean divides by the next power of two of D", ("P1",)),
        m("ss_bf16_acc", "sum of squares accumulated in bf16", ("P1", "P12")),
        m("fp32_input_as_bf16", "fp32 x rounded to bf16 on load", ("P1",)),
        m("bf16_before_weight", "x * inv rounded to bf16 before the weight (Llama casting)",
          ("P1",)),
        m("out_rtz", "output truncated to bf16 instead of recipe.rounding", ("P1",)),
        m("out_via_fp16", "output rounded fp32 -> fp16 -> bf16 (double rounding)", ("P1",)),
        m("norm_recipe_ignored", "recipe keyword accepted but the default recipe always used",
          ("P1",)),
        m("subnormals_flushed", "fp32 subnormal squares flushed to zero (eps = 0, tiny data: "
          "y = inf)", ("P1",)),
        m("gemma_no_offset", "declares Gemma's weight_offset 1 but multiplies by w, not 1 + w",
          ("P1", "P12")),
        m("llama_no_cast", "declares round_before_weight (Llama) but skips the cast of x * inv",
          ("P1", "P12")),
        m("llama_cast_rtz", "round_before_weight's cast of x * inv truncates (rtz), recipe rne",
          ("P1", "P12")),
        m("input_dtype_always_bf16", "declares out_dtype 'input' but writes bf16 for fp32 x",
          ("P1", "P12")),
        m("narrow_in_fp32", "declares compute_dtype 'input' but computes a bf16 x in fp32",
          ("P1", "P12")),
        m("promote_fp32_sum", "declares compute_dtype 'promote' (bf16 tl.sum of the squares) but "
          "sums the bf16 squares in fp32", ("P1",)),
        m("nan_swallowed_fmax", "v guarded with fmax(v, FLT_MIN): a NaN sum of squares becomes "
          "FLT_MIN, so a row with a NaN gives finite outputs beside it", ("P9",)),
        m("grid_capped_rows", "one program per row on a grid capped at 65535 programs, stepping "
          "by 65536: row 65535 is never written (shape class grid_rows)", ("P1",)),
        m("int32_row_offset", "row * row_stride formed in int32: a row starting past 2^31 "
          "elements is read from a wrapped offset (shape class large_offsets)", ("P1",)),
    ]
    controls = [
        Control("bundled_rms_norm", "rms_norm", "kernelprop.kernels.rms_norm:rms_norm", "the bundled Triton kernel"),
        Control("torch_reference_rms_norm", "rms_norm", "impls/torch_reference.py:rms_norm",
                "independent torch implementation", exempt=(("P13", NO_ARG_CHECKS),)),
        Control("catalogue_base_rms_norm", "rms_norm", f"{NORM}:reference",
                "the mutants' common base, no bug"),
        Control("reverse_chunks", "rms_norm", f"{NORM}:reverse_chunks",
                "benign: sum-of-squares chunks added right to left (within fp32 bounds)"),
        Control("gemma_reference", "rms_norm", f"{NORM}:gemma_reference",
                "the base declaring Gemma's recipe (weight_offset 1, out_dtype input), no bug"),
        Control("llama_reference", "rms_norm", f"{NORM}:llama_reference",
                "the base declaring Llama's recipe (round_before_weight, out_dtype input), no bug"),
        Control("input_dtype_reference", "rms_norm", f"{NORM}:input_dtype_reference",
                "the base declaring out_dtype input, no bug"),
        Control("narrow_reference", "rms_norm", f"{NORM}:narrow_reference",
                "the base declaring compute_dtype input, no bug"),
        Control("promote_reference", "rms_norm", f"{NORM}:promote_reference",
                "the base declaring compute_dtype promote (Liger none mode), no bug"),
        Control("hf_llama_rms_norm", "rms_norm", "impls/hf_norms.py:llama_rms_norm",
                "Hugging Face LlamaRMSNorm's formula in torch, its declared recipe"),
        Control("hf_gemma_rms_norm", "rms_norm", "impls/hf_norms.py:gemma_rms_norm",
                "Hugging Face GemmaRMSNorm's formula in torch, its declared recipe"),
    ]
    return mutants, controls


MUTANTS, CONTROLS = _catalogue()
