"""The fused add RMSNorm's `./kp compile` points launch what its wrapper launches (one config
source): on the interpreter (or a GPU), a point's launch writes bitwise the wrapper's outputs."""
import torch

from kernelprop.golden.rmsnorm_inputs import NormRecipe
from kernelprop.kernels.fused_add_rms_norm import fused_add_rms_norm
from kernelprop.kernels.fused_add_rms_norm_points import FusedPoint, fused_compile_points


def _outputs(launch):
    names = launch.kernel.arg_names
    return tuple(launch.args[names.index(n)] for n in ("x_ptr", "r_ptr", "w_ptr", "y_ptr", "z_ptr"))


def test_compiled_launch_is_the_wrappers_launch():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    for point in (FusedPoint("small", rows=3, dim=40), FusedPoint("chunked", rows=2, dim=33, dtype="fp32",
                                                                 recipe=NormRecipe(chunk=5, out_dtype="fp32"))):
        launch = point.launch(device)
        launch.run()
        x, r, w, y, z = _outputs(launch)
        ey, ez = fused_add_rms_norm(x, r, w, eps=1e-6, recipe=point.recipe)
        assert torch.equal(y, ey) and torch.equal(z, ez), point.name


def test_every_scope_has_the_gated_reference_at_4096_and_8192():
    for scope in ("reference", "fast", "sweep"):
        points = fused_compile_points(scope)
        assert {p.dim for p in points if p.reference} == {4096, 8192}, scope
        assert len({p.name for p in points}) == len(points), scope
