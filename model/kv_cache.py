"""Static per-layer key/value storage for the DiT: the self-attention cache that context passes fill
and denoising passes read, and the per-prompt text keys/values of the cross-attention."""
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class KVCache:
    """Keys and values of every layer, preallocated once; layers are views, never reallocated."""
    k: Tensor  # [layers, B, rows, Nh, Dh]
    v: Tensor  # [layers, B, rows, Nh, Dh]

    @classmethod
    def zeros(cls, layers: int, batch: int, rows: int, heads: int, head_dim: int,
              *, device=None, dtype: torch.dtype | None = None) -> "KVCache":
        shape = (layers, batch, rows, heads, head_dim)
        return cls(torch.zeros(shape, device=device, dtype=dtype), torch.zeros(shape, device=device, dtype=dtype))  # [layers, B, rows, Nh, Dh] each

    @property
    def rows(self) -> int:
        return self.k.shape[2]

    def layer(self, i: int) -> tuple[Tensor, Tensor]:
        """Views of layer i: ([B, rows, Nh, Dh], [B, rows, Nh, Dh])."""
        return self.k[i], self.v[i]
