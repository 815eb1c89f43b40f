"""`--depth da3` through the depth-anything-3 package (requirements-depth.txt) with the DA3 folder of the
tiny checkpoint tree (benchmarks/fake_checkpoints.py: config.json naming the package's smallest preset,
model.safetensors with the wrapper's `model.` prefix), loaded strictly and run by roam's adapter, from
the build command too."""
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from scenes.depth.base import DepthError
from scenes.depth.da3 import load_da3
from scenes.scene import load_scene
from tests.makers import write_test_video

try:                                               # the modules scenes/depth/da3.py imports
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        import depth_anything_3.cfg  # noqa: F401
    import depth_anything_3.utils.io.output_processor  # noqa: F401
except ImportError as err:
    pytest.skip(f"the DA3 extra does not import here ({err}); pip install --no-deps -r requirements-depth.txt",
                allow_module_level=True)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def da3_dir(tiny_checkpoints) -> Path:
    return tiny_checkpoints / "DA3"


def test_the_package_network_loads_strictly_and_predicts_depth_and_cameras(da3_dir):
    runner = load_da3(da3_dir, "cpu")
    frames = np.random.default_rng(0).integers(0, 255, (2, 56, 98, 3), dtype=np.uint8)
    res = runner.inference(list(frames))
    assert res.depth.shape == (2, 56, 98) and np.isfinite(res.depth).all()
    assert res.intrinsics.shape == (2, 3, 3) and res.extrinsics.shape == (2, 3, 4)


def test_a_file_without_a_tensor_or_naming_another_preset_is_refused(tmp_path, da3_dir):
    weights = load_file(da3_dir / "model.safetensors")
    preset = json.loads((da3_dir / "config.json").read_text())["model_name"]
    dropped = sorted(weights)[5]
    folder = tmp_path / "DA3"
    folder.mkdir()
    shutil.copy(da3_dir / "config.json", folder)
    save_file({k: v for k, v in weights.items() if k != dropped}, folder / "model.safetensors")
    with pytest.raises(DepthError, match=rf"model.safetensors: not the {preset} network: missing 1 "
                                         rf"\({dropped.removeprefix('model.')}\).*download --only depth"):
        load_da3(folder, "cpu")
    (folder / "config.json").write_text(json.dumps({"model_name": "da3-tiny"}))
    with pytest.raises(DepthError, match="model_name 'da3-tiny' is not a DA3 preset"):
        load_da3(folder, "cpu")


def test_build_with_depth_da3_stores_the_networks_depth(tmp_path, da3_dir):
    root = tmp_path / "checkpoints"                                         # DA3 alone
    root.mkdir()
    (root / "DA3").symlink_to(da3_dir)
    frames = np.random.default_rng(1).integers(0, 255, (3, 36, 64, 3), dtype=np.uint8)
    video = write_test_video(tmp_path / "clip.mp4", frames)
    out = subprocess.run([sys.executable, "main.py", "build", str(video), "--depth", "da3", "--prompt", "a test",
                          "--set", f"model.checkpoint_dir={root}", "--set", f"scenes.cache_dir={tmp_path / 'cache'}",
                          "--set", "scenes.width=64", "--set", "scenes.height=32"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) == 1                                  # the scene's folder, nothing else
    scene = load_scene(out.stdout.strip())
    assert scene.meta["depth_provider"] == "da3" and scene.meta["depth_notes"]["process_size"] == [504, 280]
    assert scene.depth.shape == (3, 32, 64) and bool((scene.depth > 0).all())


def test_every_module_of_the_official_network_imports():
    # The official DA3 folder (download --only depth) names da3nested-giant-large; building it imports
    # the modules its preset names (the nested one's pose alignment needs evo): requirements-depth.txt
    # must install them all, or build stops halfway through its depth step.
    import importlib

    from omegaconf import OmegaConf

    from depth_anything_3.cfg import load_config
    from depth_anything_3.registry import MODEL_REGISTRY

    def paths(node):
        if isinstance(node, dict):
            if "__object__" in node:
                yield node["__object__"]["path"]
            for value in node.values():
                yield from paths(value)

    preset = OmegaConf.to_container(load_config(MODEL_REGISTRY["da3nested-giant-large"]))
    modules = sorted(set(paths(preset)))
    assert "depth_anything_3.model.gs_adapter" in modules
    for module in modules:
        importlib.import_module(module)
