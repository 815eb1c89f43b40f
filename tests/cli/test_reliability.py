"""The commands under faults, as a user or a service manager causes them: stop signals in every mode
of `play` (headless with each gamepad backend, a window; the kiosk's in
tests/benchmarks/test_reliability.py) and in `render`, bad numbers,
bad config files, unusable output folders and broken recordings. Every case runs the real command
in a subprocess (on the tiny sample scene of tests/conftest.py) and checks what it leaves behind."""
import json
import os
import signal
import subprocess
import sys

import pytest

from tests.reliability import (cache_flags, decoded_frames, leftovers, one_line_error, read_only, recorded_play, roam,
                               run_roam, stop, tmpfs, video_rate, wait_for_lines, wait_for_text, xvfb)


def check_finished(out, frames_at_least: int) -> None:
    """A session stopped cleanly: every file finished, the videos hold every recorded frame."""
    rows = json.loads((out / "recording" / "poses.json").read_text())["frames"]
    assert len(rows) >= frames_at_least
    assert decoded_frames(out / "recording" / "video.mp4") == len(rows)
    assert decoded_frames(out / "video.mp4") >= len(rows)
    summary = json.loads((out / "telemetry.json").read_text())["summary"]
    assert (summary.get("display") or {}).get("frames", summary["frames_presented"]) >= len(rows)   # drawn frames
    assert (out / "contact_sheet.png").is_file()
    assert not leftovers(out)


@pytest.mark.parametrize("signum, backend", [(signal.SIGTERM, "pygame"), (signal.SIGHUP, "none"),
                                             (signal.SIGTERM, "inputs")])
def test_a_stop_signal_ends_a_headless_session_like_ctrl_c(tmp_path, cache, signum, backend):
    """SDL's handler (pygame backend) or none at all (the others): the session ends at its next step,
    finishes its files and exits with 128 + the signal's number."""
    out = tmp_path / "out"
    proc = recorded_play(out, cache, "--set", f"controllers.gamepad.backend={backend}")
    wait_for_lines(out / "recording" / "poses.jsonl", 12, proc)
    _, stderr = stop(proc, signum)
    assert proc.returncode == 128 + signum, stderr[-3000:]
    assert "Traceback" not in stderr
    check_finished(out, 12)


def test_a_second_stop_signal_ends_at_once_and_the_videos_still_play(tmp_path, cache):
    out = tmp_path / "out"
    proc = recorded_play(out, cache)
    presented = wait_for_lines(out / "recording" / "poses.jsonl", round(2 * video_rate()), proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = stop(proc, signal.SIGTERM)
    assert proc.returncode == 143, stderr[-3000:]
    assert decoded_frames(out / "recording" / "video.mp4") >= presented - 1.5 * video_rate()   # as after SIGKILL


def test_a_stop_signal_ends_a_window_session(tmp_path, cache):
    """In a real window (Xvfb) SDL's own handler would turn SIGTERM into a quit event and exit 0."""
    out = tmp_path / "out"
    with xvfb() as display:
        env = {k: v for k, v in os.environ.items() if k != "SDL_VIDEODRIVER"} | {"DISPLAY": display}
        proc = roam("play", "--record", "--out", out, *cache_flags(cache), env=env)
        wait_for_lines(out / "recording" / "poses.jsonl", 12, proc)
        _, stderr = stop(proc, signal.SIGTERM)
    assert proc.returncode == 143, stderr[-3000:]
    assert "window session" in stderr
    rows = json.loads((out / "recording" / "poses.json").read_text())["frames"]
    assert decoded_frames(out / "recording" / "video.mp4") == len(rows) >= 12 and not leftovers(out)


@pytest.mark.parametrize("args, expected", [
    (["--seconds", "nan"], "--seconds: nan is out of range"),
    (["--seconds", "-5"], "--seconds: -5 is out of range"),
    (["--set", "runtime.loop.tick_hz=0"], "--set runtime.loop.tick_hz=0 is out of range: expected 1 to 1000"),
    (["--set", "scenes.width=100000"], "scenes.width=100000 is out of range"),
    (["--set", "scenes.sample.frames=10000", "--set", "scenes.width=8192", "--set", "scenes.height=8192"],
     "the sample scene's 10000 frames at 8192x8192 need about"),
    (["--script", "no/such/run"], "--script no/such/run: no such file or folder"),
    (["--set", "runtime.video_preset=quick"], "video_preset: 'quick' is not one of ultrafast, superfast"),
])
def test_bad_numbers_and_paths_fail_at_once_with_one_line(tmp_path, args, expected):
    """Before any scene is loaded or built: one line naming the value, its range or the need, and why."""
    done = run_roam("play", "--headless", "--out", tmp_path / "out", *args,
                    "--set", f"scenes.cache_dir={tmp_path / 'cache'}", timeout=120)
    one_line_error(done, expected)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


@pytest.mark.parametrize("content", [b"\x00\x9f\x92\x96 not text \xff" * 40, b"runtime:\n  loop: {tick_hz: 60\n"])
def test_a_binary_or_malformed_config_is_one_line(tmp_path, content):
    (tmp_path / "bad.yaml").write_bytes(content)
    one_line_error(run_roam("--config", tmp_path / "bad.yaml", "doctor", timeout=120), str(tmp_path / "bad.yaml"))


def corrupt_poses(run):
    (run / "poses.json").write_text('{"fps": 24, "frames": [{"c2w": "oops"}]}')


@pytest.mark.parametrize("damage, expected", [
    (lambda run: None, "not a recorded run"),                                  # an empty folder
    (lambda run: (run / "poses.json").write_bytes(b"\x00garbage{"), "not a recorded run's poses"),
    (corrupt_poses, "not a recorded run's log"),
    (lambda run: (run / "blocks.jsonl").write_text('{"block": 0, "restart": true, "c2w": [[1]], '
                                                   '"source_indices": [0]}\n'), "not finite 4x4 matrices"),
])
def test_a_missing_empty_or_corrupt_recording_is_one_line(tmp_path, cache, damage, expected):
    run = tmp_path / "run"
    run.mkdir()
    damage(run)
    done = run_roam("play", "--headless", "--script", run, "--out", tmp_path / "out", *cache_flags(cache))
    one_line_error(done, expected)


def test_unusable_output_folders_are_one_line_and_leave_nothing(tmp_path):
    (tmp_path / "file").write_text("in the way")
    for out, problem in ((tmp_path / "file", "File exists"), (tmp_path / "file" / "sub", "Not a directory"),
                         (tmp_path / ("x" * 300), "File name too long")):
        done = run_roam("play", "--headless", "--out", out, "--set", f"scenes.cache_dir={tmp_path / 'cache'}",
                        timeout=120)
        one_line_error(done, str(out), problem)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_read_only_output_folder_is_one_line(tmp_path):
    with tmpfs(tmp_path / "disk") as disk:
        read_only(disk)
        done = run_roam("play", "--headless", "--out", disk / "out", "--set", f"scenes.cache_dir={tmp_path}",
                        timeout=120)
    one_line_error(done, str(disk / "out"), "Read-only file system")


# ---- render ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    from tests.cli.test_render import make_video
    folder = tmp_path_factory.mktemp("videos")
    make_video(folder, "clip")
    return folder


def render(videos, out, traj, *flags):
    from tests.cli.test_render import CIRCLE, H, W
    return roam("render", "--input_dir", videos, "--traj_txt_path", traj or CIRCLE, "--output_folder", out,
                "--prompt", "a clip", "--refiner", "geometry", "--set", f"scenes.width={W}", "--set",
                f"scenes.height={H}", "--set", f"scenes.cache_dir={out.parent / 'cache'}", *flags)


def test_a_stop_signal_mid_render_leaves_no_output_and_cleans_a_killed_runs_files(tmp_path, videos):
    """SIGTERM while the frames are rendered: exit 143, no video, record or temporary file of the
    interrupted video is left; the half-written videos of an earlier killed run are removed first."""
    out = tmp_path / "out"
    version = out / "checkpoints" / "InSpatio-World-1.3B" / "version_0"
    version.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = version / f".0-pred_video_rank0.mp4.{dead.pid}.0badc0de.tmp"
    stale.write_bytes(b"half a video")
    proc = render(videos, out, None, "--freeze_repeat", "3000", "--disable_adaptive_frame")
    wait_for_text(proc, "render clip")
    _, stderr = stop(proc, signal.SIGTERM)
    assert proc.returncode == 143, stderr[-3000:]
    assert not stale.exists() and not leftovers(out)
    assert not list(version.glob("*.mp4")) and not list(version.glob("*run_rank0.json"))


def test_a_trajectory_that_needs_more_memory_than_there_is_fails_that_video_in_one_line(tmp_path, videos):
    """20000 keys a turn of 7200 degrees apart: the adaptive frame count would be 180 million frames."""
    traj = tmp_path / "spin.txt"
    traj.write_text(" ".join(["3600", "-3600"] * 10_000) + "\n0 0\n1 1\n")
    proc = render(videos, tmp_path / "out", traj)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1 and "Traceback" not in stderr, stderr[-3000:]
    assert "clip.mp4: failed, skipped: SceneInputError: the frame program's 179991001 output frames (24 rendered " \
           "natively) need about 343.3 GiB" in stderr


def test_render_flags_out_of_range_are_one_line(tmp_path):
    done = run_roam("render", "--input_dir", tmp_path, "--traj_txt_path", "traj/zoom_out_in.txt",
                    "--freeze_repeat", "1000000000", timeout=120)
    one_line_error(done, "--freeze_repeat: 1000000000 is out of range: expected 0 to 100000")
