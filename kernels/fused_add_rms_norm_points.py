"""The fused add RMSNorm's `./kp compile` configurations (its registry record's `compile_points`):
launch shapes whose KernelLaunch is the wrapper's own (kernels.fused_add_rms_norm
.fused_add_rms_norm_launch).

Reference (gated: no spill, no stack frame): bf16 rows of the served hidden sizes D = 4096
(Llama-3 8B) and 8192 (Llama-3 70B), 8192 tokens, with weight, the default recipe: the decoder
layer's `x + residual` then RMSNorm."""
from __future__ import annotations

from dataclasses import dataclass, field

from kernelprop.golden.rmsnorm_inputs import NormRecipe


@dataclass(frozen=True)
class FusedPoint:
    """One launch: rows x dim of `dtype`, with or without weight, under `recipe`."""

    name: str
    rows: int = 8192
    dim: int = 4096
    dtype: str = "bf16"
    weight: bool = True
    recipe: NormRecipe = field(default_factory=NormRecipe)
    reference: bool = False

    kind = "fused_add_rms_norm"

    def launch(self, device: str = "meta"):
        """The KernelLaunch the wrapper would run for this point (tensor shapes only on "meta")."""
        import torch

        from kernelprop.kernels.fused_add_rms_norm import fused_add_rms_norm_launch

        dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[self.dtype]
        out = torch.bfloat16 if self.recipe.output_dtype(dtype) == "bf16" else torch.float32
        shape = (self.rows, self.dim)
        if device == "meta":
            x, r = (torch.empty(shape, dtype=dtype, device="meta") for _ in range(2))
            w = torch.empty(self.dim, dtype=dtype, device="meta") if self.weight else None
        else:
            gen = torch.Generator().manual_seed(0)
            x, r = (torch.randn(shape, generator=gen).to(dtype).to(device) for _ in range(2))
            w = torch.randn(self.dim, generator=gen).to(dtype).to(device) if self.weight else None
        y = torch.empty(shape, dtype=out, device=device)
        z = torch.empty(shape, dtype=dtype, device=device)
        eps = float(torch.tensor(1e-6, dtype=torch.float32))
        return fused_add_rms_norm_launch(x, r, w, y, z, eps, self.recipe)


REFERENCE = [FusedPoint(f"fused D{d}", dim=d, reference=True) for d in (4096, 8192)]


def fused_compile_points(scope: str) -> list:
    """"reference" and "fast": D = 4096 and 8192; "sweep" also other dims, fp32, chunked, no weight
    and a streamed row (D > 16384)."""
    if scope in ("reference", "fast"):
        return list(REFERENCE)
    pts = list(REFERENCE)
    for d in (1, 127, 2048, 5120, 16384, 20000):
        pts.append(FusedPoint(f"fused D{d}", rows=256, dim=d))
    pts.append(FusedPoint("fused D4096 fp32", dtype="fp32"))
    pts.append(FusedPoint("fused D4096 no weight", weight=False))
    for changes in (dict(chunk=256), dict(inv="rsqrt"), dict(out_dtype="fp32"), dict(weight_offset=1.0),
                    dict(round_before_weight=True), dict(compute_dtype="input")):
        label = " ".join(f"{k}={v}" for k, v in changes.items())
        pts.append(FusedPoint(f"fused D4096 {label}", recipe=NormRecipe(**changes)))
    return pts
