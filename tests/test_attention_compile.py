"""Sparse attention's `./kp compile` points launch what its wrapper launches (one config source)."""
import torch

from kernelprop.commands.compile import build_launch
from kernelprop.golden.attention_inputs import AttnCase, make_attn_inputs
from kernelprop.kernels.sparse_attention import sparse_decode_attention
from kernelprop.kernels.sparse_attention_points import AttnPoint


def test_compiled_launch_is_the_wrappers_launch():
    """One source of truth: the launch `./kp compile` compiles (and the device table times) for a
    point computes, on the interpreter, bitwise what the wrapper returns on the same inputs."""
    point = AttnPoint("small", AttnCase(batches=2, tokens_per_batch=2, heads=3, head_dim=40,
                                        page_size=8, window=16, topk=24, max_cmp_len=48))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    launch = build_launch(point, device=device)
    launch.run()
    o = launch.args[launch.kernel.arg_names.index("o_ptr")]
    expected = make_attn_inputs(point.case(device)).call(sparse_decode_attention)
    assert o.shape == expected.shape and bool((o == expected).all())
