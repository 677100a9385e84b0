"""Argument checks shared by the kernel wrappers (SPEC P13): every error names the argument.

TypeError for a wrong type or dtype, ValueError for a wrong shape, device, stride or value.
"""
import os

import torch


def interpreted() -> bool:
    """True when Triton runs through its CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def check_tensor(name: str, x, dtypes, ndim: int, shape_doc: str) -> None:
    """x is a torch.Tensor of one of `dtypes` with `ndim` dims (`shape_doc` names them)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor {shape_doc}, got {type(x).__name__}")
    if x.dtype not in dtypes:
        names = " or ".join(str(d).replace("torch.", "") for d in dtypes)
        raise TypeError(f"{name} must have dtype {names}, got {str(x.dtype).replace('torch.', '')}")
    if x.dim() != ndim:
        raise ValueError(f"{name} must be {ndim}-D {shape_doc}, got shape {tuple(x.shape)}")


def check_device(name: str, x: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    if x.device != ref.device:
        raise ValueError(f"{name} must be on the device of {ref_name} ({ref.device}), got {x.device}")
    if not interpreted() and x.device.type != "cuda":
        raise ValueError(f"{name} must be a CUDA tensor (Triton on GPU), got device {x.device}")


def check_last_stride(name: str, x: torch.Tensor) -> None:
    """The last dim must be contiguous (stride 1); other strides may be anything."""
    if x.dim() and x.shape[-1] > 1 and x.stride(-1) != 1:
        raise ValueError(f"{name} must have a contiguous last dim (stride 1), got strides {tuple(x.stride())}; "
                         f"pass {name}.contiguous()")
