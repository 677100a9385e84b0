"""RMSNorm's `./kp compile` points launch what its wrapper launches (one config source): on the
interpreter (or a GPU), a point's launch writes bitwise the wrapper's output."""
import torch

from kernelprop.golden.rmsnorm_inputs import NormRecipe
from kernelprop.kernels.rms_norm import rms_norm
from kernelprop.kernels.rms_norm_points import NormPoint, norm_compile_points


def test_compiled_launch_is_the_wrappers_launch():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    for point in (NormPoint("small", rows=3, dim=40),
                  NormPoint("chunked", rows=2, dim=33, dtype="fp32", recipe=NormRecipe(chunk=5, out_dtype="fp32")),
                  NormPoint("no weight", rows=2, dim=17, weight=False)):
        launch = point.launch(device)
        names = launch.kernel.arg_names
        x, w, y = (launch.args[names.index(n)] for n in ("x_ptr", "w_ptr", "y_ptr"))
        launch.run()
        expected = rms_norm(x, w if point.weight else None, eps=1e-6, recipe=point.recipe)
        assert torch.equal(y, expected), point.name


def test_every_scope_has_the_gated_references():
    for scope, dims in (("reference", {128, 4096, 8192}), ("fast", {4096}), ("sweep", {128, 4096, 8192})):
        points = norm_compile_points(scope)
        assert {p.dim for p in points if p.reference} == dims, scope
        assert len({p.name for p in points}) == len(points), scope
        assert all(p.kind == "rms_norm" for p in points)
