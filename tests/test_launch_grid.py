"""Grid limits (issue 23): every bundled launch builder, at sizes that put more than 65535
programs on a naive grid's axis 1 or 2, still builds a launch CUDA accepts (axis 0 <= 2^31 - 1,
axes 1-2 <= 65535). Static: the launches are built on meta tensors (as `./kp compile` builds them)
and never run, so no memory is touched and no interpreter time spent."""
import pytest

from kernelprop.compile import DSV4_SHAPE, AttnPoint
from kernelprop.golden.recipes import AttnRecipe
from kernelprop.golden.rmsnorm_inputs import NormRecipe
from kernelprop.kernels._launch import GRID_LIMITS, KernelLaunch
from kernelprop.kernels.rms_norm_points import NormPoint
from kernelprop.kernels.sparse_indexer import BLOCK_J
from kernelprop.kernels.sparse_indexer_points import DSV4_INDEXER, IndexerPoint

BIG = 70_000  # > 65535

LAUNCHES = {
    # T = 140000 tokens x 4 head blocks: one program per (token, head block)
    "attention: 140k tokens, H = 64": lambda: AttnPoint(
        "big T", DSV4_SHAPE.replace(batches=BIG, tokens_per_batch=2, window=128, topk=128,
                                    max_cmp_len=128)).launch(),
    "attention: 70k tokens, H = 128, tile 1": lambda: AttnPoint(
        "big T H", DSV4_SHAPE.replace(batches=BIG, tokens_per_batch=1, heads=128, window=8,
                                      topk=8, max_cmp_len=8), recipe=AttnRecipe(tile=1)).launch(),
    "rms_norm: 2^27 rows of 64": lambda: NormPoint("big R", rows=2**27, dim=64).launch(),
    "rms_norm: 2^24 rows of 8192, chunk 7": lambda: NormPoint(
        "big R D", rows=2**24, dim=8192, recipe=NormRecipe(chunk=7)).launch(),
    # more than 65535 slot blocks of one token: a (T, slot block) grid would put them on axis 1
    "indexer: 1.2M slots per sequence": lambda: IndexerPoint(
        "big slots", DSV4_INDEXER.replace(batches=2, max_cmp_len=(BIG + 5_000) * BLOCK_J)).launch(),
    "indexer: 140k tokens": lambda: IndexerPoint(
        "big T", DSV4_INDEXER.replace(batches=BIG, max_cmp_len=256)).launch(),
}


@pytest.mark.parametrize("name", sorted(LAUNCHES))
def test_bundled_launches_fit_cuda_grid_limits(name):
    launch = LAUNCHES[name]()
    assert launch.programs > BIG, "the size must exceed what axis 1-2 could hold"
    assert not launch.grid_problems(), f"{name}: {launch.grid_problems()}"


def test_grid_problems_names_the_axis_over_its_limit():
    def fake(grid):
        return KernelLaunch(kernel=None, grid=grid, args=(), constexprs={})

    assert fake((2**31 - 1, 65535, 65535)).grid_problems() == []
    assert fake((4, BIG)).grid_problems() == [
        f"grid axis 1 has {BIG} programs; CUDA allows at most {GRID_LIMITS[1]}"]
    assert "axis 0" in fake((2**31,)).grid_problems()[0]
    assert "4 axes" in fake((1, 1, 1, 1)).grid_problems()[0]
