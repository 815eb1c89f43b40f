"""runtime/play.py start-up: the compiler preload runs only where it pays."""
import sys

import pytest
import torch

from runtime.config import load_config
from runtime.play import preload_compiler


def test_no_preload_without_a_compiled_dit_on_a_gpu():
    dit = load_config(overrides=["runtime.refiner=dit"])
    assert preload_compiler(dit, torch.device("cpu")) is None
    assert preload_compiler(load_config(overrides=["runtime.refiner=geometry"]), torch.device("cuda")) is None
    assert preload_compiler(load_config(overrides=["runtime.refiner=dit", "model.compile=false"]),
                            torch.device("cuda")) is None


@pytest.mark.gpu
def test_preload_starts_cuda_and_imports_the_compiler():
    thread = preload_compiler(load_config(overrides=["runtime.refiner=dit"]), torch.device("cuda"))
    thread.join()
    assert torch.cuda.is_initialized() and "torch._inductor.compile_fx" in sys.modules
