"""model/checkpoint_report.py, doctor's model-stack rows: a tree at any size verifies against the sizes
it declares, the official sizes against the reference's manifests, and every broken file is one line."""
import json
import shutil

import pytest

from model import checkpoint as ck
from model.checkpoint_report import WAN_CONFIG_VALUES, doctor_report


def rows(root) -> dict:
    return {r.name: r for r in doctor_report(root)}


@pytest.fixture
def tree(tiny_checkpoints, tmp_path):
    return shutil.copytree(tiny_checkpoints, tmp_path / "checkpoints")


def test_empty_folder_is_all_missing(tmp_path):
    report = doctor_report(tmp_path)
    assert {r.status for r in report} == {"missing"} and len(report) == 7
    assert all(r.enables and r.detail for r in report)


def test_tiny_tree_verifies_at_its_own_size(tiny_checkpoints):
    report = rows(tiny_checkpoints)
    assert {n: r.status for n, r in report.items()} == {n: "verified" for n in report}
    assert "not the official size (dim 256, 2 layers, text_dim 64)" in report["Wan2.1 DiT config"].detail
    assert "all 69 are assigned" in report["InSpatio-World DiT weights"].detail
    assert report["TAEHV taew2_1"].detail == "all 128 tensors, the official size"


def test_official_config_is_checked_against_the_reference_manifest(tree):
    (tree / ck.WAN_CONFIG).write_text(json.dumps(WAN_CONFIG_VALUES | {"in_dim": 16}))
    report = rows(tree)
    assert report["Wan2.1 DiT config"].detail.endswith("the official size")
    assert report["Wan2.1 DiT base weights"].status == "invalid"
    assert "wrong shape" in report["Wan2.1 DiT base weights"].detail
    assert report["umT5-XXL text encoder"].status == "invalid"          # 64 wide, the official DiT wants 4096
    assert "text_dim 4096" in report["umT5-XXL text encoder"].detail


@pytest.mark.parametrize("rel, damage, name, words", [
    (ck.INSPATIO_FILE, lambda b: b[: len(b) // 2], "InSpatio-World DiT weights", "truncated"),
    (ck.T5_FILES[1], lambda b: b[:5000], "umT5-XXL text encoder", "truncated"),
    (ck.VAE_FILE, lambda b: b"not a checkpoint", "Wan2.1 VAE", "unreadable"),
    (ck.WAN_CONFIG, lambda b: b.replace(b'"t2v"', b'"i2v"'), "Wan2.1 DiT config", "not a Wan2.1 T2V config"),
    (f"{ck.TOKENIZER_DIR}/tokenizer.json", lambda b: b[:100], "umT5 tokenizer", "unreadable"),
])
def test_a_broken_file_is_one_line_with_the_command_that_fixes_it(tree, rel, damage, name, words):
    (tree / rel).write_bytes(damage((tree / rel).read_bytes()))
    row = rows(tree)[name]
    assert row.status == "invalid" and words in row.detail and "\n" not in row.detail
    assert "python main.py download --only dit" in row.detail


def test_inspatio_file_without_the_36_channel_patch_embedding_is_named(tree):
    from safetensors.torch import load_file, save_file
    sd = load_file(tree / ck.INSPATIO_FILE)
    del sd["model.patch_embedding.weight"], sd["model.patch_embedding.bias"]
    save_file(sd, tree / ck.INSPATIO_FILE)
    row = rows(tree)["InSpatio-World DiT weights"]
    assert row.status == "invalid" and "36-channel patch_embedding" in row.detail
