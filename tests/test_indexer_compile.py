"""The indexer's `./kp compile` points launch what its wrapper launches (one config source): on
the interpreter, the point's launch computes scores whose selection is bitwise the wrapper's row."""
import torch

from kernelprop.golden.indexer import IndexerCase, make_indexer_inputs, select_topk
from kernelprop.kernels.sparse_indexer import sparse_indexer_topk
from kernelprop.kernels.sparse_indexer_points import IndexerPoint, indexer_compile_points


def test_compiled_launch_is_the_wrappers_launch():
    point = IndexerPoint("small", IndexerCase(seed=5, batches=2, tokens_per_batch=2, heads=3, head_dim=24,
                                              page_size=4, window=4, topk=7, max_cmp_len=30))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    launch = point.launch(device)
    launch.run()
    scores = launch.args[launch.kernel.arg_names.index("out_ptr")]
    valid = launch.args[launch.kernel.arg_names.index("valid_ptr")]
    slots = launch.args[launch.kernel.arg_names.index("tab_ptr")].shape[1] * point.case.page_size
    visible = torch.arange(slots, device=device)[None, :] < valid[:, None]
    row = select_topk(scores[:, :slots], visible, window=point.case.window, topk=point.case.topk)
    expected = make_indexer_inputs(point.case.replace(device=device)).call(sparse_indexer_topk)
    assert row.shape == expected.shape and bool((row == expected).all())


def test_every_scope_has_the_gated_reference():
    for scope in ("reference", "fast", "sweep"):
        points = indexer_compile_points(scope)
        assert any(p.reference for p in points), scope
        assert len({p.name for p in points}) == len(points), scope
