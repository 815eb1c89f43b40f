"""Scene format and cache: round trip, validation, corruption, atomic saves and stale-entry rebuilds."""
import json

import pytest
import torch
from safetensors.torch import save_file

from scenes.scene import (PROMPT_FILE, SIDECAR_FILE, TENSOR_FILE, Scene, SceneCache, SceneError, file_content_hash,
                          load_scene, save_prompt_embeds, save_scene, scene_cache_key)


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
    assert files == sorted([SIDECAR_FILE, TENSOR_FILE, *([PROMPT_FILE] if embeds else [])])
    loaded = Scene.load(tmp_path / "s")
    assert_same(scene, loaded)
    sidecar = json.loads((tmp_path / "s" / SIDECAR_FILE).read_text())
    assert sidecar["version"] == 1 and sidecar["tensors"]["frames"] == {"shape": [3, 6, 10, 3], "dtype": "uint8"}
    assert sidecar["content_hash"] == file_content_hash(tmp_path / "s" / TENSOR_FILE)
    assert (loaded.num_frames, loaded.height, loaded.width) == (3, 6, 10)


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
    with pytest.raises(SceneError, match="not a readable safetensors"):
        load_scene(folder, verify_hash=False)


def test_wrong_shape_in_sidecar_is_a_scene_error(tmp_path):
    folder = save_scene(make_scene(), tmp_path / "s")
    sidecar = json.loads((folder / SIDECAR_FILE).read_text())
    sidecar["tensors"]["depth"]["shape"] = [3, 6, 11]
    (folder / SIDECAR_FILE).write_text(json.dumps(sidecar))
    with pytest.raises(SceneError, match="depth is float32 \\[3, 6, 10\\] in the file but the sidecar says"):
        load_scene(folder)


def test_nan_depth_on_disk_is_a_scene_error(tmp_path):
    """A file written by something else, with a valid hash, still gets its values checked."""
    folder = save_scene(make_scene(embeds=False), tmp_path / "s")
    scene = load_scene(folder)
    scene.depth[1, 2, 3] = float("nan")
    save_file(scene.tensors(), str(folder / TENSOR_FILE))
    sidecar = json.loads((folder / SIDECAR_FILE).read_text())
    sidecar["content_hash"] = file_content_hash(folder / TENSOR_FILE)
    (folder / SIDECAR_FILE).write_text(json.dumps(sidecar))
    with pytest.raises(SceneError, match="depth holds 1 non-finite"):
        load_scene(folder)


def test_n_mismatch_between_tensors_is_a_scene_error(tmp_path):
    folder = save_scene(make_scene(embeds=False), tmp_path / "s")
    tensors = load_scene(folder).tensors()
    tensors["c2w"] = tensors["c2w"][:2].contiguous()
    save_file(tensors, str(folder / TENSOR_FILE))
    sidecar = json.loads((folder / SIDECAR_FILE).read_text())
    sidecar["content_hash"], sidecar["tensors"]["c2w"]["shape"] = file_content_hash(folder / TENSOR_FILE), [2, 4, 4]
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

    def broken_save(tensors, path, metadata=None):
        with open(path, "wb") as f:
            f.write(b"half")
        raise OSError("disk full")
    monkeypatch.setattr(scene_module, "save_file", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_scene(make_scene(seed=2), folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted([PROMPT_FILE, SIDECAR_FILE, TENSOR_FILE])
    assert_same(load_scene(folder), make_scene(seed=1))


def test_a_prompt_embedding_is_added_later_without_touching_the_scene_files(tmp_path):
    folder = save_scene(make_scene(embeds=False), tmp_path / "s")
    stamps = {name: (folder / name).stat().st_mtime_ns for name in (TENSOR_FILE, SIDECAR_FILE)}
    scene = load_scene(folder)
    assert scene.prompt_embeds is None and scene.prompt_encoder == ""
    scene.prompt_embeds, scene.prompt_encoder = torch.ones(1, 5, 4096, dtype=torch.bfloat16), "enc-b"
    save_prompt_embeds(scene, folder)
    assert {name: (folder / name).stat().st_mtime_ns for name in stamps} == stamps
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
    cache, calls = SceneCache(tmp_path / "cache"), []

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
    cache = SceneCache(tmp_path)
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
