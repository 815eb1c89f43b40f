"""`--depth da3` through the depth-anything-3 package (requirements-depth.txt): its smallest preset with
seeded random weights in the official files (config.json naming the preset, model.safetensors with the
wrapper's `model.` prefix), loaded strictly and run by roam's adapter, from the build command too."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from scenes.depth.base import DepthError
from scenes.depth.da3 import load_da3
from scenes.scene import load_scene
from tests.makers import write_test_video

pytest.importorskip("depth_anything_3")
REPO = Path(__file__).resolve().parents[2]
PRESET = "da3-small"


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict:
    from depth_anything_3.cfg import create_object, load_config
    from depth_anything_3.registry import MODEL_REGISTRY
    g = torch.Generator().manual_seed(0)
    net = create_object(load_config(MODEL_REGISTRY[PRESET]))
    return {f"model.{k}": (torch.randn(v.shape, generator=g) * 0.02).to(v.dtype) if v.is_floating_point() else v
            for k, v in net.state_dict().items()}


def write_da3(folder: Path, tensors: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_name": PRESET}))
    save_file({k: v.contiguous() for k, v in tensors.items()}, folder / "model.safetensors")
    return folder


def test_the_package_network_loads_strictly_and_predicts_depth_and_cameras(tmp_path, weights):
    runner = load_da3(write_da3(tmp_path / "DA3", weights), "cpu")
    frames = np.random.default_rng(0).integers(0, 255, (2, 56, 98, 3), dtype=np.uint8)
    res = runner.inference(list(frames))
    assert res.depth.shape == (2, 56, 98) and np.isfinite(res.depth).all()
    assert res.intrinsics.shape == (2, 3, 3) and res.extrinsics.shape == (2, 3, 4)


def test_a_file_without_a_tensor_or_naming_another_preset_is_refused(tmp_path, weights):
    dropped = sorted(weights)[5]
    folder = write_da3(tmp_path / "DA3", {k: v for k, v in weights.items() if k != dropped})
    with pytest.raises(DepthError, match=rf"model.safetensors: not the {PRESET} network: missing 1 "
                                         rf"\({dropped.removeprefix('model.')}\).*download --only depth"):
        load_da3(folder, "cpu")
    (folder / "config.json").write_text(json.dumps({"model_name": "da3-tiny"}))
    with pytest.raises(DepthError, match="model_name 'da3-tiny' is not a DA3 preset"):
        load_da3(folder, "cpu")


def test_build_with_depth_da3_stores_the_networks_depth(tmp_path, weights):
    root = tmp_path / "checkpoints"
    write_da3(root / "DA3", weights)
    frames = np.random.default_rng(1).integers(0, 255, (3, 36, 64, 3), dtype=np.uint8)
    video = write_test_video(tmp_path / "clip.mp4", frames)
    out = subprocess.run([sys.executable, "main.py", "build", str(video), "--depth", "da3", "--prompt", "a test",
                          "--set", f"model.checkpoint_dir={root}", "--set", f"scenes.cache_dir={tmp_path / 'cache'}",
                          "--set", "scenes.width=64", "--set", "scenes.height=32"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    scene = load_scene(out.stdout.strip().splitlines()[-1])
    assert scene.meta["depth_provider"] == "da3" and scene.meta["depth_notes"]["process_size"] == [504, 280]
    assert scene.depth.shape == (3, 32, 64) and bool((scene.depth > 0).all())
