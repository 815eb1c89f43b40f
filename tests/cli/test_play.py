"""cli/play.py start-up: the compiler preload runs only where it pays."""
import sys

import pytest
import torch

from runtime.config import load_config
from cli.play import dit_expected, preload_compiler


def test_no_preload_without_a_compiled_dit_on_a_gpu():
    dit = load_config(overrides=["runtime.refiner=dit"])
    assert preload_compiler(dit, torch.device("cpu")) is None
    assert preload_compiler(load_config(overrides=["runtime.refiner=geometry"]), torch.device("cuda")) is None
    assert preload_compiler(load_config(overrides=["runtime.refiner=dit", "model.compile=false"]),
                            torch.device("cuda")) is None


def test_auto_expects_the_dit_when_its_weight_files_are_there(tmp_path):
    auto = ["runtime.refiner=auto", f"model.checkpoint_dir={tmp_path}"]
    assert not dit_expected(load_config(overrides=auto))                    # an empty folder: geometry
    assert dit_expected(load_config(overrides=[*auto, "model.random_weights=true"]))
    (tmp_path / "Wan2.1-T2V-1.3B").mkdir()
    (tmp_path / "Wan2.1-T2V-1.3B" / "diffusion_pytorch_model.safetensors").touch()
    (tmp_path / "InSpatio-World-1.3B").mkdir()
    (tmp_path / "InSpatio-World-1.3B" / "InSpatio-World-1.3B.safetensors").touch()
    assert dit_expected(load_config(overrides=auto))
    assert not dit_expected(load_config(overrides=["runtime.refiner=geometry", f"model.checkpoint_dir={tmp_path}"]))


@pytest.mark.gpu
def test_preload_starts_cuda_and_imports_the_compiler():
    thread = preload_compiler(load_config(overrides=["runtime.refiner=dit"]), torch.device("cuda"))
    thread.join()
    assert torch.cuda.is_initialized() and "torch._inductor.compile_fx" in sys.modules
