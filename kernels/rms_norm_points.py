"""RMSNorm's `./kp compile` configurations (its registry record's `compile_points`): launch shapes
whose KernelLaunch is the wrapper's own (kernels.rms_norm.norm_launch).

Reference (gated: no spill, no stack frame): bf16 x with a weight under the default recipe, 32768
rows of D = 128 and 4096 (the benchmark's [32768, 4096]) and 8192 rows of D = 8192."""
from __future__ import annotations

from dataclasses import dataclass, field

from kernelprop.golden.rmsnorm_inputs import NormRecipe


@dataclass(frozen=True)
class NormPoint:
    """One RMSNorm launch shape: rows x dim of `dtype`, with or without weight."""

    name: str
    rows: int = 32768
    dim: int = 4096
    dtype: str = "bf16"
    weight: bool = True
    recipe: NormRecipe = field(default_factory=NormRecipe)
    reference: bool = False

    kind = "rms_norm"

    def launch(self, device: str = "meta"):
        """The KernelLaunch the wrapper would run for this point (tensor shapes only on "meta")."""
        import torch

        from kernelprop.kernels.rms_norm import norm_launch

        dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[self.dtype]
        out = torch.bfloat16 if self.recipe.out_dtype == "bf16" else torch.float32
        if device == "meta":
            x = torch.empty(self.rows, self.dim, dtype=dtype, device="meta")
            w = torch.empty(self.dim, dtype=dtype, device="meta") if self.weight else None
        else:
            x = torch.randn(self.rows, self.dim, device=device).to(dtype)
            w = torch.randn(self.dim, device=device).to(dtype) if self.weight else None
        y = torch.empty(self.rows, self.dim, dtype=out, device=device)
        return norm_launch(x, w, y, 1e-6, self.recipe)


def norm_compile_points(scope: str) -> list:
    """"reference": D in {128, 4096, 8192}; "fast": D = 4096; "sweep" also one-block / chunked /
    fp32 / no-weight variants."""
    ref = [NormPoint(f"norm D{d}", rows=32768 if d <= 4096 else 8192, dim=d, reference=True)
           for d in (128, 4096, 8192)]
    if scope == "reference":
        return ref
    if scope == "fast":
        return [p for p in ref if p.name == "norm D4096"]
    pts = list(ref)
    for d in (1, 17, 127, 512, 600, 8192, 16384, 20000):
        for dtype in ("bf16", "fp32"):
            pts.append(NormPoint(f"norm D{d} {dtype}", rows=256, dim=d, dtype=dtype))
    for changes in (dict(chunk=64), dict(chunk=100), dict(chunk=5000), dict(inv="rsqrt"),
                    dict(inv="recip_sqrt_rn"), dict(out_dtype="fp32")):
        label = " ".join(f"{k}={v}" for k, v in changes.items())
        pts.append(NormPoint(f"norm D4096 {label}", recipe=NormRecipe(**changes)))
    pts.append(NormPoint("norm D4096 no weight", weight=False))
    return pts
