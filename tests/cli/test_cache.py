"""Caches live in the user's cache folder, whatever the current folder: `build` there (with its fused
world), `play --headless` from elsewhere finds both (real subprocesses), each saying once that the
guessed depth makes parallax wrong; `main.py cache` lists and cleans them; real videos written here."""
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import main
from tests.makers import write_test_video

REPO = Path(__file__).resolve().parents[2]
SMALL = ["--set", "scenes.width=48", "--set", "scenes.height=32"]


def roam(args: list[str], cwd: Path, cache_home: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ROAM_CACHE_DIR"}
    env.update(XDG_CACHE_HOME=str(cache_home), SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy")
    return subprocess.run([sys.executable, str(REPO / "main.py"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def clip(path: Path, n: int = 10, seed: int = 0) -> Path:
    """A panning random texture."""
    texture = np.random.default_rng(seed).integers(0, 255, (36, 64 + 2 * n, 3), dtype=np.uint8)
    return write_test_video(path, np.stack([texture[:, 2 * i:2 * i + 64] for i in range(n)]))


def test_build_then_play_from_another_folder_share_the_scene_and_its_fused_world(tmp_path):
    home, here, there = tmp_path / "xdg", tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    video = clip(tmp_path / "clip.mp4")
    built = roam(["build", str(video), *SMALL], here, home)                           # play's settings: auto, no prompt
    assert built.returncode == 0, built.stderr[-2000:]
    folder = Path(built.stdout.strip().splitlines()[-1])
    assert folder.parent == home / "roam" / "scenes" and "fusing the scene" in built.stderr
    assert len(list(folder.glob("world-*.safetensors"))) == 1, "the fused world is stored with the Scene"
    assert built.stderr.count("parallax will be wrong") == 1 and "download --only depth" in built.stderr
    played = roam(["play", str(video), "--headless", "--seconds", "0.5", "--out", str(there / "out"), *SMALL,
                   "--set", "runtime.refiner=geometry"], there, home)
    assert played.returncode == 0, played.stderr[-2000:]
    assert f"loaded from {folder}" in played.stderr and "fusing the scene" not in played.stderr
    assert played.stderr.count("parallax will be wrong") == 1                       # once, from play
    assert not (here / ".cache").exists() and not (there / ".cache").exists()


def test_cache_lists_and_cleans_by_age_video_key_and_all(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("ROAM_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    scenes = tmp_path / "xdg" / "roam" / "scenes"
    videos = [clip(tmp_path / f"clip{i}.mp4", n=4, seed=i) for i in range(3)]
    folders = []
    for video in videos:
        assert main.main(["build", str(video), "--depth", "estimate", "--prompt", "", *SMALL]) == 0
        folders.append(Path(capsys.readouterr().out.strip().splitlines()[-1]))
    (scenes.parent / "compile").mkdir()
    (scenes.parent / "compile" / "kernel.bin").write_bytes(b"x" * 1000)
    assert main.main(["cache"]) == 0
    listed = capsys.readouterr().out
    assert all(f.name[:12] in listed and str(v) in listed for f, v in zip(folders, videos))
    assert "4 frames 48x32" in listed and f"compiled kernels: {scenes.parent / 'compile'}  1.0 KB" in listed

    old = time.time() - 3 * 86400
    os.utime(folders[0] / "scene.json", (old, old))                                  # unused for three days
    assert main.main(["cache", "clean", "--older-than", "2"]) == 0
    assert "removed 1 scene" in capsys.readouterr().out and not folders[0].exists() and folders[1].exists()
    assert main.main(["cache", "clean", str(videos[1])]) == 0                         # by the video's content
    assert "removed 1 scene" in capsys.readouterr().out and not folders[1].exists()
    assert main.main(["cache", "clean", "nonsense"]) == 2
    assert "not a video file or a scene key" in capsys.readouterr().err
    assert main.main(["cache", "clean", folders[2].name[:8]]) == 0                    # by a key prefix
    assert not folders[2].exists()
    assert main.main(["cache", "clean", "all"]) == 0
    assert not (scenes.parent / "compile").exists()
    monkeypatch.setenv("ROAM_CACHE_DIR", str(tmp_path / "moved"))
    assert main.main(["build", str(videos[0]), "--depth", "estimate", "--prompt", "", *SMALL]) == 0
    assert Path(capsys.readouterr().out.strip().splitlines()[-1]).parent == tmp_path / "moved" / "scenes"
