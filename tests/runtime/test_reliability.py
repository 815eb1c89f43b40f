"""The engine's files under faults: a session killed outright (SIGKILL) mid-recording leaves videos
that play up to about a second before the kill and a run that replays whole; a disk that fills up
mid-session ends it with one line and playable videos. The real
`play` runs in a subprocess (on the tiny sample scene of tests/conftest.py)."""
import json
import signal

import numpy as np

from controllers.scripted import InputLogReplayer
from runtime.config import load_config
from tests.reliability import (cache_flags, decoded_frames, leftovers, one_line_error, recorded_play, roam, run_roam,
                               stop, tmpfs, video_rate, wait_for_lines)


def test_sigkill_mid_recording_leaves_playable_videos_and_a_replayable_run(tmp_path, cache):
    """Killed outright after 3 s of video: both videos (at the display's rate) play up to about a
    second before the kill, the inputs log holds every tick up to then, no temporary file is left,
    and `play --script` replays the whole recorded run from what survived, frame for frame (not the
    `runtime.headless_seconds` a headless run lasts without --seconds: 1 s here)."""
    rate, tick_hz = video_rate(), load_config().runtime.loop.tick_hz
    out = tmp_path / "out"
    proc = recorded_play(out, cache)
    presented = wait_for_lines(out / "recording" / "poses.jsonl", round(3 * rate), proc)
    stop(proc, signal.SIGKILL)
    assert not leftovers(out)
    lost = 1.5 * rate         # frames still queued for the encoder (at most 48), x264's look-ahead, the last 0.5 s fragment
    kept = decoded_frames(out / "recording" / "video.mp4")
    assert presented - lost <= kept <= presented + 1, (presented, kept)
    assert decoded_frames(out / "video.mp4") >= presented - lost
    inputs = InputLogReplayer(out / "recording" / "inputs.jsonl")        # the demo walk: input every tick
    assert len(inputs) == inputs.last_tick + 1 >= (presented - lost) / rate * tick_hz, (len(inputs), presented)
    recorded = [json.loads(line) for line in (out / "recording" / "poses.jsonl").read_text().splitlines()
                if line.endswith("}")]

    replay = tmp_path / "replay"
    proc = roam("play", "--headless", "--script", out / "recording", "--out", replay, "--record",
                *cache_flags(cache), "--set", "runtime.headless_seconds=1")
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    replayed = json.loads((replay / "recording" / "poses.json").read_text())["frames"]
    assert len(recorded) <= len(replayed) <= len(recorded) + 24        # and the frames requested ahead of them
    for a, b in zip(recorded, replayed):
        assert a["source_index"] == b["source_index"] and np.allclose(a["c2w"], b["c2w"], atol=1e-9)
    session = json.loads((replay / "telemetry.json").read_text())["session"]
    assert session["pose_error"]["translation"]["n"] == 0              # a replay has no user's camera to miss


def test_a_disk_that_fills_up_mid_session_ends_it_with_one_line_and_playable_videos(tmp_path, cache):
    with tmpfs(tmp_path / "disk", size="400k") as disk:
        done = run_roam("play", "--headless", "--seconds", 60, "--record", "--out", disk / "out", *cache_flags(cache))
        one_line_error(done, str(disk / "out"), "No space left on device")
        assert decoded_frames(disk / "out" / "video.mp4") > 0
        assert decoded_frames(disk / "out" / "recording" / "video.mp4") > 0
        assert not leftovers(disk)
