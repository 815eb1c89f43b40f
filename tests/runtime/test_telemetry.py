"""Telemetry: stage durations, control-to-photon from the changing tick to the first frame of
the first block planned with it, fps and jitter, and the JSON file."""
import json

import numpy as np
import pytest

from controllers.commands import CameraCommand
from runtime.telemetry import Telemetry


def test_stage_durations_and_control_to_photon(tmp_path):
    tel = Telemetry(fps=24.0, now=lambda: 0.0)
    walk = CameraCommand(move=(0.0, 0.0, 1.0))
    for tick in range(60):                                      # the command changes at tick 10 only
        tel.camera_command(tick, walk if tick >= 10 else CameraCommand(), t=tick / 60)
    for block, tick in enumerate((0, 30)):                      # blocks planned at ticks 0 and 30
        t = tick / 60
        tel.mark(block, "input", t, tick=tick)
        for dt, stage in ((0.001, "request"), (0.010, "start"), (0.030, "render"), (0.050, "encode"),
                          (0.400, "dit"), (0.410, "decode")):
            tel.mark(block, stage, t + dt)
        for i in range(12):
            tel.present(block, t + 0.45 + i / 24)
    c2p = tel.control_to_photon()
    assert c2p == pytest.approx([30 / 60 + 0.45 - 10 / 60])    # tick 10 -> first frame of block 1
    s = tel.summary()
    assert s["stages_ms"]["dit"]["p50"] == pytest.approx(350.0)
    assert s["stages_ms"]["total"]["p50"] == pytest.approx(450.0)
    assert s["stages_ms"]["make"]["p50"] == pytest.approx(400.0)     # start 0.010 -> decode 0.410
    assert s["control_to_photon_ms"]["n"] == 1 and s["frames_presented"] == 24 and s["blocks"] == 2
    path = tmp_path / "telemetry.json"
    tel.write_json(path)
    data = json.loads(path.read_text())
    assert data["summary"]["control_to_photon_ms"]["p50"] == pytest.approx(783.3333, rel=1e-4)
    assert len(data["present_times_s"]) == 24 and data["blocks_s"]["1"]["tick"] == 30
    assert not (tmp_path / "telemetry.json.tmp").exists()


def test_fps_and_jitter():
    tel = Telemetry(fps=24.0, now=lambda: 0.0)
    t = 0.0
    for i in range(49):
        tel.present(i // 12, t)
        t += 1 / 24 if i != 30 else 0.1                        # one late frame
    s = tel.summary()
    assert s["late_frames"] == 1 and s["jitter_ms"] > 0
    assert s["frame_interval_ms"]["p50"] == pytest.approx(1000 / 24)
    assert 20 < s["fps"] < 24


def test_mouse_motion_and_edges_are_control_events_and_bad_stage_is_an_error():
    tel = Telemetry(now=lambda: 0.0)
    tel.camera_command(0, CameraCommand())
    tel.camera_command(1, CameraCommand(look_delta_deg=(0.5, 0.0)), t=1.0)
    tel.camera_command(2, CameraCommand(reset=True), t=2.0)
    tel.camera_command(3, CameraCommand(), t=3.0)
    tel.mark(0, "input", 1.5, tick=2)
    tel.present(0, 2.5)
    assert tel.control_to_photon() == pytest.approx([1.5, 0.5])   # both reach the screen with block 0
    with pytest.raises(ValueError, match="unknown stage"):
        tel.mark(0, "upload")


def test_gc_pauses_times_the_collections_made_while_active():
    import gc
    from runtime.telemetry import GcPauses
    with GcPauses() as pauses:
        gc.collect()                                  # a full collection
        gc.collect(0)
    gc.collect()                                      # after the block: not counted
    s = pauses.summary()
    assert s["collections"] == 2 and s["full"] == 1 and 0 < s["max_ms"] <= s["total_ms"]


def test_pose_trace_interpolates_the_rigs_turn_between_ticks_as_slerp_does():
    """A frame shown between two ticks is compared with the rig's pose slerped to its present time:
    shown exactly there, no error; turned 2 degrees further, 2 degrees."""
    from scipy.spatial.transform import Rotation, Slerp

    from runtime.telemetry import PoseTrace, part_of_turn
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = Rotation.random(2, random_state=rng)
        if (a.inv() * b).magnitude() > np.radians(170):
            continue
        w = rng.uniform()
        slerp = Slerp([0.0, 1.0], Rotation.concatenate([a, b]))([w]).as_matrix()[0]
        got = a.as_matrix() @ part_of_turn(a.as_matrix().T @ b.as_matrix(), w)
        assert np.abs(got - slerp).max() < 1e-9

    def pose(yaw_deg: float) -> np.ndarray:
        c2w = np.eye(4)
        c2w[:3, :3] = Rotation.from_euler("y", yaw_deg, degrees=True).as_matrix()
        return c2w
    trace = PoseTrace()
    trace.displayed(0.25, pose(2.5))                       # a quarter of the way from 0 to 10 degrees
    trace.displayed(0.5, pose(7.0))                        # half-way is 5: 2 degrees off
    trace.tick(0.0, pose(0.0))
    trace.tick(1.0, pose(10.0))
    assert np.allclose(trace.rotation_deg, [0.0, 2.0], atol=1e-6)
