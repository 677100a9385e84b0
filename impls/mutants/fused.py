"""Planted fused add-RMSNorm bugs (SPEC section 9) on a torch base, for the kill matrix (`kp mutants`).

`FusedAddNorm` is the correct base: the bundled wrapper's argument checks, z = RNE_in(x + r) from
the fp32 sum, and the torch RMSNorm (impls/torch_reference.py:rms_norm, every recipe field) on z. Each
mutant overrides the one step its bug lives in: the add, z's rounding, what is written back where,
which rows a step reads, and the norm's own steps. `InplaceFusedAddNorm` is vLLM's calling
convention (`inplace = True`: y into x, z into residual), the base of the in-place bugs.
"""
from __future__ import annotations

import torch

from kernelprop.golden.rmsnorm_inputs import NormRecipe
from kernelprop.golden.rounding import round_to_bf16
from kernelprop.impls.torch_reference import rms_norm as torch_rms_norm
from kernelprop.kernels.fused_add_rms_norm import check_fused_args
from kernelprop.kernels.rms_norm import check_norm_recipe


class FusedAddNorm:
    """The correct out-of-place base (a control)."""

    recipe = NormRecipe()
    accepts_recipe = True
    norm = staticmethod(torch_rms_norm)

    def __call__(self, x, residual, weight=None, *, eps=1e-6, recipe=None):
        recipe = check_norm_recipe(self.recipe if recipe is None else recipe)
        check_fused_args(x, residual, weight, eps)
        D = x.shape[-1]
        x2, r2 = x.reshape(-1, D), self.read_residual(residual.reshape(-1, D), x.reshape(-1, D))
        zf = self.add(x2, r2)
        z = self.round_z(zf, x.dtype)
        y = self.normalize(z, zf, x2, weight, eps, recipe)
        return self.write(x, residual, y.reshape(x.shape), z.reshape(x.shape))

    # -- steps (each mutant overrides one) --------------------------------------------------

    def read_residual(self, r2, x2):
        return r2

    def add(self, x2, r2):
        return x2.float() + r2.float()

    def round_z(self, zf, dtype):
        return zf.to(dtype)

    def normalize(self, z, zf, x2, weight, eps, recipe):
        return self.norm(z, weight, eps=eps, recipe=recipe)

    def write(self, x, residual, y, z):
        return y, z


class InplaceFusedAddNorm(FusedAddNorm):
    """The correct in-place base (a control): y into x, z into residual, returns None. Its y is
    written in x's dtype: it declares out_dtype "input" and varies every other field."""

    inplace = True
    recipe = NormRecipe(out_dtype="input")
    accepts_recipe = ("inv", "chunk", "weight_offset", "round_before_weight", "compute_dtype")

    def write(self, x, residual, y, z):
        x.copy_(y.to(x.dtype))
        residual.copy_(z)


def _make(base, name: str, **steps):
    return type(name, (base,), steps)()


reference = FusedAddNorm()
reference_inplace = InplaceFusedAddNorm()

residual_returns_input = _make(FusedAddNorm, "residual_returns_input",
                               write=lambda self, x, residual, y, z: (y, residual.clone()))
residual_truncated = _make(FusedAddNorm, "residual_truncated",
                           round_z=lambda self, zf, dtype: round_to_bf16(zf, "rtz").to(dtype)
                           if dtype == torch.bfloat16 else zf.to(dtype))
y_from_unrounded = _make(FusedAddNorm, "y_from_unrounded",
                         normalize=lambda self, z, zf, x2, w, eps, recipe: self.norm(
                             zf, w, eps=eps, recipe=recipe.for_input(z.dtype)))
rounded_twice = _make(FusedAddNorm, "rounded_twice",
                      round_z=lambda self, zf, dtype: zf.half().to(dtype))
add_in_bf16 = _make(FusedAddNorm, "add_in_bf16",
                    add=lambda self, x2, r2: (x2.bfloat16().float() + r2.bfloat16().float()))
residual_stride_ignored = _make(FusedAddNorm, "residual_stride_ignored",
                                read_residual=lambda self, r2, x2: torch.as_strided(
                                    r2, r2.shape, (r2.shape[1], 1)))
norm_of_x = _make(FusedAddNorm, "norm_of_x",
                  normalize=lambda self, z, zf, x2, w, eps, recipe: self.norm(x2, w, eps=eps, recipe=recipe))
residual_out_is_y = _make(FusedAddNorm, "residual_out_is_y",
                          write=lambda self, x, residual, y, z: (y, y.to(z.dtype)))
fused_eps_dropped = _make(FusedAddNorm, "fused_eps_dropped",
                    normalize=lambda self, z, zf, x2, w, eps, recipe: self.norm(z, w, eps=0.0, recipe=recipe))


def _out(y, recipe, dtype):
    if recipe.output_dtype(dtype) == "fp32":
        return y
    return round_to_bf16(y, recipe.rounding).to(torch.bfloat16)


def _batch_mean(self, z, zf, x2, w, eps, recipe):
    """Every row normalized by the mean square over all rows (a reduction over the wrong axis)."""
    zf32 = z.float()
    inv = 1.0 / torch.sqrt((zf32 * zf32).mean() + eps)
    y = zf32 * inv if w is None else zf32 * inv * (w.float() + recipe.weight_offset)
    return _out(y, recipe, z.dtype)


def _pow2_mean(self, z, zf, x2, w, eps, recipe):
    """The mean divides by the block width (next power of two of D), not D."""
    D = z.shape[-1]
    width = 1 << max(D - 1, 0).bit_length()
    if width == D:
        return self.norm(z, w, eps=eps, recipe=recipe)
    zf32 = z.float()
    y = zf32 / torch.sqrt((zf32 * zf32).sum(-1, keepdim=True) / width + eps)
    return _out(y if w is None else y * (w.float() + recipe.weight_offset), recipe, z.dtype)


def _y_only(self, x, residual, y, z):
    """In place: y written into x; the residual never receives z."""
    x.copy_(y.to(x.dtype))


def _wrong_row(self, x, residual, y, z):
    """In place: row i of x receives the y of row i + 1 (an off-by-one output row pointer)."""
    D = x.shape[-1]
    y2 = y.reshape(-1, D)
    x.copy_(torch.roll(y2, -1, 0).reshape(x.shape).to(x.dtype))
    residual.copy_(z)


def _pads_written(self, x, residual, y, z):
    """In place: each row is written over the row stride (its padding columns zeroed)."""
    InplaceFusedAddNorm.write(self, x, residual, y, z)
    x2 = x.reshape(-1, x.shape[-1]) if x.dim() == 2 else x
    if x2.dim() == 2 and x2.shape[0] and x2.stride(0) > x2.shape[1]:
        wide = torch.as_strided(x2, (x2.shape[0], x2.stride(0)), (x2.stride(0), 1))
        wide[:, x2.shape[1]:] = 0


def _updates_residual(self, x, residual, y, z):
    """Out of place, yet z is also written over the caller's residual."""
    residual.copy_(z)
    return y, z


residual_not_written = _make(InplaceFusedAddNorm, "residual_not_written", write=_y_only)
batch_mean = _make(FusedAddNorm, "batch_mean", normalize=_batch_mean)
pow2_mean = _make(FusedAddNorm, "pow2_mean", normalize=_pow2_mean)
wrong_row_inplace = _make(InplaceFusedAddNorm, "wrong_row_inplace", write=_wrong_row)
inplace_writes_padding = _make(InplaceFusedAddNorm, "inplace_writes_padding", write=_pads_written)
writes_input_residual = _make(FusedAddNorm, "writes_input_residual", write=_updates_residual)


def _int32_rows_add(self, x2, r2):
    """x and residual rows read through row * row_stride formed in int32 (large_offsets)."""
    from kernelprop.impls.mutants.rmsnorm import int32_row_offset

    return int32_row_offset.load(x2) + int32_row_offset.load(r2)


fused_int32_row_offset = _make(FusedAddNorm, "fused_int32_row_offset", add=_int32_rows_add)

FUSED = "impls/mutants/fused.py"


def _catalogue():
    from kernelprop.impls.mutants import Control, Mutant

    def m(fn, description, killers):
        return Mutant(fn, "fused_add_rms_norm", f"{FUSED}:{fn}", description, killers)

    mutants = [
        m("residual_not_written", "in place: y written into x, residual never updated", ("F1",)),
        m("residual_returns_input", "residual_out is the input residual (the add not written back)", ("F1",)),
        m("residual_truncated", "z stored before rounding: fp32 sum truncated to bf16 (a raw cast)", ("F1",)),
        m("y_from_unrounded", "y normalizes the unrounded fp32 sum, not the stored z", ("F2",)),
        m("rounded_twice", "z rounded twice: fp32 sum -> fp16 -> input dtype", ("F1",)),
        m("add_in_bf16", "x and residual cast to bf16 before the add (fp32 inputs lose bits)", ("F1",)),
        m("residual_stride_ignored", "residual rows read as if contiguous (its row stride ignored)", ("F1",)),
        m("norm_of_x", "y = rms_norm(x): the residual left out of the norm's input", ("F2",)),
        m("residual_out_is_y", "residual_out holds y (outputs aliased)", ("F1",)),
        m("fused_eps_dropped", "eps left out of the mean square", ("F2",)),
        m("batch_mean", "mean square over all rows, not per row", ("F2", "F4")),
        m("pow2_mean", "mean divides by next_pow2(D) (the block width), not D", ("F2",)),
        m("wrong_row_inplace", "in place: row i of x receives row i + 1's y", ("F2", "F4")),
        m("inplace_writes_padding", "in place: the row padding of a strided x is overwritten", ("F5",)),
        m("writes_input_residual", "out of place, yet the caller's residual is overwritten with z", ("F5",)),
        m("fused_int32_row_offset", "row * row_stride of x and residual formed in int32: rows "
          "starting past 2^31 elements read from a wrapped offset (shape class large_offsets)", ("F1",)),
    ]
    controls = [
        Control("bundled_fused", "fused_add_rms_norm",
                "kernelprop.kernels.fused_add_rms_norm:fused_add_rms_norm", "the bundled Triton kernel"),
        Control("catalogue_base_fused", "fused_add_rms_norm", f"{FUSED}:reference", "the mutants' torch base"),
        Control("catalogue_base_fused_inplace", "fused_add_rms_norm", f"{FUSED}:reference_inplace",
                "the in-place torch base (y into x, z into residual)"),
    ]
    return mutants, controls


MUTANTS, CONTROLS = _catalogue()
