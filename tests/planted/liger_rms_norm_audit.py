"""A minimal adapter for the PTX audit demo (`./kp compile --impl rms_norm=tests/planted/
liger_rms_norm_audit.py:rms_norm`): Liger-Kernel's RMSNorm forward (PyPI liger-kernel, installed at
test time) in the suite's rms_norm signature, in its "llama" casting mode with offset 0. Not a
verified adapter (kernelprop/adapters on the adapters branch is): the audit only needs its launches."""
import torch


def rms_norm(x, weight=None, *, eps=1e-6):
    from liger_kernel.ops.rms_norm import rms_norm_forward

    shape = x.shape
    w = torch.ones(shape[-1], dtype=x.dtype, device=x.device) if weight is None else weight.to(x.dtype)
    y = rms_norm_forward(x.reshape(-1, shape[-1]), w, eps, 0.0, "llama", None)[0]
    return y.reshape(shape)
