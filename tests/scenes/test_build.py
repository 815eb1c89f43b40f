"""`main.py build` on real videos written here with PyAV: end to end (API and CLI subprocess), the cache
key, chunked depth for long videos, and the bad-input list (one-line errors, nothing written)."""
import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from tests.makers import FakeDA3, write_audio_only_mp4, write_test_video
from scenes.build import build_scene, build_scene_at
from runtime.config import load_config
from scenes.depth import DepthError
from scenes.errors import SceneInputError
from scenes.scene import load_scene
from scenes.video import VideoError

REPO = Path(__file__).resolve().parents[2]
W, H = 48, 32


def make_cfg(tmp_path, *overrides):
    return load_config(None, [f"scenes.width={W}", f"scenes.height={H}", f"scenes.cache_dir={tmp_path / 'cache'}",
                              f"model.checkpoint_dir={tmp_path / 'ckpt'}", "runtime.device=cpu", *overrides])


def frames_of(n=12, h=36, w=64, seed=0) -> np.ndarray:
    """Moving gradients plus a bright block. uint8 [n, h, w, 3]"""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    out = [np.stack([128 + 100 * np.sin((x + 3 * i + seed) / 9), 128 + 100 * np.cos((y - 2 * i) / 7),
                     np.full_like(x, 40.0 + 10 * i)], -1) for i in range(n)]
    return np.clip(np.stack(out), 0, 255).astype(np.uint8)


def nothing_written(tmp_path) -> bool:
    cache = tmp_path / "cache"
    return not cache.exists() or not any(cache.iterdir())


# ---------------------------------------------------------------- end to end

def test_build_writes_a_scene_and_reuses_it(tmp_path, capsys):
    video = write_test_video(tmp_path / "clip.mp4", frames_of())
    cfg = make_cfg(tmp_path)
    scene, folder = build_scene_at(cfg, video, device="cpu", depth="estimate", prompt="a test clip", progress=False)
    assert scene.frames.shape == (12, H, W, 3) and scene.depth.shape == (12, H, W) and scene.fps == 24.0
    assert scene.caption == "a test clip" and scene.meta["depth_provider"] == "estimate"
    on_disk = load_scene(folder)
    assert torch.equal(on_disk.frames, scene.frames) and torch.equal(on_disk.depth, scene.depth)
    assert "written to" in capsys.readouterr().err
    again, folder2 = build_scene_at(cfg, video, device="cpu", depth="estimate", prompt="a test clip", progress=False)
    assert folder2 == folder and "loaded from" in capsys.readouterr().err
    assert build_scene_at(cfg, video, device="cpu", depth="estimate", prompt="other", progress=False)[1] != folder
    write_test_video(video, frames_of(seed=5))                                             # new bytes: a stale key
    assert build_scene_at(cfg, video, device="cpu", depth="estimate", prompt="a test clip", progress=False)[1] != folder


def test_auto_uses_the_npz_beside_the_video_and_its_bytes_key_the_cache(tmp_path, capsys):
    video = write_test_video(tmp_path / "clip.mp4", frames_of(n=6))
    depth = np.linspace(1, 5, 6 * 36 * 64, dtype=np.float32).reshape(6, 36, 64)
    np.savez(tmp_path / "clip.npz", depth=depth)
    cfg = make_cfg(tmp_path)
    scene, folder = build_scene_at(cfg, video, device="cpu", prompt="", progress=False)
    assert scene.meta["depth_provider"] == "file" and "clip.npz" in capsys.readouterr().err
    np.testing.assert_allclose(scene.depth[0, 0, 0].item(), depth[0, 0, 5])        # crop: columns 5..58 of 64
    np.savez(tmp_path / "clip.npz", depth=depth * 2)
    scene2, folder2 = build_scene_at(cfg, video, device="cpu", prompt="", progress=False)
    assert folder2 != folder and torch.allclose(scene2.depth, scene.depth * 2)


def test_no_prompt_and_no_florence_gives_an_empty_caption_with_a_notice(tmp_path, capsys):
    video = write_test_video(tmp_path / "clip.mp4", frames_of(n=3))
    scene = build_scene(make_cfg(tmp_path), video, device="cpu", depth="estimate", progress=False)
    assert scene.caption == "" and scene.meta["caption_source"] == "none"
    assert "Florence-2" in capsys.readouterr().err




def test_long_videos_run_depth_in_chunks_and_keep_every_frame(tmp_path, monkeypatch, capsys):
    model = FakeDA3()
    monkeypatch.setattr("scenes.depth.choose.da3_missing", lambda model_dir: None)
    monkeypatch.setattr("scenes.depth.choose.load_da3", lambda model_dir, device: model)
    monkeypatch.setattr("scenes.build.REFERENCE_MAX_FRAMES", 8)
    video = write_test_video(tmp_path / "long.mp4", frames_of(n=10))
    scene = build_scene(make_cfg(tmp_path, "scenes.depth.chunk_frames=4"), video, device="cpu", depth="da3", prompt="", progress=False)
    assert scene.num_frames == 10 and [b[0] for b in model.batches] == [4, 4, 4]
    err = capsys.readouterr().err
    assert "10 frames, more than the reference's 8; all are kept" in err and "3 chunks" in err


def test_cli_build_prints_the_scene_folder_and_fails_in_one_line(tmp_path, capsys):
    video = write_test_video(tmp_path / "clip.mp4", frames_of(n=4))
    sets = ["--set", f"scenes.width={W}", "--set", f"scenes.height={H}", "--set", f"scenes.cache_dir={tmp_path / 'c'}",
            "--set", f"model.checkpoint_dir={tmp_path / 'ckpt'}"]
    ok = subprocess.run([sys.executable, "main.py", "build", str(video), "--depth", "estimate", "--prompt", "hi", *sets],
                        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    folder = Path(ok.stdout.strip().splitlines()[-1])
    assert load_scene(folder).caption == "hi"
    np.save(tmp_path / "bad.npy", np.full((4, 36, 64), np.nan, np.float32))
    import main                                                                      # the same CLI, in process
    assert main.main(["build", str(video), "--depth", "file", "--depth-file", str(tmp_path / "bad.npy"), *sets]) == 2
    lines = [l for l in capsys.readouterr().err.splitlines() if l.startswith("roam: error:")]
    assert len(lines) == 1 and "bad.npy" in lines[0] and "NaN/inf" in lines[0]
    assert main.main(["build", str(tmp_path / "missing.mp4"), *sets]) == 2
    assert "missing.mp4: no such file" in capsys.readouterr().err


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("case, message", [
    ("missing", "no such file"), ("text", "not a video"), ("zero", "no video frames|zero decodable"),
    ("audio", "audio only"), ("folder", "not a file"),
])
def test_unreadable_videos_fail_in_one_line_and_write_nothing(tmp_path, case, message):
    path = tmp_path / "in.mp4"
    if case == "text":
        path.write_text("hello, not a video\n")
    elif case == "zero":
        write_test_video(path, np.zeros((0, 36, 64, 3), np.uint8))
    elif case == "audio":
        write_audio_only_mp4(path)
    elif case == "folder":
        path.mkdir()
    with pytest.raises(VideoError, match=message) as err:
        build_scene(make_cfg(tmp_path), path, device="cpu", depth="estimate", prompt="", progress=False)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    assert nothing_written(tmp_path)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d[:-1], "holds 5 depth maps but the video decodes to 6"),
    (lambda d: d[:, :10], "different shape than the video"),
    (lambda d: np.where(d > 3, np.nan, d), "NaN/inf"),
    (lambda d: np.where(d > 3, np.inf, d), "NaN/inf"),
    (lambda d: -d, "<= 0"),
])
def test_bad_depth_files_fail_in_one_line_and_write_nothing(tmp_path, mutate, message):
    video = write_test_video(tmp_path / "clip.mp4", frames_of(n=6))
    depth = np.linspace(1, 5, 6 * 36 * 64, dtype=np.float32).reshape(6, 36, 64)
    np.savez(tmp_path / "d.npz", depth=mutate(depth))
    with pytest.raises(DepthError, match=message) as err:
        build_scene(make_cfg(tmp_path), video, device="cpu", depth="file", depth_file=tmp_path / "d.npz", prompt="", progress=False)
    assert "\n" not in str(err.value) and "d.npz" in str(err.value)
    assert nothing_written(tmp_path)


def test_corrupt_middle_keeps_the_good_frames_and_names_the_frame(tmp_path, capsys):
    def corrupt(packet):
        if packet.pts in (6, 7):
            junk = np.random.default_rng(int(packet.pts)).integers(0, 256, packet.size, dtype=np.uint8)
            bad = av.Packet(bytes(junk))
            bad.pts, bad.dts, bad.time_base, bad.stream = packet.pts, packet.dts, packet.time_base, packet.stream
            return bad
        return packet
    video = write_test_video(tmp_path / "mid.mp4", frames_of(n=16), mutate=corrupt)
    scene = build_scene(make_cfg(tmp_path), video, device="cpu", depth="estimate", prompt="", progress=False)
    assert 8 <= scene.num_frames < 16
    warning = [l for l in capsys.readouterr().err.splitlines() if l.startswith("roam: warning:")]
    assert warning and "frame" in warning[0] and "mid.mp4" in warning[0]


def test_odd_sizes_large_frames_and_variable_frame_rate(tmp_path):
    cfg = make_cfg(tmp_path)
    odd = write_test_video(tmp_path / "odd.mp4", np.random.default_rng(0).integers(0, 256, (4, 9, 17, 3), np.uint8),
                           pix_fmt="yuv444p")
    scene = build_scene(cfg, odd, device="cpu", depth="estimate", prompt="", progress=False)
    assert scene.frames.shape == (4, H, W, 3) and scene.meta["source_size"] == [17, 9]
    big = write_test_video(tmp_path / "big.mp4", np.repeat(frames_of(n=2, h=54, w=96), 40, axis=1).repeat(40, axis=2))
    scene = build_scene(cfg, big, device="cpu", depth="estimate", prompt="", progress=False)
    assert scene.frames.shape == (2, H, W, 3) and scene.meta["source_size"] == [3840, 2160]
    vfr = write_test_video(tmp_path / "vfr.mp4", frames_of(n=8), pts=[0, 40, 50, 120, 130, 200, 290, 300])
    scene = build_scene(cfg, vfr, device="cpu", depth="estimate", prompt="", progress=False)
    assert scene.num_frames == 8 and 0 < scene.fps < 1000


def test_a_video_too_long_for_memory_fails_before_decoding(tmp_path, monkeypatch):
    video = write_test_video(tmp_path / "clip.mp4", frames_of(n=6))
    monkeypatch.setattr("scenes.memory.available_memory_bytes", lambda: 6 * W * H * 10)
    with pytest.raises(SceneInputError, match=r"6 frames at 48x32 need about .* GiB, .* free; cut the video"):
        build_scene(make_cfg(tmp_path), video, device="cpu", depth="estimate", prompt="", progress=False)
    assert nothing_written(tmp_path)


def test_a_broken_florence_download_gives_a_notice_and_an_empty_caption(tmp_path, capsys):
    (tmp_path / "ckpt" / "Florence-2-large").mkdir(parents=True)
    (tmp_path / "ckpt" / "Florence-2-large" / "config.json").write_text("{}")
    video = write_test_video(tmp_path / "clip.mp4", frames_of(n=3))
    scene = build_scene(make_cfg(tmp_path), video, device="cpu", depth="estimate", progress=False)
    assert scene.caption == "" and "cannot load Florence-2" in capsys.readouterr().err


def test_the_cache_key_covers_the_prompt_and_the_florence_weights(tmp_path):
    from scenes.build import caption_settings
    cfg = make_cfg(tmp_path)
    assert caption_settings(cfg, "a cat", None) != caption_settings(cfg, "a dog", None)
    assert caption_settings(cfg, None, "no Florence-2") == {"florence": False}
    folder = tmp_path / "ckpt" / "Florence-2-large"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"a" * 4096)
    first = caption_settings(cfg, None, None)
    (folder / "model.safetensors").write_bytes(b"b" * 4096)                        # other weights, same size
    assert caption_settings(cfg, None, None) != first and first != {"florence": False}


def test_microsofts_original_florence_layout_names_the_download_that_replaces_it(tmp_path):
    from scenes.captions import CaptionError, load_florence
    folder = tmp_path / "Florence-2-large"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"auto_map": {"AutoModelForCausalLM": "modeling_florence2.X"}}))
    with pytest.raises(CaptionError, match=r"microsoft's original Florence-2.*python main.py download --only captions"):
        load_florence(folder)


# ---------------------------------------------------------------- the picture's shape (scenes.fit)

def thirds_video(path, n=3, h=32, w=96):
    """A wide clip (3:1) whose left, middle and right thirds are red, green and blue."""
    frame = np.zeros((h, w, 3), np.uint8)
    frame[:, :w // 3, 0] = frame[:, w // 3:2 * w // 3, 1] = frame[:, 2 * w // 3:, 2] = 220
    return write_test_video(path, np.repeat(frame[None], n, 0))


def test_build_crops_a_wide_video_by_default_and_says_so(tmp_path):
    video = thirds_video(tmp_path / "wide.mp4")
    sets = ["--set", f"scenes.width={W}", "--set", f"scenes.height={H}", "--set", f"scenes.cache_dir={tmp_path / 'c'}",
            "--set", f"model.checkpoint_dir={tmp_path / 'ckpt'}"]
    run = subprocess.run([sys.executable, "main.py", "build", str(video), "--depth", "estimate", "--prompt", "", *sets],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "roam: fit: 96x32 cropped to 48x32 (50% of the width cut; scenes.fit=pad keeps all)" in run.stderr
    scene = load_scene(Path(run.stdout.strip().splitlines()[-1]))
    middle = scene.frames[:, :, 10:-10].to(torch.int32)                 # source columns 34..62: the green third
    assert middle[..., 1].min() > 180 and middle[..., 0].max() < 40 and middle[..., 2].max() < 40
    K = scene.K[0]
    assert torch.isclose(K[0, 0], K[1, 1]), "a crop keeps square pixels"


@pytest.mark.parametrize("fit", ["pad", "stretch"])
def test_pad_keeps_the_whole_picture_in_bars_and_stretch_squashes_it(tmp_path, capsys, fit):
    video = thirds_video(tmp_path / "wide.mp4")
    scene = build_scene(make_cfg(tmp_path, f"scenes.fit={fit}"), video, depth="estimate", prompt="", progress=False,
                        device="cpu")
    colours = scene.frames[0, H // 2].to(torch.int32)                                  # [W, 3] the middle row
    for c, x in enumerate((W // 6, W // 2, 5 * W // 6)):                               # red, green, blue thirds
        assert colours[x, c] > 180, (fit, x, colours[x].tolist())
    bars = scene.frames[0, :4].to(torch.int32)
    if fit == "pad":                                                                    # 96x32 -> 48x16, rows 8..23
        assert bars.max() < 20 and scene.frames[0, -4:].max() < 20
        assert torch.isclose(scene.K[0, 0, 0], scene.K[0, 1, 1]) and scene.depth[0, 0, 5] == scene.depth[0, 8, 5]
        assert "padded to 48x32 (black bars" in capsys.readouterr().err
    else:
        assert bars.max() > 180 and "stretched to 48x32 (its shape changed 50%" in capsys.readouterr().err
