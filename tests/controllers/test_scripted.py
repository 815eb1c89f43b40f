"""Scripted path replay and the input-log round trip (the recorder's inputs.jsonl -> replay gives
the same ticks, also from a log cut off by a killed run)."""
import numpy as np
import pytest

from controllers.commands import IDLE, CameraCommand, Commands, TimeCommand
from controllers.scripted import InputLogReplayer, ScriptedPath
from runtime.recorder import Recorder


def poses(n):
    c2ws = np.tile(np.eye(4), (n, 1, 1))
    c2ws[:, 2, 3] = np.arange(n) * 0.1
    return c2ws


def test_path_replays_one_pose_per_frame():
    path = ScriptedPath(poses(3), [0, 0, 5])
    frames = [path.next_frame() for _ in range(3)]
    assert [f.source_index for f in frames] == [0, 0, 5] and [f.frame for f in frames] == [0, 1, 2]
    assert frames[2].c2w[2, 3] == pytest.approx(0.2) and frames[2].c2w.dtype == np.float64
    assert path.done and path.next_frame() is None
    c2w, idx = path.window(1, 12)                                 # the tail of a block request
    assert c2w.shape == (2, 4, 4) and idx.tolist() == [0, 5]


def test_looping_path_wraps():
    path = ScriptedPath(poses(2), [3, 4], loop=True)
    assert [path.next_frame().source_index for _ in range(5)] == [3, 4, 3, 4, 3] and not path.done
    assert path.window(1, 3)[1].tolist() == [4, 3, 4]


def test_path_validation():
    with pytest.raises(ValueError, match=r"\[T, 4, 4\]"):
        ScriptedPath(np.zeros((3, 3, 4)), [0, 1, 2])
    with pytest.raises(ValueError, match="source indices"):
        ScriptedPath(poses(3), [0, 1])
    with pytest.raises(ValueError, match="source indices"):
        ScriptedPath(poses(2), [0.5, 1.0])
    bad = poses(2)
    bad[1, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ScriptedPath(bad, [0, 1])


def test_input_log_round_trip(tmp_path):
    recorded = {0: Commands(camera=CameraCommand(move=(0.0, 0.0, 1.0))),
                1: Commands(camera=CameraCommand(move=(0.0, 0.0, 1.0), run=True)),
                4: Commands(time=TimeCommand(toggle_pause=True)),
                7: Commands(camera=CameraCommand(look_delta_deg=(0.15, -0.45)), time=TimeCommand(scrub_s=-1.0))}
    recorder = Recorder(tmp_path / "run", fps=24.0, width=16, height=16)
    for tick in range(10):
        if not recorded.get(tick, IDLE).is_idle:                 # the session logs ticks that had input
            recorder.log_tick(tick, recorded[tick].to_dict())
    recorder.close()
    path = tmp_path / "run" / "inputs.jsonl"
    assert len(path.read_text().splitlines()) == 4
    replay = InputLogReplayer(path)
    assert [replay.commands_for(t) for t in range(10)] == [recorded.get(t, IDLE) for t in range(10)]
    assert replay.last_tick == 7 and not replay.done(7) and replay.done(8)
    with path.open("a") as log:
        log.write('{"tick": 9, "camera": {"mo')                   # killed mid-line
    assert InputLogReplayer(path).last_tick == 7


def test_input_log_errors_name_the_line(tmp_path):
    path = tmp_path / "inputs.jsonl"
    path.write_text('{"tick": 0}\n{"tick": 1, "camera": {"move": [2, 0, 0]}}\n')
    with pytest.raises(ValueError, match="inputs.jsonl:2"):
        InputLogReplayer(path)
    path.write_text('{"tick": 3}\n{"tick": 3}\n')
    with pytest.raises(ValueError, match="inputs.jsonl:2"):
        InputLogReplayer(path)
    with pytest.raises(ValueError, match="cannot read"):
        InputLogReplayer(tmp_path / "missing.jsonl")
