"""Scene format and cache: round trip, validation, corruption, atomic saves and stale-entry rebuilds."""
import json
import zlib

import pytest
import torch
from safetensors.torch import save_file

from scenes.errors import SceneInputError
from scenes.scene import (DEPTH_FILE, FILES, FRAMES_FILE, PROMPT_FILE, SIDECAR_FILE, TENSOR_FILE, Scene, SceneCache,
                          SceneError, compact_depth, file_content_hash, load_scene, save_prompt_embeds, save_scene,
                          scene_cache_key)


def make_scene(n=3, h=6, w=10, embeds=True, seed=0) -> Scene:
    g = torch.Generator().manual_seed(seed)
    return Scene(frames=torch.randint(0, 256, (n, h, w, 3), dtype=torch.uint8, generator=g),
                 depth=torch.rand(n, h, w, generator=g) * 10 + 0.5,
                 K=torch.tensor([[8.0, 0, 5], [0, 8.0, 3], [0, 0, 1]]).expand(n, 3, 3).clone(),
                 c2w=torch.eye(4).expand(n, 4, 4).clone(), fps=24.0, caption="a test scene",
                 prompt_embeds=torch.randn(1, 7, 4096, generator=g).to(torch.bfloat16) if embeds else None,
                 prompt_encoder="enc-a" if embeds else "",
                 meta={"source": "test.mp4", "settings": {"depth": "file"}})


def assert_same(a: Scene, b: Scene):
    for name in ("frames", "depth", "K", "c2w"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert (a.prompt_embeds is None) == (b.prompt_embeds is None)
    if a.prompt_embeds is not None:
        assert a.prompt_embeds.dtype == torch.bfloat16 and torch.equal(a.prompt_embeds, b.prompt_embeds)
    assert a.prompt_encoder == b.prompt_encoder
    assert (a.fps, a.caption, a.meta) == (b.fps, b.caption, b.meta)


@pytest.mark.parametrize("embeds", [True, False])
def test_save_load_round_trip(tmp_path, embeds):
    scene = make_scene(embeds=embeds)
    save_scene(scene, tmp_path / "s")
    files = sorted(p.name for p in (tmp_path / "s").iterdir())                          # no temp left
    assert files == sorted([*FILES, SIDECAR_FILE, *([PROMPT_FILE] if embeds else [])])
    loaded = Scene.load(tmp_path / "s")
    assert_same(scene, loaded)
    sidecar = json.loads((tmp_path / "s" / SIDECAR_FILE).read_text())
    assert sidecar["version"] == 2 and sidecar["tensors"]["frames"] == {"shape": [3, 6, 10, 3], "dtype": "uint8"}
    assert sidecar["files"] == {name: file_content_hash(tmp_path / "s" / name) for name in FILES}
    assert sidecar["tensors"]["depth"]["dtype"] == "float32"                     # random depth: not float16 values
    assert (loaded.num_frames, loaded.height, loaded.width) == (3, 6, 10) and loaded.folder == tmp_path / "s"


def test_compact_storage_keeps_frames_close_and_depth_within_the_reference_codec(tmp_path):
    """Smooth frames as high-quality video; depth rounded to float16 when the uint16 codec is coarser."""
    scene = make_scene(n=4, h=32, w=48, embeds=False)
    y, x = torch.meshgrid(torch.arange(32.0), torch.arange(48.0), indexing="ij")
    scene.frames = torch.stack([(128 + 90 * torch.sin((x + 2 * i) / 6 + c) * torch.cos(y / 5)).round().to(torch.uint8)
                                for i in range(4) for c in range(3)], -1).reshape(32, 48, 4, 3).permute(2, 0, 1, 3)
    scene.frames = scene.frames.contiguous()
    scene.depth = 1.0 + 0.1 * x.expand(4, 32, 48).contiguous()                    # 1 .. 5.7: uint16 steps 7e-5 = 7e-5 relative
    assert torch.equal(compact_depth(scene.depth), scene.depth)                   # float16 (4.9e-4) would be coarser
    scene.depth = 0.5 + 2.03 * x.expand(4, 32, 48).contiguous()                   # 0.5 .. 95.9: steps 1.5e-3 at 0.5
    rounded = compact_depth(scene.depth)
    assert not torch.equal(rounded, scene.depth) and float(((rounded - scene.depth) / scene.depth).abs().max()) <= 2 ** -11
    scene.depth = rounded
    folder = save_scene(scene, tmp_path / "s", storage="compact")
    loaded = load_scene(folder)
    assert json.loads((folder / SIDECAR_FILE).read_text())["tensors"]["depth"]["dtype"] == "float16"
    assert torch.equal(loaded.depth, scene.depth) and loaded.depth.dtype == torch.float32
    err = (loaded.frames.float() - scene.frames.float()).pow(2).mean()
    assert 10 * torch.log10(255 ** 2 / err) > 35, "high-quality video"
    exact = load_scene(save_scene(scene, tmp_path / "e", storage="exact"))
    assert torch.equal(exact.frames, scene.frames)
    assert (folder / FRAMES_FILE).stat().st_size < (tmp_path / "e" / FRAMES_FILE).stat().st_size


def test_two_dim_prompt_embeds_are_accepted(tmp_path):
    scene = make_scene()
    scene.prompt_embeds = scene.prompt_embeds[0]
    assert load_scene(save_scene(scene, tmp_path / "s")).prompt_embeds.shape == (7, 4096)


@pytest.mark.parametrize("mutate, message", [
    (lambda s: setattr(s, "depth", s.depth[:2]), "depth has shape"),
    (lambda s: setattr(s, "K", s.K.double()), "K must be float32"),
    (lambda s: setattr(s, "frames", s.frames.float()), "frames must be uint8"),
    (lambda s: s.depth.__setitem__((0, 0, 0), float("nan")), "non-finite"),
    (lambda s: s.depth.__setitem__((0, 0, 0), -1.0), "negative"),
    (lambda s: s.c2w.__setitem__((1, 0, 3), float("inf")), "c2w holds non-finite"),
    (lambda s: setattr(s, "fps", 0.0), "fps"),
    (lambda s: setattr(s, "prompt_embeds", s.prompt_embeds.float()), "prompt_embeds must be bfloat16"),
    (lambda s: setattr(s, "prompt_embeds", torch.zeros(2, 3, 8, dtype=torch.bfloat16)), "prompt_embeds has shape"),
    (lambda s: setattr(s, "meta", {"x": object()}), "JSON"),
])
def test_save_refuses_invalid_scenes_and_writes_nothing(tmp_path, mutate, message):
    scene = make_scene()
    mutate(scene)
    with pytest.raises(SceneError, match=message):
        save_scene(scene, tmp_path / "s")
    assert not any((tmp_path / "s").iterdir()) if (tmp_path / "s").exists() else True


def test_truncated_file_is_a_scene_error(tmp_path):
    folder = save_scene(make_scene(), tmp_path / "s")
    data = (folder / TENSOR_FILE).read_bytes()
    (folder / TENSOR_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(SceneError, match="content hash"):
        load_scene(folder)
    with pytest.raises(SceneError, match="unreadable scene files"):
        load_scene(folder, verify_hash=False)


def test_a_scene_too_big_for_memory_fails_before_it_is_read(tmp_path, monkeypatch):
    save_scene(make_scene(n=3, h=6, w=10), tmp_path / "s")
    monkeypatch.setattr("scenes.memory.available_memory_bytes", lambda: 3 * 6 * 10 * 3)   # the frames alone
    with pytest.raises(SceneInputError, match=r"the scene's 3 frames at 10x6 need about .* GiB, .* free; close"):
        load_scene(tmp_path / "s")
    monkeypatch.setattr("scenes.memory.available_memory_bytes", lambda: 1 << 30)
    assert load_scene(tmp_path / "s").num_frames == 3


def test_wrong_shape_in_sidecar_is_a_scene_error(tmp_path):
    folder = save_scene(make_scene(), tmp_path / "s")
    sidecar = json.loads((folder / SIDECAR_FILE).read_text())
    sidecar["tensors"]["depth"]["shape"] = [3, 6, 11]
    (folder / SIDECAR_FILE).write_text(json.dumps(sidecar))
    with pytest.raises(SceneError, match="depth is float32 \\[3, 6, 10\\] in the files but the sidecar says"):
        load_scene(folder)


def test_nan_depth_on_disk_is_a_scene_error(tmp_path):
    """A file written by something else, with a valid hash, still gets its values checked."""
    folder = save_scene(make_scene(embeds=False), tmp_path / "s")
    scene = load_scene(folder)
    scene.depth[1, 2, 3] = float("nan")
    (folder / DEPTH_FILE).write_bytes(zlib.compress(scene.depth.numpy().tobytes()))
    sidecar = json.loads((folder / SIDECAR_FILE).read_text())
    sidecar["files"][DEPTH_FILE] = file_content_hash(folder / DEPTH_FILE)
    (folder / SIDECAR_FILE).write_text(json.dumps(sidecar))
    with pytest.raises(SceneError, match="depth holds 1 non-finite"):
        load_scene(folder)


def test_n_mismatch_between_tensors_is_a_scene_error(tmp_path):
    folder = save_scene(make_scene(embeds=False), tmp_path / "s")
    scene = load_scene(folder)
    save_file({"K": scene.K, "c2w": scene.c2w[:2].contiguous()}, str(folder / TENSOR_FILE))
    sidecar = json.loads((folder / SIDECAR_FILE).read_text())
    sidecar["files"][TENSOR_FILE], sidecar["tensors"]["c2w"]["shape"] = file_content_hash(folder / TENSOR_FILE), [2, 4, 4]
    (folder / SIDECAR_FILE).write_text(json.dumps(sidecar))
    with pytest.raises(SceneError, match="c2w has shape \\[2, 4, 4\\], expected \\[3, 4, 4\\]"):
        load_scene(folder)


@pytest.mark.parametrize("sidecar_text, message", [
    (None, "not a scene folder"), ("{not json", "unreadable sidecar"),
    (json.dumps({"format": "roam-scene", "version": 99}), "version 99"),
    (json.dumps({"format": "other"}), "not a roam-scene sidecar"),
])
def test_bad_sidecars_are_scene_errors(tmp_path, sidecar_text, message):
    folder = save_scene(make_scene(), tmp_path / "s")
    (folder / SIDECAR_FILE).unlink()
    if sidecar_text is not None:
        (folder / SIDECAR_FILE).write_text(sidecar_text)
    with pytest.raises(SceneError, match=message):
        load_scene(folder)


def test_failed_save_keeps_the_old_scene_and_leaves_no_temp_files(tmp_path, monkeypatch):
    folder = save_scene(make_scene(seed=1), tmp_path / "s")
    import scenes.scene as scene_module

    def broken_write(frames, path, fps, storage):
        path.write_bytes(b"half")
        raise OSError("disk full")
    monkeypatch.setattr(scene_module, "_write_frames", broken_write)
    with pytest.raises(OSError, match="disk full"):
        save_scene(make_scene(seed=2), folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted([*FILES, PROMPT_FILE, SIDECAR_FILE])
    assert_same(load_scene(folder), make_scene(seed=1))


def test_a_prompt_embedding_is_added_later_without_touching_the_scene_files(tmp_path):
    folder = save_scene(make_scene(embeds=False), tmp_path / "s")
    stamps = {name: (folder / name).stat().st_mtime_ns for name in FILES}
    sidecar = (folder / SIDECAR_FILE).read_text()                    # its time marks use; its text is the scene
    scene = load_scene(folder)
    assert scene.prompt_embeds is None and scene.prompt_encoder == ""
    scene.prompt_embeds, scene.prompt_encoder = torch.ones(1, 5, 4096, dtype=torch.bfloat16), "enc-b"
    save_prompt_embeds(scene, folder)
    assert {name: (folder / name).stat().st_mtime_ns for name in stamps} == stamps
    assert (folder / SIDECAR_FILE).read_text() == sidecar
    again = load_scene(folder)
    assert torch.equal(again.prompt_embeds, scene.prompt_embeds) and again.prompt_encoder == "enc-b"
    save_scene(make_scene(embeds=False), folder)                     # a scene without one removes the old one
    assert not (folder / PROMPT_FILE).exists()


def test_a_prompt_embedding_of_another_caption_or_a_broken_one_is_ignored_not_the_scene(tmp_path, caplog):
    folder = save_scene(make_scene(), tmp_path / "s")
    other = make_scene(embeds=False)
    other.caption = "another caption"
    save_scene(other, tmp_path / "t")
    (tmp_path / "t" / PROMPT_FILE).write_bytes((folder / PROMPT_FILE).read_bytes())
    loaded = load_scene(tmp_path / "t")
    assert loaded.prompt_embeds is None and loaded.caption == "another caption"
    (folder / PROMPT_FILE).write_bytes(b"\x00" * 40)
    loaded = load_scene(folder)
    assert loaded.prompt_embeds is None and loaded.num_frames == 3
    assert "made for another caption" in caplog.text and "unreadable prompt embedding" in caplog.text


def test_cache_key_depends_on_input_and_settings():
    key = scene_cache_key("sha256:abc", {"depth": "da3", "width": 832})
    assert key == scene_cache_key("sha256:abc", {"width": 832, "depth": "da3"})          # order-free
    assert key != scene_cache_key("sha256:abd", {"depth": "da3", "width": 832})
    assert key != scene_cache_key("sha256:abc", {"depth": "estimate", "width": 832})
    assert len(key) == 24 and key.isalnum()
    with pytest.raises(SceneError, match="JSON"):
        scene_cache_key("sha256:abc", {"x": object()})


def test_cache_builds_once_then_loads(tmp_path):
    cache, calls = SceneCache(tmp_path / "cache"), []                                    # compact

    def builder():
        calls.append(1)
        return make_scene()
    key = scene_cache_key("sha256:abc", {"w": 10})
    first = cache.get_or_build(key, builder)
    second = cache.get_or_build(key, builder)
    assert len(calls) == 1 and cache.get(key) is not None and cache.get("missing") is None
    assert_same(first, second)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [key]                      # no staging left


@pytest.mark.parametrize("damage", ["truncate", "sidecar", "delete_tensors"])
def test_cache_rebuilds_a_stale_or_corrupt_entry(tmp_path, damage):
    cache = SceneCache(tmp_path, "exact")
    key = scene_cache_key("sha256:abc", {})
    cache.get_or_build(key, lambda: make_scene(seed=1))
    folder = cache.path(key)
    if damage == "truncate":
        (folder / TENSOR_FILE).write_bytes((folder / TENSOR_FILE).read_bytes()[:100])
    elif damage == "sidecar":
        (folder / SIDECAR_FILE).write_text("{")
    else:
        (folder / TENSOR_FILE).unlink()
    with pytest.raises(SceneError):
        cache.get(key)
    rebuilt = cache.get_or_build(key, lambda: make_scene(seed=2))
    assert_same(rebuilt, make_scene(seed=2))
    assert_same(load_scene(folder), make_scene(seed=2))


def test_builder_error_leaves_no_entry(tmp_path):
    cache = SceneCache(tmp_path)

    def builder():
        raise RuntimeError("depth model crashed")
    with pytest.raises(RuntimeError):
        cache.get_or_build("k1", builder)
    assert list(tmp_path.iterdir()) == []
