"""scenes/depth/da3_weights.py: a DA3 folder is verified against its preset's manifest, and every way
it can be broken gets one line that says so; the manifests match depth-anything-3's own classes."""
import importlib.util
import json

import pytest
import torch
from safetensors.torch import save_file

from scenes.depth.da3_weights import check_da3_weights, da3_manifest

SHAPES = {"model.backbone.pretrained.cls_token": [1, 1, 8], "model.head.proj.weight": [4, 8]}


@pytest.fixture
def manifests(tmp_path):
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "da3-test.json").write_text(json.dumps({"model_name": "da3-test", "keys": SHAPES}))
    return folder


def write_da3(folder, tensors, preset="da3-test"):
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_name": preset}))
    save_file({k: torch.zeros(s) for k, s in tensors.items()}, str(folder / "model.safetensors"))


def test_complete_folder_is_verified(tmp_path, manifests):
    write_da3(tmp_path / "DA3", SHAPES)
    assert check_da3_weights(tmp_path / "DA3", manifests) == ("verified", "da3-test: all 2 tensors with the expected shapes")


@pytest.mark.parametrize("tensors, words", [
    ({"model.head.proj.weight": [4, 8]}, "missing 1 (model.backbone.pretrained.cls_token)"),
    ({**SHAPES, "model.extra": [1]}, "unexpected 1 (model.extra)"),
    ({**SHAPES, "model.head.proj.weight": [4, 9]}, "wrong shape 1 (model.head.proj.weight)"),
])
def test_broken_weights_are_named(tmp_path, manifests, tensors, words):
    write_da3(tmp_path / "DA3", tensors)
    status, detail = check_da3_weights(tmp_path / "DA3", manifests)
    assert status == "invalid" and words in detail and "\n" not in detail


def test_truncated_file_missing_folder_and_unknown_preset(tmp_path, manifests):
    assert check_da3_weights(tmp_path / "none", manifests)[0] == "missing"
    write_da3(tmp_path / "DA3", SHAPES)
    data = (tmp_path / "DA3" / "model.safetensors").read_bytes()
    (tmp_path / "DA3" / "model.safetensors").write_bytes(data[: len(data) // 2])
    status, detail = check_da3_weights(tmp_path / "DA3", manifests)
    assert status == "invalid" and "truncated" in detail
    write_da3(tmp_path / "other", SHAPES, preset="da3-large")
    assert check_da3_weights(tmp_path / "other", manifests)[0] == "present"


@pytest.mark.skipif(importlib.util.find_spec("depth_anything_3") is None, reason="depth-anything-3 not installed")
def test_manifest_is_what_the_package_builds():
    from depth_anything_3.cfg import create_object, load_config
    from depth_anything_3.registry import MODEL_REGISTRY
    net = create_object(load_config(MODEL_REGISTRY["da3-small"]))
    assert {"model." + k: tuple(v.shape) for k, v in net.state_dict().items()} == da3_manifest("da3-small")
