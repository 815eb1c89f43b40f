"""benchmarks/fake_checkpoints.py: the tiny tree, written by the command, loads through roam's own
loaders and the libraries that read the rest; the full tree's tensors are the reference's."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from benchmarks.fake_checkpoints import SIZES, tensor_files, wan_config
from model import checkpoint as ck
from model.checkpoint_report import WAN_CONFIG_VALUES
from model.config import ModelConfig
from model.dit import CausalWanModel, DiTConfig
from model.latent_codec import TAECodec, VAECodec, load_codec
from model.text import load_text_encoder
from scenes.depth.da3_weights import check_da3_weights, da3_manifest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt") / "checkpoints"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.fake_checkpoints", str(root), "--size", "tiny"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return root


def test_tiny_tree_has_every_file_in_its_format_and_nothing_half_written(tiny_tree):
    names = {str(p.relative_to(tiny_tree)) for p in tiny_tree.rglob("*") if p.is_file()}
    for f in tensor_files(SIZES["tiny"]):
        assert f.path in names
        if f.path.endswith(".safetensors"):
            with safe_open(str(tiny_tree / f.path), framework="pt") as st:
                assert {k: st.get_slice(k).get_dtype() for k in st.keys()} == \
                    {n: {torch.float32: "F32", torch.bfloat16: "BF16"}[d] for n, _, d in f.entries}
        else:
            sd = torch.load(tiny_tree / f.path, map_location="cpu", weights_only=True)
            assert {k: (tuple(v.shape), v.dtype) for k, v in sd.items()} == {n: (s, d) for n, s, d in f.entries}
    assert {ck.WAN_CONFIG, "DA3/config.json", f"{ck.TOKENIZER_DIR}/tokenizer.json",
            "Florence-2-large/config.json", "Florence-2-large/model.safetensors"} <= names
    assert not [n for n in names if n.endswith(".tmp")]


def test_tiny_tree_loads_strictly_through_roams_loaders(tiny_tree):
    files = ck.discover(tiny_tree)
    dit = CausalWanModel(DiTConfig(**ck.wan_dit_size(files.wan_config)), device="meta", dtype=torch.float32)
    ck.load_dit(dit, list(files.dit_base), files.dit_inspatio, device="cpu")
    assert dit.cfg.text_dim == 64 and dit.patch_embedding.weight.shape[1] == 36
    encoder = load_text_encoder(tiny_tree, device="cpu", dtype=torch.float32)
    embeds = encoder("The image shows a wooden table near a window.")
    assert embeds.shape == (1, 512, 64) and embeds[0, :4].abs().sum() > 0 and embeds[0, 100:].abs().sum() == 0
    assert isinstance(load_codec(ModelConfig(checkpoint_dir=str(tiny_tree), use_tae=True), device="cpu"), TAECodec)
    assert isinstance(load_codec(ModelConfig(checkpoint_dir=str(tiny_tree), use_tae=False), device="cpu"), VAECodec)
    assert check_da3_weights(tiny_tree / "DA3")[0] == "verified"


def test_tiny_florence_captions_through_transformers(tiny_tree):
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor
    folder = str(tiny_tree / "Florence-2-large")
    model, processor = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32), \
        AutoProcessor.from_pretrained(folder)
    inputs = processor(text=["<MORE_DETAILED_CAPTION>"], images=[Image.fromarray(np.zeros((48, 80, 3), np.uint8))],
                       return_tensors="pt")
    ids = model.generate(input_ids=inputs["input_ids"], pixel_values=inputs["pixel_values"], max_new_tokens=1024,
                         do_sample=False, num_beams=1, use_cache=False)
    assert ids.shape[1] < 8 and ids[0, -1] == processor.tokenizer.eos_token_id     # stops at once, not 1024 steps


def test_full_tree_has_the_references_names_shapes_and_config():
    by_path = {f.path: {n: s for n, s, _ in f.entries} for f in tensor_files(SIZES["full"])}
    manifest = ck.load_manifest
    dit = manifest("dit_1.3b_keys")
    assert by_path[ck.INSPATIO_FILE] == {"model." + n: s for n, s in dit.items()}
    base = by_path[f"{ck.WAN_DIR}/diffusion_pytorch_model.safetensors"]
    assert base == {**dit, "patch_embedding.weight": (1536, 16, 1, 2, 2)}
    assert by_path[ck.T5_FILES[1]] == manifest("t5_umt5_xxl_keys")
    assert by_path[ck.VAE_FILE] == manifest("wan_vae_keys")
    assert by_path[ck.TAE_FILE] == manifest("taew2_1_keys")
    assert by_path["DA3/model.safetensors"] == da3_manifest("da3nested-giant-large")
    assert sum(np.prod(s) for s in by_path["DA3/model.safetensors"].values()) == 1_689_845_711
    assert {k: v for k, v in wan_config(DiTConfig()).items() if k in WAN_CONFIG_VALUES} == WAN_CONFIG_VALUES
    assert json.dumps(wan_config(DiTConfig())).count("text_dim") == 0
