"""CameraRig: orbit poses are the trajectory formula (pipeline-spec 5.3), walk stops short of a
wall seen by a probe and keeps its eye height, fly is free, inertia, scale, ride-along, predict."""
import math

import numpy as np
import pytest

from controllers.commands import CameraCommand
from runtime.config import RigConfig
from runtime.rig import CameraRig, estimate_eye_y

DT = 1 / 60


def spec_sphere2pose(x_up, y_left, r, rotation_only=False):
    """pipeline-spec 5.3, written out independently of the rig."""
    tx, ty = math.radians(x_up), math.radians(y_left)
    Ry = np.array([[math.cos(ty), 0, math.sin(ty)], [0, 1, 0], [-math.sin(ty), 0, math.cos(ty)]])
    Rx = np.array([[1, 0, 0], [0, math.cos(tx), math.sin(tx)], [0, -math.sin(tx), math.cos(tx)]])
    T = np.zeros(3) if rotation_only else np.array(
        [-r * math.cos(tx) * math.sin(ty), -r * math.sin(tx), r - r * math.cos(tx) * math.cos(ty)])
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = Ry @ Rx, T
    return out


def some_anchor():
    a = np.eye(4)
    a[:3, :3] = spec_sphere2pose(7.0, -20.0, 0.0, rotation_only=True)[:3, :3]
    a[:3, 3] = (0.3, -1.2, 2.0)
    return a


def hold(rig, cmd, seconds, **kw):
    for _ in range(round(seconds / DT)):
        rig.step(cmd, DT, **kw)


@pytest.mark.parametrize("pitch,yaw,r", [(0.0, 0.0, 1.0), (10.0, -20.0, 1.0), (-19.3, 18.8, 2.5), (30.0, 45.0, 0.7)])
def test_orbit_pose_is_the_trajectory_formula(pitch, yaw, r):
    anchor = some_anchor()
    rig = CameraRig(RigConfig(mode="orbit"), scene_scale=1.0, anchor_c2w=anchor)
    rig.set_orbit(pitch, yaw, r)
    np.testing.assert_allclose(rig.c2w(), anchor @ spec_sphere2pose(pitch, yaw, r), atol=1e-12)


def test_orbit_matches_scenes_sphere2pose():
    trajectory = pytest.importorskip("scenes.trajectory")
    rig = CameraRig(RigConfig(mode="orbit"), scene_scale=1.0)
    rig.set_orbit(12.0, -33.0, 1.5)
    ref = trajectory.sphere2pose([12.0], [-33.0], [1.5], is_zoom=False, rotation_only=False, dtype=np.float64)[0]
    np.testing.assert_allclose(rig.c2w(), ref, atol=1e-12)


def test_orbit_controls_follow_the_formula_and_look_at_the_centre():
    rig = CameraRig(RigConfig(mode="orbit", orbit_radius=2.0), scene_scale=1.5)
    r = 3.0                                                     # orbit_radius x scene_scale
    hold(rig, CameraCommand(look=(1.0, 0.0)), 1.0)              # look right: y_left grows
    hold(rig, CameraCommand(move=(0.0, -1.0, 0.0)), 0.5)        # E: x_up grows (camera moves up)
    hold(rig, CameraCommand(), 1.0)
    x_up, y_left, radius, dolly = rig.state.orbit
    assert y_left > 30.0 and x_up > 10.0 and radius == r and dolly == 0.0
    c2w = rig.c2w()
    np.testing.assert_allclose(c2w, spec_sphere2pose(x_up, y_left, r), atol=1e-12)
    to_centre = np.array([0.0, 0.0, r]) - c2w[:3, 3]
    np.testing.assert_allclose(to_centre / np.linalg.norm(to_centre), c2w[:3, 2], atol=1e-12)
    assert c2w[0, 3] < 0 and c2w[1, 3] < 0                      # moved left and up, spec signs
    assert abs(c2w[1, 0]) < 1e-12                               # no roll: x axis stays horizontal


def test_orbit_dolly_stops_before_the_centre():
    rig = CameraRig(RigConfig(mode="orbit"), scene_scale=1.0)
    hold(rig, CameraCommand(move=(0.0, 0.0, 1.0)), 10.0)
    assert rig.state.orbit[3] == pytest.approx(1.0 - 0.1)
    np.testing.assert_allclose(rig.c2w()[:3, 3], [0.0, 0.0, 0.9], atol=1e-12)   # a pure dolly at 0 angles


def test_mode_switches_do_not_jump():
    rig = CameraRig(RigConfig(mode="fly"), scene_scale=1.0)
    hold(rig, CameraCommand(move=(0.3, -0.5, 1.0), look=(0.5, -0.4)), 1.0)
    hold(rig, CameraCommand(), 2.0)
    for _ in range(4):                                          # fly -> orbit -> tripod -> walk -> fly
        before = rig.c2w()
        rig.step(CameraCommand(cycle_mode=True), 0.0)
        np.testing.assert_allclose(rig.c2w(), before, atol=1e-9)
    assert rig.mode == "fly"


def test_tripod_is_rotation_only():
    rig = CameraRig(RigConfig(mode="tripod"), scene_scale=1.0)
    hold(rig, CameraCommand(move=(1.0, 1.0, 1.0), look=(1.0, 1.0)), 0.5)
    c2w = rig.c2w()
    np.testing.assert_allclose(c2w[:3, 3], 0.0)
    yaw, pitch_up = rig.state.yaw_deg, rig.state.pitch_deg
    assert yaw > 0 and pitch_up > 0
    # the reference's rotation_only with x_up = -pitch (x_up > 0 tilts down) and y_left = yaw
    np.testing.assert_allclose(c2w, spec_sphere2pose(-pitch_up, yaw, 1.0, rotation_only=True), atol=1e-12)


def wall_probe(z_wall):
    def probe(centre, direction, within=math.inf):
        assert abs(np.linalg.norm(direction) - 1.0) < 1e-9
        if direction[2] <= 1e-12:
            return math.inf
        return (z_wall - centre[2]) / direction[2]
    return probe


def test_walk_stops_short_of_a_wall():
    calls = []
    probe = wall_probe(2.0)
    rig = CameraRig(RigConfig(mode="walk", collision_margin=0.15), scene_scale=1.0,
                    probe=lambda c, d, within=math.inf: calls.append(1) or probe(c, d, within))
    hold(rig, CameraCommand(move=(0.0, 0.0, 1.0), run=True), 5.0)
    z = rig.c2w()[2, 3]
    assert z == pytest.approx(2.0 - 0.15, abs=1e-9) and calls
    assert rig.state.velocity[2] <= 1e-12                        # the velocity into the wall is gone
    hold(rig, CameraCommand(move=(1.0, 0.0, 0.0)), 0.5)         # sliding along the wall still works
    assert rig.c2w()[0, 3] > 0.1 and rig.c2w()[2, 3] <= 2.0 - 0.15 + 1e-9
    fly = CameraRig(RigConfig(mode="fly"), scene_scale=1.0, probe=probe)
    hold(fly, CameraCommand(move=(0.0, 0.0, 1.0), run=True), 5.0)
    assert fly.c2w()[2, 3] > 3.0                                # fly mode is free


def test_walk_stops_short_of_a_scenes_surface_seen_by_the_depth_probe_and_predict_agrees():
    """The real probe on a source frame's depth (a wall 2 units ahead): held forward, the rig stops
    collision_margin before it, and a prediction of the same hold ends where the ticks end."""
    import torch
    from runtime.probe import DepthProbe
    from scenes.scene import Scene
    h, w = 48, 64
    K = torch.tensor([[50.0, 0, w / 2], [0, 50.0, h / 2], [0, 0, 1]])
    scene = Scene(frames=torch.zeros(1, h, w, 3, dtype=torch.uint8), depth=torch.full((1, h, w), 2.0), K=K[None],
                  c2w=torch.eye(4)[None], fps=24.0, caption="wall")
    rig = CameraRig(RigConfig(mode="walk", collision_margin=0.15), scene_scale=1.0,
                    probe=DepthProbe(scene, lambda: 0, body_radius=0.02, stride=2))   # a point on the axis
    forward = CameraCommand(move=(0.0, 0.0, 1.0), run=True)
    rig.step(forward, DT)
    predicted = rig.predict(1, 5.0 - DT)[0]
    hold(rig, forward, 5.0 - DT)
    assert rig.c2w()[2, 3] == pytest.approx(2.0 - 0.15, abs=1e-6)
    np.testing.assert_allclose(predicted, rig.c2w(), atol=1e-9)


def test_walk_keeps_the_eye_height_and_fly_does_not():
    src = np.tile(np.eye(4), (5, 1, 1))
    src[:, 1, 3] = [0.0, 0.1, 0.2, 0.2, 0.3]                    # median camera y: 0.2
    assert estimate_eye_y(src, src[0]) == pytest.approx(0.2)
    rig = CameraRig(RigConfig(mode="fly", walk_speed=0.6), scene_scale=1.0, source_c2ws=src)
    hold(rig, CameraCommand(move=(0.0, -1.0, 0.0)), 1.0)        # fly up
    assert rig.c2w()[1, 3] < -0.3
    rig.set_mode("walk")
    hold(rig, CameraCommand(look=(0.0, 1.0), move=(0.0, -1.0, 1.0)), 2.0)   # look up, press up: stays on the ground
    assert rig.c2w()[1, 3] == pytest.approx(0.2, abs=1e-6)
    assert rig.c2w()[2, 3] > 0.5                                # walked forward horizontally


def test_inertia_and_depth_scaled_speed():
    def travel(scale, seconds_held, seconds_after=0.0):
        rig = CameraRig(RigConfig(mode="fly"), scene_scale=scale)
        hold(rig, CameraCommand(move=(0.0, 0.0, 1.0)), seconds_held)
        z_release = rig.c2w()[2, 3]
        hold(rig, CameraCommand(), seconds_after)
        return z_release, rig.c2w()[2, 3], rig.speed()
    z1, _, _ = travel(1.0, 1.0)
    z3, _, _ = travel(3.0, 1.0)
    assert z3 == pytest.approx(3 * z1)                          # speeds scale with scene depth
    z_release, z_end, speed = travel(1.0, 1.0, 2.0)
    assert z_end > z_release + 0.05 and speed < 1e-4            # glides on after release, then stops
    quick = CameraRig(RigConfig(mode="fly"), scene_scale=1.0)
    quick.step(CameraCommand(move=(0.0, 0.0, 1.0)), DT)
    assert 0 < quick.speed() < 0.6 * 0.5                        # accelerates, no instant full speed


def test_reset_returns_to_the_source_camera():
    anchor = some_anchor()
    rig = CameraRig(RigConfig(mode="walk"), scene_scale=1.0, anchor_c2w=anchor, eye_y=0.0)
    hold(rig, CameraCommand(move=(1.0, 0.0, 1.0), look=(1.0, 0.5)), 1.0)
    assert not np.allclose(rig.c2w(), anchor)
    rig.step(CameraCommand(reset=True), DT)
    np.testing.assert_allclose(rig.c2w(), anchor, atol=1e-12)
    target = anchor @ spec_sphere2pose(0.0, 0.0, 0.0)
    target[:3, 3] += (1.0, 0.0, 0.5)
    rig.reset(to_c2w=target)
    np.testing.assert_allclose(rig.c2w(), target, atol=1e-12)


def test_ride_along_follows_the_source_camera():
    rig = CameraRig(RigConfig(mode="fly", ride_along=True), scene_scale=1.0)
    src = [some_anchor(), some_anchor()]
    src[1][:3, 3] += (0.0, 0.0, 5.0)
    hold(rig, CameraCommand(move=(1.0, 0.0, 0.0)), 0.5, source_c2w=src[0])
    rel = np.linalg.inv(src[0]) @ rig.c2w(src[0])
    np.testing.assert_allclose(rig.c2w(src[1]), src[1] @ rel, atol=1e-12)   # pose = source(t) @ offset
    rig.step(CameraCommand(reset=True), 0.0, source_c2w=src[1])
    np.testing.assert_allclose(rig.c2w(src[1]), src[1], atol=1e-12)
    with pytest.raises(ValueError, match="ride-along"):
        rig.c2w()


def test_predict_extrapolates_without_changing_the_rig():
    rig = CameraRig(RigConfig(mode="fly"), scene_scale=1.0)
    hold(rig, CameraCommand(move=(0.0, 0.0, 1.0), look=(0.5, 0.0)), 0.25)
    before = rig.c2w()
    predicted = rig.predict(12, 1 / 60)
    later = rig.predict(2, 3 / 60, start_s=4 / 60)              # at 7 and 10 ticks from now
    np.testing.assert_allclose(rig.c2w(), before)
    assert predicted.shape == (12, 4, 4) and predicted.dtype == np.float64
    cmd = CameraCommand(move=(0.0, 0.0, 1.0), look=(0.5, 0.0))
    for i in range(12):                                         # ticking for real gives the same poses
        rig.step(cmd, 1 / 60)
        np.testing.assert_allclose(rig.c2w(), predicted[i], atol=1e-12)
    assert predicted[-1][2, 3] > predicted[0][2, 3]
    np.testing.assert_allclose(later, predicted[[6, 9]], atol=1e-12)


def test_a_goal_steers_the_rig_to_it_relative_to_the_moving_source_camera():
    rig = CameraRig(RigConfig(), scene_scale=2.0)
    source = np.eye(4)
    goal = CameraCommand(goal=(0.5, 0.0, 0.25, -20.0))           # 1 unit right, 0.5 ahead, turned left
    hold(rig, goal, 6.0, source_c2w=source)
    np.testing.assert_allclose(rig.c2w()[:3, 3], (1.0, 0.0, 0.5), atol=0.02)
    yaw = math.degrees(math.atan2(rig.c2w()[0, 2], rig.c2w()[2, 2]))
    assert abs(yaw + 20.0) < 0.5
    source[:3, 3] = (0.0, 0.0, 3.0)                             # the video's camera walks on 3 units
    hold(rig, goal, 9.0, source_c2w=source)
    np.testing.assert_allclose(rig.c2w()[:3, 3], (1.0, 0.0, 3.5), atol=0.02)


def test_a_person_overrides_the_goal_and_predict_follows_it():
    rig = CameraRig(RigConfig(), scene_scale=1.0)
    hold(rig, CameraCommand(move=(0.0, 0.0, 1.0), goal=(1.0, 0.0, 0.0, 0.0)), 1.0, source_c2w=np.eye(4))
    x, _, z = rig.c2w()[:3, 3]
    assert z > 0.2 and abs(x) < 1e-9                            # walked forward, ignored the goal
    steer = CameraCommand(goal=(1.0, 0.0, 0.0, 0.0))
    rig.step(steer, DT, source_c2w=np.eye(4))
    predicted = rig.predict(30, DT, np.repeat(np.eye(4)[None], 30, 0))
    hold(rig, steer, 30 * DT, source_c2w=np.eye(4))
    np.testing.assert_allclose(predicted[-1], rig.c2w(), atol=1e-9)


def test_untrusted_depth_slows_the_walk_and_keeps_it_near_the_source_cameras():
    from runtime.config import RigConfig
    cfg = RigConfig()
    sources = np.repeat(np.eye(4)[None], 3, 0)
    sources[:, 0, 3] = [0.0, 0.1, 0.2]                                             # a short sideways move
    walk = CameraCommand(move=(0.0, 0.0, 1.0))
    reached = {}
    for trust in (0.0, 0.5, 1.0):
        rig = CameraRig(cfg, scene_scale=2.0, source_c2ws=sources, depth_trust=trust)
        for _ in range(600):                                                        # 10 s of W at 60 Hz
            rig.step(walk, 1 / 60)
        reached[trust] = float(np.linalg.norm(rig.c2w()[:3, 3] - sources[0, :3, 3]))
    assert reached[0.0] <= cfg.untrusted_reach * 2.0 + 1e-6                          # reach in scene scales
    assert reached[0.5] <= cfg.untrusted_reach * 2.0 / 0.5 + 1e-6 and reached[0.5] > reached[0.0]
    assert reached[1.0] > 5 * reached[0.0], reached                                 # full trust: no leash
    slow = CameraRig(cfg, scene_scale=2.0, source_c2ws=sources, depth_trust=0.0)
    fast = CameraRig(cfg, scene_scale=2.0, source_c2ws=sources, depth_trust=1.0)
    for rig in (slow, fast):
        for _ in range(30):
            rig.step(walk, 1 / 60)
    assert slow.speed() == pytest.approx(cfg.untrusted_speed * fast.speed(), rel=1e-6)
