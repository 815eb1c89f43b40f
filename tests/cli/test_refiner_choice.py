"""Which refiner play and render run, and the one line that says why: the DiT with a complete tree
(the scene's caption embedded on demand and stored with it), the geometry refiner naming the file at
fault and the command that fixes it otherwise; `dit` refuses with the same line."""
import shutil

import pytest
import torch

from model import checkpoint as ck
from cli.errors import UserError
from runtime.config import load_config
from cli.refiner_choice import make_refiner
from scenes.scene import PROMPT_FILE, Scene, load_scene, save_scene

pytest.importorskip("transformers")
H, W = 32, 48


@pytest.fixture
def checkpoints(tiny_checkpoints, tmp_path):
    return shutil.copytree(tiny_checkpoints, tmp_path / "checkpoints")


def saved_scene(folder, caption="a cat walks on the street", H=H, W=W) -> Scene:
    g = torch.Generator().manual_seed(0)
    scene = Scene(frames=torch.randint(0, 255, (12, H, W, 3), generator=g, dtype=torch.uint8),
                  depth=torch.full((12, H, W), 2.0), K=torch.tensor([[40.0, 0, W / 2], [0, 40.0, H / 2], [0, 0, 1]]).expand(12, 3, 3).clone(),
                  c2w=torch.eye(4).expand(12, 4, 4).clone(), fps=24.0, caption=caption)
    save_scene(scene, folder)
    return load_scene(folder)


def choose(checkpoints, scene, refiner="auto", *sets, real_time=False):
    cfg = load_config(overrides=[f"model.checkpoint_dir={checkpoints}", f"runtime.refiner={refiner}", *sets])
    said = []
    return make_refiner(cfg, torch.device("cpu"), scene, say=said.append, real_time=real_time), said


def test_auto_runs_the_dit_and_stores_the_embedding_it_made_on_demand(checkpoints, tmp_path):
    scene = saved_scene(tmp_path / "scene")
    refiner, said = choose(checkpoints, scene)
    assert refiner.name == "dit" and said[-1].startswith("refiner: dit (auto: ")
    assert any("encoding \"a cat walks on the street\" with umT5" in line for line in said)
    stored = load_scene(tmp_path / "scene")
    assert stored.prompt_embeds.shape == (1, 512, 64) and stored.prompt_encoder == scene.prompt_encoder != ""
    again, said = choose(checkpoints, stored)                    # made once: the next start only loads it
    assert again.name == "dit" and not any(line.startswith("encoding ") for line in said)


def test_an_embedding_is_kept_when_the_encoder_is_gone_and_remade_for_another_encoder(checkpoints, tiny_checkpoints,
                                                                                     tmp_path):
    scene = saved_scene(tmp_path / "scene")
    choose(checkpoints, scene)
    first = load_scene(tmp_path / "scene").prompt_embeds
    shutil.rmtree(checkpoints / ck.TOKENIZER_DIR)
    refiner, said = choose(checkpoints, load_scene(tmp_path / "scene"))
    assert refiner.name == "dit" and not any(line.startswith("encoding ") for line in said)
    shutil.copytree(tiny_checkpoints / ck.TOKENIZER_DIR, checkpoints / ck.TOKENIZER_DIR)
    encoder = torch.load(checkpoints / ck.T5_FILES[1], weights_only=True)    # other encoder weights
    torch.save({k: v * 1.5 if k == "norm.weight" else v for k, v in encoder.items()}, checkpoints / ck.T5_FILES[1])
    refiner, said = choose(checkpoints, load_scene(tmp_path / "scene"))
    assert refiner.name == "dit" and any(line.startswith("encoding ") for line in said)
    assert not torch.equal(load_scene(tmp_path / "scene").prompt_embeds, first)


@pytest.mark.parametrize("remove,named,command", [
    (ck.TAE_FILE, "taehv/taew2_1.pth is missing", "python main.py download --only tae"),
    (ck.INSPATIO_FILE, "InSpatio-World-1.3B.safetensors is missing", "python main.py download --only dit"),
    (ck.T5_FILES[1], "models_t5_umt5-xxl-enc-bf16.pth is missing (the umT5 text encoder)",
     "python main.py download --only dit"),
])
def test_a_missing_file_gives_geometry_and_a_line_naming_it_and_the_fix(checkpoints, tmp_path, remove, named, command):
    (checkpoints / remove).unlink()
    refiner, said = choose(checkpoints, saved_scene(tmp_path / "scene"))
    assert refiner.name == "geometry"
    line = said[-1]
    assert line.startswith("refiner: geometry, not the DiT: ") and named in line and command in line
    assert "\n" not in line and not (tmp_path / "scene" / PROMPT_FILE).exists()


def test_a_truncated_file_gives_geometry_and_a_line_naming_it(checkpoints, tmp_path):
    path = checkpoints / ck.INSPATIO_FILE
    path.write_bytes(path.read_bytes()[:5000])
    refiner, said = choose(checkpoints, saved_scene(tmp_path / "scene"))
    assert refiner.name == "geometry"
    assert str(path) in said[-1] and "truncated" in said[-1] and "python main.py download --only dit" in said[-1]


def test_dit_refuses_with_the_same_line_and_geometry_says_it_was_asked_for(checkpoints, tmp_path):
    (checkpoints / ck.VAE_FILE).unlink()
    with pytest.raises(UserError, match=r"runtime.refiner=dit: .*Wan2.1_VAE.pth is missing; get it with "
                                        r"`python main.py download --only dit`"):
        choose(checkpoints, saved_scene(tmp_path / "scene"), "dit", "model.use_tae=false")
    refiner, said = choose(checkpoints, saved_scene(tmp_path / "scene"), "geometry")
    assert refiner.name == "geometry" and said == ["refiner: geometry (runtime.refiner=geometry)"]


def test_in_real_time_auto_leaves_the_dit_to_a_gpu_and_says_so_and_dit_still_runs_it(checkpoints, tmp_path):
    scene = saved_scene(tmp_path / "scene")
    refiner, said = choose(checkpoints, scene, real_time=True)
    assert refiner.name == "geometry" and said == ["refiner: geometry, not the DiT: this machine has no CUDA GPU, and "
                                                   "on a CPU the DiT is far from real time (runtime.refiner=dit runs it anyway)"]
    assert choose(checkpoints, scene, "dit", real_time=True)[0].name == "dit"


def test_frames_the_dits_patches_cannot_tile_give_geometry_or_one_line(checkpoints, tmp_path):
    scene = saved_scene(tmp_path / "scene", H=40, W=48)              # latent grid 5x6: not a multiple of 2
    refiner, said = choose(checkpoints, scene)
    assert refiner.name == "geometry" and "frames are 48x40 and the DiT needs both sides multiples of 16" in said[-1]
    with pytest.raises(UserError, match=r"^runtime.refiner=dit: the scene's frames are 48x40 .* --set scenes.width="):
        choose(checkpoints, scene, "dit")


def test_a_caption_two_scenes_share_is_encoded_once_per_command(checkpoints, tmp_path):
    cfg = load_config(overrides=[f"model.checkpoint_dir={checkpoints}"])
    made, said = {}, []
    for name in ("a", "b"):
        assert make_refiner(cfg, torch.device("cpu"), saved_scene(tmp_path / name), say=said.append, made=made).name == "dit"
    assert sum(line.startswith("encoding ") for line in said) == 1
    assert torch.equal(load_scene(tmp_path / "a").prompt_embeds, load_scene(tmp_path / "b").prompt_embeds)


def test_build_without_a_usable_encoder_keeps_the_scene_and_says_why(checkpoints, tmp_path):
    from cli.prompt_embedding import embed_built_scene
    scene, said = saved_scene(tmp_path / "scene"), []
    encoder = checkpoints / ck.T5_FILES[1]
    encoder.write_bytes(encoder.read_bytes()[:2048])
    embed_built_scene(checkpoints, scene, torch.device("cpu"), say=said.append)
    assert said[-1].startswith(f"no prompt embedding yet (the DiT needs one): {encoder}: ")
    assert said[-1].endswith("get it again with `python main.py download --only dit`")
    encoder.unlink()
    embed_built_scene(checkpoints, scene, torch.device("cpu"), say=said.append)
    assert f"{encoder} is missing (the umT5 text encoder)" in said[-1] and scene.prompt_embeds is None


def test_the_weight_files_render_keys_its_reuse_on_follow_downloads_and_deletions(checkpoints):
    from cli.refiner_choice import weight_files
    cfg = load_config(overrides=[f"model.checkpoint_dir={checkpoints}"]).model
    before = weight_files(cfg)
    assert str(checkpoints / ck.INSPATIO_FILE) in before and str(checkpoints / ck.TAE_FILE) in before
    (checkpoints / ck.TAE_FILE).unlink()
    assert weight_files(cfg) != before


def test_encoder_identity_follows_the_weights_and_the_tokenizer(checkpoints):
    from cli.prompt_embedding import encoder_identity
    first = encoder_identity(checkpoints)
    assert first is not None and first == encoder_identity(checkpoints)
    encoder = torch.load(checkpoints / ck.T5_FILES[1], weights_only=True)
    torch.save({k: v + 1 if k == "norm.weight" else v for k, v in encoder.items()}, checkpoints / ck.T5_FILES[1])
    second = encoder_identity(checkpoints)
    assert second != first
    (checkpoints / ck.TOKENIZER_DIR / "tokenizer_config.json").write_text("{}")
    assert encoder_identity(checkpoints) not in (first, second)
    (checkpoints / ck.T5_FILES[1]).unlink()
    assert encoder_identity(checkpoints) is None


def test_play_on_frames_the_dit_cannot_tile_is_one_line(tmp_path):
    """The user's command on the sample built at 200x120 (latent 25x15): one line naming the sizes and
    the fix, with runtime.refiner=dit as with bench --play's random DiT."""
    from tests.reliability import one_line_error, run_roam
    sample = ["--set", "scenes.width=200", "--set", "scenes.height=120", "--set", "scenes.sample.frames=24",
              "--set", f"scenes.cache_dir={tmp_path / 'cache'}"]
    for command in (["play", "--set", "runtime.refiner=dit"], ["bench", "--play"]):
        one_line_error(run_roam(*command, "--headless", "--seconds", "0.5", "--out", tmp_path / "out", *sample),
                       "the scene's frames are 200x120 and the DiT needs both sides multiples of 16",
                       "--set scenes.width=")
