"""Fixtures of the DiT parity tests: the tiny CausalWanModel of shared/parity/dit_tiny.* in float32."""
import pytest
import torch
from safetensors.torch import load_file

from model.dit import CausalWanModel, DiTConfig


@pytest.fixture(scope="session")
def dit_tiny(parity_dir):
    """(model, io): the model loaded strictly from the fixture's 69 weights (float16 -> float32, exact)
    and the `io.*` tensors with the prefix stripped."""
    tensors = load_file(parity_dir / "dit_tiny.safetensors")
    weights = {k: v.float() for k, v in tensors.items() if not k.startswith("io.")}
    model = CausalWanModel(DiTConfig.tiny(), dtype=torch.float32)
    model.load_state_dict(weights, strict=True)
    return model.eval(), {k[3:]: v for k, v in tensors.items() if k.startswith("io.")}
