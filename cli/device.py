"""The torch device a command runs on, from `runtime.device`."""
from __future__ import annotations

from cli.errors import UserError


def pick_device(name: str):
    """auto: the GPU when there is one, else the CPU; cuda without a GPU is a UserError."""
    import torch
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("runtime.device=cuda but no CUDA device is available; use --set runtime.device=cpu")
    return torch.device(name)
