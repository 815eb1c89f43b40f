"""Checkpoint loading with files the tests write in the official key layouts: both prefix styles,
.safetensors and .pth, and the errors for a missing tensor, a wrong shape, an unexpected tensor,
a truncated file; the DiT's two-file sequence."""

import pytest
import torch
import torch.nn as nn
from safetensors.torch import save_file

from model import checkpoint as ck
from model.checkpoint import CheckpointError, KeyMap, TensorFile
from model.dit import CausalWanModel, DiTConfig
from model.tae import TAEHV, TAEConfig
from model.vae import VAEConfig, WanVAE


def write(path, tensors: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    save_file(tensors, path) if path.suffix == ".safetensors" else torch.save(tensors, path)


def randomised(module: nn.Module) -> dict:
    """The module's state dict with every tensor random (norm gains too), in float16 like the releases."""
    return {k: torch.randn(v.shape).half() for k, v in module.state_dict().items()}


@pytest.fixture(scope="module")
def vae_sd():
    return randomised(WanVAE(VAEConfig.tiny()))


def test_keymap_strips_wrapper_prefixes_drops_the_filter_list_and_renames():
    assert ck.DIT_INSPATIO_KEYMAP.target("model._orig_mod.blocks.0.ffn.0.weight") == "blocks.0.ffn.0.weight"
    assert ck.DIT_INSPATIO_KEYMAP.target("generator.model.head.head.bias") == "head.head.bias"
    for key in ("patch_embedding.weight", "img_emb.proj.1.weight", "blocks.3.cross_attn.k_img.weight"):
        assert ck.DIT_BASE_KEYMAP.target(key) is None
    assert ck.UMT5_KEYMAP.target("blocks.7.pos_embedding.embedding.weight") == \
        "encoder.block.7.layer.0.SelfAttention.relative_attention_bias.weight"
    assert KeyMap().target("encoder.conv1.weight") == "encoder.conv1.weight"


@pytest.mark.parametrize("name", ["Wan2.1_VAE.pth", "Wan2.1_VAE.safetensors"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_vae_loads_into_a_meta_module_with_explicit_dtype(tmp_path, vae_sd, name, dtype):
    write(tmp_path / name, vae_sd)
    vae = WanVAE(VAEConfig.tiny(), device="meta", dtype=dtype)
    ck.load_vae(vae, tmp_path / name, device="cpu")
    got = vae.state_dict()
    assert all(got[k].dtype == dtype and torch.equal(got[k], v.to(dtype)) for k, v in vae_sd.items())


def test_pth_wrapped_in_a_state_dict_key_is_unwrapped(tmp_path, vae_sd):
    torch.save({"state_dict": vae_sd}, tmp_path / "vae.pth")
    vae = WanVAE(VAEConfig.tiny(), device="meta")
    ck.load_vae(vae, tmp_path / "vae.pth", device="cpu")
    assert torch.equal(vae.conv2.weight, vae_sd["conv2.weight"].float())


def load_error(tmp_path, tensors: dict, name="Wan2.1_VAE.pth") -> str:
    write(tmp_path / name, tensors)
    vae = WanVAE(VAEConfig.tiny())
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    with pytest.raises(CheckpointError) as err:
        ck.load_vae(vae, tmp_path / name)
    assert all(torch.equal(v, before[k]) for k, v in vae.state_dict().items()), "a failed load changed the module"
    message = str(err.value)
    assert str(tmp_path / name) in message and "Wan2.1-T2V-1.3B" in message and "\n" not in message
    return message


def test_missing_tensor_is_named(tmp_path, vae_sd):
    sd = {k: v for k, v in vae_sd.items() if k != "decoder.head.2.bias"}
    assert "missing 1 (decoder.head.2.bias)" in load_error(tmp_path, sd)


def test_wrong_shape_is_named_with_both_shapes(tmp_path, vae_sd):
    sd = dict(vae_sd, **{"conv2.weight": torch.zeros(16, 16, 3, 1, 1)})
    assert "wrong shape 1 (conv2.weight: file (16, 16, 3, 1, 1) vs model (16, 16, 1, 1, 1))" in load_error(tmp_path, sd)


def test_unexpected_tensor_is_named(tmp_path, vae_sd):
    assert "unexpected 1 (decoder.extra.weight)" in load_error(tmp_path, dict(vae_sd, **{"decoder.extra.weight": torch.ones(1)}))


@pytest.mark.parametrize("name", ["Wan2.1_VAE.pth", "Wan2.1_VAE.safetensors"])
def test_truncated_file_is_reported(tmp_path, vae_sd, name):
    write(tmp_path / name, vae_sd)
    data = (tmp_path / name).read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated") as err:
        ck.load_vae(WanVAE(VAEConfig.tiny()), tmp_path / name)
    assert str(tmp_path / name) in str(err.value)


def test_absent_file_says_what_to_download(tmp_path):
    with pytest.raises(CheckpointError, match="file not found.*madebyollin/taehv"):
        ck.load_tae(TAEHV(device="meta"), tmp_path / "taehv" / "taew2_1.pth", device="cpu")


def test_tae_tgrow_weights_with_extra_rows_keep_the_last_rows(tmp_path):
    sd = randomised(TAEHV(TAEConfig(), device="meta"))
    sd["decoder.7.conv.weight"] = torch.randn(512, 256, 1, 1).half()      # a checkpoint trained with stride 2
    write(tmp_path / "taew2_1.pth", sd)
    tae = TAEHV(TAEConfig(), device="meta")
    ck.load_tae(tae, tmp_path / "taew2_1.pth", device="cpu")
    assert torch.equal(tae.decoder[7].conv.weight, sd["decoder.7.conv.weight"][-256:].float())
    assert torch.equal(tae.decoder[13].conv.weight, sd["decoder.13.conv.weight"].float())


def test_meta_module_with_non_persistent_buffers_is_refused(tmp_path):
    module = nn.Linear(2, 2, device="meta")
    module.register_buffer("table", torch.zeros(3, device="meta"), persistent=False)
    write(tmp_path / "m.safetensors", {"weight": torch.ones(2, 2), "bias": torch.ones(2)})
    with pytest.raises(ValueError, match="non-persistent"):
        ck.load_module(module, [(TensorFile(tmp_path / "m.safetensors", "get it"), KeyMap())], device="cpu")


# --- DiT: base Wan2.1 file(s) minus the filter list, then the InSpatio file ----------------------

@pytest.fixture(scope="module")
def dit_sd():
    return randomised(CausalWanModel(DiTConfig.tiny(), device="meta"))


def write_dit_files(root, dit_sd, prefix="model.", drop=(), extra=None, split=False):
    """The official layout: base keys unprefixed with a 16-channel patch embedding and image keys
    (both filtered); the InSpatio file with the 36-channel patch embedding and one override."""
    base = {k: v for k, v in dit_sd.items() if not k.startswith("patch_embedding")}
    base |= {"patch_embedding.weight": torch.zeros(256, 16, 1, 2, 2), "patch_embedding.bias": torch.zeros(256),
             "img_emb.proj.1.weight": torch.zeros(4, 4), "blocks.0.cross_attn.k_img.weight": torch.zeros(4, 4)}
    names = sorted(base)
    parts = [names[: len(names) // 2], names[len(names) // 2:]] if split else [names]
    for i, part in enumerate(parts):
        write(root / ck.WAN_DIR / f"diffusion_pytorch_model-0000{i + 1}-of-0000{len(parts)}.safetensors",
              {k: base[k] for k in part})
    insp = {k: dit_sd[k] for k in ("patch_embedding.weight", "patch_embedding.bias") if k not in drop}
    insp["head.head.bias"] = torch.full_like(dit_sd["head.head.bias"], 0.5)  # overrides the base value
    write(root / ck.INSPATIO_FILE, {prefix + k: v for k, v in (insp | (extra or {})).items()})
    return ck.discover(root)


@pytest.mark.parametrize("prefix", ["model.", ""])
def test_dit_loads_base_then_inspatio_in_both_prefix_styles(tmp_path, dit_sd, prefix):
    files = write_dit_files(tmp_path, dit_sd, prefix=prefix, split=True)
    assert len(files.dit_base) == 2
    dit = CausalWanModel(DiTConfig.tiny(), device="meta", dtype=torch.float32)
    ck.load_dit(dit, list(files.dit_base), files.dit_inspatio, device="cpu")
    got = dit.state_dict()
    assert len(got) == len(dit_sd) and not any(v.is_meta for v in got.values())
    assert torch.equal(got["patch_embedding.weight"], dit_sd["patch_embedding.weight"].float())   # 36 channels
    assert (got["head.head.bias"] == 0.5).all()
    assert all(torch.equal(got[k], v.float()) for k, v in dit_sd.items() if k not in ("head.head.bias",))


def test_dit_without_the_inspatio_patch_embedding_names_what_is_missing(tmp_path, dit_sd):
    files = write_dit_files(tmp_path, dit_sd, drop=("patch_embedding.bias",))
    with pytest.raises(CheckpointError, match=r"missing 1 \(patch_embedding.bias\).*inspatio/world"):
        ck.load_dit(CausalWanModel(DiTConfig.tiny(), device="meta"), list(files.dit_base), files.dit_inspatio,
                    device="cpu")


def test_discover_prefers_the_safetensors_umt5_file(tmp_path):
    for name in ck.T5_FILES:
        write(tmp_path / name, {"token_embedding.weight": torch.zeros(2, 2)})
    assert ck.discover(tmp_path).t5.suffix == ".safetensors"


def test_dit_unexpected_inspatio_tensor_is_an_error(tmp_path, dit_sd):
    files = write_dit_files(tmp_path, dit_sd, extra={"blocks.9.ffn.0.weight": torch.zeros(2)})
    with pytest.raises(CheckpointError, match=r"InSpatio-World-1.3B.safetensors: unexpected 1 \(blocks.9.ffn.0.weight\)"):
        ck.load_dit(CausalWanModel(DiTConfig.tiny(), device="meta"), list(files.dit_base), files.dit_inspatio,
                    device="cpu")
