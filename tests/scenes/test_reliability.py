"""Building and caching scenes under faults: a stop signal mid-build, a build killed outright, a cache
folder that is read-only, full or a file, trajectories with absurd numbers. The real commands run in
subprocesses with real files, real signals and (where this process may mount one) a real tmpfs."""
import os
import signal
import subprocess
import sys

import pytest

from scenes.scene import load_scene
from tests.makers import write_test_video
from tests.reliability import (TINY, leftovers, one_line_error, read_only, roam, run_roam, stop, tmpfs,
                               wait_for_text)
from tests.scenes.test_build import frames_of

SMALL = ["--set", "scenes.width=48", "--set", "scenes.height=32"]


def build(video, cache, *args, **kw):
    return run_roam("build", video, "--depth", "estimate", "--prompt", "a clip", *SMALL,
                    "--set", f"scenes.cache_dir={cache}", *args, **kw)


def dead_pid() -> int:
    """The id of a process that has just ended (what a killed run leaves in its temporary names)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def video(tmp_path):
    return write_test_video(tmp_path / "clip.mp4", frames_of())


def test_a_stop_signal_while_the_sample_is_fused_leaves_only_whole_cache_entries(tmp_path):
    """The first start builds the sample scene, then fuses it; SIGTERM during the fusion: exit 143,
    the stored scene is whole, no fused world and no temporary file is left."""
    cache = tmp_path / "cache"
    proc = roam("play", "--headless", "--out", tmp_path / "out", *[a for o in TINY for a in ("--set", o)],
                "--set", f"scenes.cache_dir={cache}")
    wait_for_text(proc, "fusing the scene")
    _, stderr = stop(proc, signal.SIGTERM)
    assert proc.returncode == 143, stderr[-3000:]
    entries = [p for p in cache.iterdir() if p.is_dir() and p.name != "fused"]
    assert len(entries) == 1 and load_scene(entries[0]).num_frames == 24
    assert not list(cache.rglob("world-*.safetensors")) and not leftovers(tmp_path)


def test_the_next_build_removes_what_a_killed_build_left(tmp_path, video):
    """A staging folder of a killed build goes at the next build (one of a running build stays); a
    fused world whose save was killed goes when the world is built again."""
    cache = tmp_path / "cache"
    stale = cache / f".0123456789abcdef01234567.{dead_pid()}.0badc0de.tmp"       # a staging folder
    stale.mkdir(parents=True)
    (stale / "scene.safetensors").write_bytes(b"half written")
    running = cache / f".0123456789abcdef01234567.{os.getpid()}.0badc0de.tmp"   # a build still running
    running.mkdir()
    done = build(video, cache)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not stale.exists() and running.exists()
    [scene] = [p for p in cache.iterdir() if p.is_dir() and not p.name.startswith(".")]
    [world] = scene.glob("world-*.safetensors")
    world.unlink()                                                               # killed while saving it
    stale_world = scene / f".{world.name}.{dead_pid()}.0badc0de.tmp"
    stale_world.write_bytes(b"half written")
    done = build(video, cache)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not stale_world.exists() and world.is_file()


def test_a_read_only_cache_serves_its_scenes_and_refuses_new_ones_at_once(tmp_path, video):
    with tmpfs(tmp_path / "disk") as disk:
        assert build(video, disk / "cache").returncode == 0
        read_only(disk)
        again = build(video, disk / "cache")
        assert again.returncode == 0 and "loaded from" in again.stderr, again.stderr[-3000:]
        other = build(video, disk / "cache", "--prompt", "another caption")     # another key: a new build
        one_line_error(other, str(disk / "cache"), "Read-only file system")
        assert "decode" not in other.stderr                                      # refused before the work


def test_a_cache_disk_that_fills_up_leaves_no_half_written_entry(tmp_path, video):
    with tmpfs(tmp_path / "disk", size="64k") as disk:           # a scene of 12 frames at 416x240 takes more
        done = build(video, disk / "cache", "--set", "scenes.width=416", "--set", "scenes.height=240")
        one_line_error(done, "No space left on device")
        assert not leftovers(disk) and not [p for p in (disk / "cache").iterdir() if p.is_dir()]


def test_a_cache_folder_that_is_a_file_is_one_line(tmp_path, video):
    (tmp_path / "cache").write_text("in the way")
    one_line_error(build(video, tmp_path / "cache"), str(tmp_path / "cache"), "File exists")


@pytest.mark.parametrize("lines, expected", [
    ("0 1e9\n0 0\n1 1\n", "keyframe 1e+09 is out of range: expected -3600 to 3600"),
    ("0 0\n0 0\n1 1e300\n", "keyframe 1e+300 is out of range"),
])
def test_trajectory_numbers_out_of_range_are_one_line(tmp_path, lines, expected):
    traj = tmp_path / "traj.txt"
    traj.write_text(lines)
    (tmp_path / "videos").mkdir()
    done = run_roam("render", "--input_dir", tmp_path / "videos", "--traj_txt_path", traj,
                    "--output_folder", tmp_path / "out", timeout=120)
    one_line_error(done, str(traj), expected)
