"""A planted Triton RMSNorm with one program per row (tests/test_norm_large_classes.py: the
grid_rows class skips it on the interpreter, where 65536 programs would take ~30 min)."""
import torch
import triton
import triton.language as tl


@triton.jit
def _row_kernel(x_ptr, y_ptr, D, stride_x, eps, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    x = tl.load(x_ptr + row * stride_x + cols, mask=cols < D, other=0.0).to(tl.float32)
    inv = 1.0 / tl.sqrt(tl.sum(x * x, 0) / D + eps)
    tl.store(y_ptr + row * D + cols, (x * inv).to(tl.bfloat16), mask=cols < D)


def rms_norm(x, weight=None, *, eps=1e-6):
    D = x.shape[-1]
    x2 = x.reshape(-1, D)
    y = torch.empty_like(x2, dtype=torch.bfloat16)
    _row_kernel[(x2.shape[0],)](x2, y, D, x2.stride(0), eps, BLOCK=triton.next_power_of_2(D))
    return y.reshape(x.shape)


rms_norm.accepts_recipe = False
