"""`main.py play` under faults, as a user or a service manager causes them: stop signals in every mode,
SIGKILL in the middle of a recording, bad numbers, bad files and folders. Every case runs the real
command in a subprocess on a tiny sample scene and checks what it leaves behind."""
import json
import signal

import numpy as np
import pytest

from tests.reliability import (build_tiny_cache, cache_flags, decoded_frames, leftovers, one_line_error, read_only,
                               roam, run_roam, stop, tmpfs, wait_for_lines)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return build_tiny_cache(tmp_path_factory.mktemp("cache"))


def recorded_play(out, cache, *flags):
    """A headless session that records and would run for 10 minutes."""
    return roam("play", "--headless", "--seconds", 600, "--record", "--out", out, *cache_flags(cache), *flags)


def check_finished(out, frames_at_least: int) -> None:
    """A session stopped cleanly: every file finished, the videos hold every recorded frame."""
    rows = json.loads((out / "recording" / "poses.json").read_text())["frames"]
    assert len(rows) >= frames_at_least
    assert decoded_frames(out / "recording" / "video.mp4") == len(rows)
    assert decoded_frames(out / "video.mp4") >= len(rows)
    assert json.loads((out / "telemetry.json").read_text())["summary"]["frames_presented"] >= len(rows)
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
    presented = wait_for_lines(out / "recording" / "poses.jsonl", 36, proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = stop(proc, signal.SIGTERM)
    assert proc.returncode == 143, stderr[-3000:]
    assert decoded_frames(out / "recording" / "video.mp4") >= presented - 24


def test_a_stop_signal_ends_the_kiosk(tmp_path, cache):
    """`play --kiosk --headless --realtime` runs until it is stopped (a service manager's SIGTERM)."""
    out = tmp_path / "out"
    proc = roam("play", "--kiosk", "--headless", "--realtime", "--out", out, *cache_flags(cache))
    wait_for_video(out / "video.mp4", proc)
    _, stderr = stop(proc, signal.SIGTERM)
    assert proc.returncode == 143, stderr[-3000:]
    assert decoded_frames(out / "video.mp4") > 0 and (out / "telemetry.json").is_file()
    assert not leftovers(out)


def wait_for_video(path, proc, timeout: float = 240) -> None:
    import time
    deadline = time.monotonic() + timeout
    while decoded_frames(path) == 0:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-3000:]
        time.sleep(0.5)


def test_sigkill_mid_recording_leaves_playable_videos_and_a_replayable_run(tmp_path, cache):
    """Killed outright: both videos play up to about a second before the kill, no temporary file is
    left, and `play --script` replays the recorded run from what survived, frame for frame."""
    out = tmp_path / "out"
    proc = recorded_play(out, cache)
    presented = wait_for_lines(out / "recording" / "poses.jsonl", 72, proc)
    stop(proc, signal.SIGKILL)
    assert not leftovers(out)
    kept = decoded_frames(out / "recording" / "video.mp4")
    assert presented - 24 <= kept <= presented + 1, (presented, kept)
    assert decoded_frames(out / "video.mp4") >= presented - 24
    recorded = [json.loads(line) for line in (out / "recording" / "poses.jsonl").read_text().splitlines()
                if line.endswith("}")]

    replay = tmp_path / "replay"
    proc = roam("play", "--headless", "--script", out / "recording", "--out", replay, "--record",
                *cache_flags(cache))
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    replayed = json.loads((replay / "recording" / "poses.json").read_text())["frames"]
    assert len(replayed) >= len(recorded)
    for a, b in zip(recorded, replayed):
        assert a["source_index"] == b["source_index"] and np.allclose(a["c2w"], b["c2w"], atol=1e-9)


def test_play_script_of_a_recording_plays_the_whole_recording(tmp_path, cache):
    """A headless replay is as long as the recorded run (not headless_seconds' 4 s)."""
    first = tmp_path / "first"
    done = run_roam("play", "--headless", "--seconds", 5, "--record", "--out", first, *cache_flags(cache))
    assert done.returncode == 0, done.stderr[-3000:]
    replay = tmp_path / "replay"
    done = run_roam("play", "--script", first / "recording", "--headless", "--record", "--out", replay,
                    *cache_flags(cache))
    assert done.returncode == 0, done.stderr[-3000:]
    poses = lambda out: json.loads((out / "recording" / "poses.json").read_text())["frames"]
    recorded, replayed = poses(first), poses(replay)
    assert len(recorded) == 120                    # 5 s
    assert len(recorded) <= len(replayed) <= len(recorded) + 24     # and the frames requested ahead of them
    assert [r["source_index"] for r in replayed[:len(recorded)]] == [r["source_index"] for r in recorded]


@pytest.mark.parametrize("args, expected", [
    (["--seconds", "nan"], "--seconds: nan is out of range"),
    (["--seconds", "-5"], "--seconds: -5 is out of range"),
    (["--set", "runtime.loop.tick_hz=0"], "runtime.loop.tick_hz=0.0 is out of range: expected 1 to 1000"),
    (["--set", "scenes.width=100000"], "scenes.width=100000 is out of range"),
    (["--set", "scenes.sample.frames=10000", "--set", "scenes.width=8192", "--set", "scenes.height=8192"],
     "the sample scene's 10000 frames at 8192x8192 need about"),
    (["--script", "no/such/run"], "--script no/such/run: no such file or folder"),
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


def test_a_disk_that_fills_up_mid_session_ends_it_with_one_line_and_playable_videos(tmp_path, cache):
    with tmpfs(tmp_path / "disk", size="400k") as disk:
        done = run_roam("play", "--headless", "--seconds", 60, "--record", "--out", disk / "out", *cache_flags(cache))
        one_line_error(done, str(disk / "out"), "No space left on device")
        assert decoded_frames(disk / "out" / "video.mp4") > 0
        assert decoded_frames(disk / "out" / "recording" / "video.mp4") > 0
        assert not leftovers(disk)
