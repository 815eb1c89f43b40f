"""CameraRig: CameraCommands integrated at the fixed tick into a smooth camera pose.

Poses are OpenCV camera-to-world (+x right, +y down, +z forward), float64 numpy [4, 4]. The rig
keeps a pose `rel` relative to a frame: the anchor camera (by default the first source camera),
or with ride-along (the reference's --relative_to_source) the source camera at the current
source time, so pose = frame @ rel in both cases.

Modes:
- walk: heading turns about the anchor's y axis, motion stays horizontal, the eye settles at a
  fixed height (`eye_y`, estimated from the source poses), and a depth probe stops it short of
  surfaces. fly: free 6-dof motion in the camera's own axes, no collision, no ground.
- orbit: pitch/yaw/radius mean exactly what a trajectory file means (pipeline-spec 5.3): the
  camera orbits (0, 0, r) of its orbit base and looks at it, R = Ry(yaw) Rx(pitch),
  T = (-r cos(pitch) sin(yaw), -r sin(pitch), r - r cos(pitch) cos(yaw)). After a reset the base
  is the anchor, so pose = anchor @ sphere2pose(...). W/S dolly along the optical axis.
- tripod: rotation only, at the current position (after a reset: the reference's rotation_only).
A command's `goal` (automatic walks) is a pose relative to the current source camera; while no move
or look is held, the rig turns it into the move and look that close on it at `steer_rate`, so the
motion keeps the same speeds, inertia and collisions as a person's.
Speeds and distances scale with `scene_scale` (e.g. the median scene depth). Velocities follow
the input with a first-order response (accel_rate while held, damping_rate after release), which
is frame-rate independent and gives the camera inertia. `depth_trust` (the Scene's, 0 for a guessed
depth, 1 for measured) slows walk and fly (untrusted_speed at 0) and keeps the camera within a reach
of the source cameras (untrusted_reach / (1 - trust) scene scales), where a wrong depth shows least.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from controllers.commands import CAMERA_MODES, CameraCommand
from runtime.config import RigConfig
from scenes.trajectory import sphere2pose

PREDICT_STEP_S = 1.0 / 60.0          # predictions integrate in steps no longer than a tick at 60 Hz
Probe = Callable[..., float]   # (centre [3] world, unit direction [3] world, within=) -> distance or inf
#                                (a hit farther than `within` may read as inf: runtime/probe.DepthProbe)


def rot_y(deg: float) -> np.ndarray:
    """pipeline-spec 5.3 Ry: positive turns the optical axis toward +x (right)."""
    s, c = math.sin(math.radians(deg)), math.cos(math.radians(deg))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_x(deg: float) -> np.ndarray:
    """pipeline-spec 5.3 Rx: positive turns the optical axis toward +y (down)."""
    s, c = math.sin(math.radians(deg)), math.cos(math.radians(deg))
    return np.array([[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]])


def look_rotation(yaw_deg: float, pitch_up_deg: float) -> np.ndarray:
    """Camera rotation for a heading (+ right) and an elevation (+ up), no roll."""
    return rot_y(yaw_deg) @ rot_x(-pitch_up_deg)


def yaw_pitch_of(R: np.ndarray) -> tuple[float, float]:
    """Inverse of look_rotation (roll, if any, is dropped): (yaw, pitch up) in degrees."""
    f = R[:, 2]
    return math.degrees(math.atan2(f[0], f[2])), math.degrees(math.asin(max(-1.0, min(1.0, -f[1]))))


def pose(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    out = np.eye(4)                                          # [4, 4]
    out[:3, :3], out[:3, 3] = R, t
    return out


def orbit_c2w(x_up_deg: float, y_left_deg: float, r: float, dolly: float = 0.0) -> np.ndarray:
    """sphere2pose of pipeline-spec 5.3 (orbit, not zoom: scenes/trajectory.py), then `dolly` along
    the optical axis. -> [4, 4]"""
    c2w = sphere2pose(x_up_deg, y_left_deg, r, is_zoom=False, rotation_only=False, dtype=np.float64)[0]  # [4, 4]
    c2w[:3, 3] += dolly * c2w[:3, 2]
    return c2w


def estimate_eye_y(source_c2ws: np.ndarray, anchor_c2w: np.ndarray) -> float:
    """Walking eye height: the median y (OpenCV: down) of the source camera centres in the anchor
    frame, i.e. the source camera's usual height above a ground plane perpendicular to its y."""
    rel = np.linalg.inv(anchor_c2w) @ np.asarray(source_c2ws, dtype=np.float64)   # [N, 4, 4]
    return float(np.median(rel[:, 1, 3]))


def _approach(value: np.ndarray, target: np.ndarray, rate: float, dt_s: float) -> np.ndarray:
    """First-order response: exact for a held target, independent of the tick rate."""
    return target + (value - target) * math.exp(-rate * dt_s)


def _unit_clamp(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    n = math.sqrt(float(v @ v))
    return v / n if n > 1.0 else v                           # diagonal keys are not faster


@dataclass
class RigState:
    mode: str
    position: np.ndarray      # [3] camera centre in the frame (walk, fly, tripod)
    yaw_deg: float            # + turns right, about the frame's y axis
    pitch_deg: float          # + looks up
    velocity: np.ndarray      # [3] frame units per second
    look_rate: np.ndarray     # [2] deg/s: yaw, pitch up
    orbit_base: np.ndarray    # [4, 4] the orbit's reference camera in the frame (I after a reset)
    orbit: np.ndarray         # [4] pitch x_up (deg), yaw y_left (deg), radius, dolly
    orbit_rate: np.ndarray    # [3] deg/s, deg/s, units/s

    def copy(self) -> "RigState":
        """A copy whose arrays are its own (a deep copy, without copy.deepcopy's cost)."""
        return dataclasses.replace(self, **{f.name: getattr(self, f.name).copy() for f in dataclasses.fields(self)
                                            if isinstance(getattr(self, f.name), np.ndarray)})

    def rel_c2w(self) -> np.ndarray:
        if self.mode == "orbit":
            return self.orbit_base @ orbit_c2w(*self.orbit)
        return pose(look_rotation(self.yaw_deg, self.pitch_deg), self.position)


class CameraRig:
    """Integrates CameraCommands into a pose. Call `step` once per fixed tick and `c2w` to read."""

    def __init__(self, cfg: RigConfig, *, scene_scale: float, anchor_c2w=None, source_c2ws=None,
                 probe: Probe | None = None, eye_y: float | None = None, depth_trust: float = 1.0):
        if not (scene_scale > 0 and math.isfinite(scene_scale)):
            raise ValueError(f"CameraRig: scene_scale must be a positive number, got {scene_scale}")
        if not 0 <= depth_trust <= 1:
            raise ValueError(f"CameraRig: depth_trust must be in [0, 1], got {depth_trust}")
        if anchor_c2w is None:
            anchor_c2w = source_c2ws[0] if source_c2ws is not None else np.eye(4)
        self.cfg, self.scale, self.probe = cfg, float(scene_scale), probe
        self.anchor = np.asarray(anchor_c2w, dtype=np.float64).copy()
        self.ride_along = cfg.ride_along
        if eye_y is None:
            eye_y = 0.0 if cfg.ride_along or source_c2ws is None else estimate_eye_y(source_c2ws, self.anchor)
        self.eye_y = float(eye_y)
        self.speed_factor = cfg.untrusted_speed + (1.0 - cfg.untrusted_speed) * depth_trust
        self.reach = cfg.untrusted_reach * self.scale / (1.0 - depth_trust) if depth_trust < 1 else math.inf
        centres = np.zeros((1, 3)) if source_c2ws is None else np.asarray(source_c2ws, dtype=np.float64)[:, :3, 3]
        self.source_centres = centres @ np.linalg.inv(self.anchor)[:3, :3].T + np.linalg.inv(self.anchor)[:3, 3]
        self._held = CameraCommand()                          # last command's held part, for predict
        self.state = self._fresh(cfg.mode)

    # ---- reading -------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self.state.mode

    def _frame(self, source_c2w) -> np.ndarray:
        if not self.ride_along:
            return self.anchor
        if source_c2w is None:
            raise ValueError("CameraRig: ride-along needs the source camera pose of the current frame")
        return np.asarray(source_c2w, dtype=np.float64)

    def c2w(self, source_c2w=None) -> np.ndarray:
        """World camera-to-world [4, 4] float64; with ride-along, of the given source pose."""
        return self._frame(source_c2w) @ self.state.rel_c2w()

    def speed(self) -> float:
        """Current speed in scene scales per second (for the HUD)."""
        return float(np.linalg.norm(self.state.velocity)) / self.scale

    # ---- control -------------------------------------------------------------------------
    def step(self, cmd: CameraCommand, dt_s: float, source_c2w=None) -> None:
        """One fixed tick: mode switches and reset first, then motion."""
        if cmd.reset:
            self.reset()
        if cmd.mode is not None:
            self.set_mode(cmd.mode)
        if cmd.cycle_mode:
            self.set_mode(CAMERA_MODES[(CAMERA_MODES.index(self.mode) + 1) % len(CAMERA_MODES)])
        self._held = CameraCommand(move=cmd.move, look=cmd.look, run=cmd.run, goal=cmd.goal)
        frame = self._frame(source_c2w)
        self._integrate(self.state, cmd, dt_s, frame, self._goal_pose(cmd, frame, source_c2w))

    def predict(self, n_frames: int, dt_s: float, source_c2ws=None, start_s: float = 0.0) -> np.ndarray:
        """The poses [n, 4, 4] at start_s + dt_s, start_s + 2 dt_s, ... from now, if the current
        input stays held (mouse motion does not repeat), integrated in steps of at most
        PREDICT_STEP_S as the ticks would. The rig itself does not change. Ride-along and goals
        need the source poses of those frames [n, 4, 4]."""
        state, out = self.state.copy(), []
        for i in range(n_frames):
            source = None if source_c2ws is None else source_c2ws[i]
            frame = self._frame(source)
            goal = self._goal_pose(self._held, frame, source)
            frame_dt_s = start_s + dt_s if i == 0 else dt_s
            steps = max(1, math.ceil(frame_dt_s / PREDICT_STEP_S - 1e-9))
            for _ in range(steps):
                self._integrate(state, self._held, frame_dt_s / steps, frame, goal)
            out.append(frame @ state.rel_c2w())
        return np.stack(out) if out else np.zeros((0, 4, 4))

    def reset(self, to_c2w=None, source_c2w=None) -> None:
        """Back to the source camera (rel = I: the anchor, or with ride-along the current source
        camera); or, given `to_c2w` (world), to that pose (its roll is dropped). Mode is kept."""
        mode, self.state = self.mode, self._fresh("walk")
        if to_c2w is not None:
            rel = np.linalg.inv(self._frame(source_c2w)) @ np.asarray(to_c2w, dtype=np.float64)
            self.state.yaw_deg, self.state.pitch_deg = yaw_pitch_of(rel[:3, :3])
            self.state.position = rel[:3, 3].copy()
        self.set_mode(mode)

    def set_mode(self, mode: str) -> None:
        """Switch modes without a jump: the new mode starts from the current pose."""
        if mode not in CAMERA_MODES:
            raise ValueError(f"CameraRig: mode {mode!r} is not one of {CAMERA_MODES}")
        s = self.state
        if mode == s.mode:
            return
        if s.mode == "orbit":                                # read heading and place off the orbit pose
            rel = s.rel_c2w()
            s.yaw_deg, s.pitch_deg = yaw_pitch_of(rel[:3, :3])
            s.position = rel[:3, 3].copy()
        if mode == "orbit":
            self._enter_orbit(s)
        s.mode = mode
        s.velocity, s.look_rate, s.orbit_rate = np.zeros(3), np.zeros(2), np.zeros(3)

    def set_orbit(self, pitch_deg: float, yaw_deg: float, radius: float, dolly: float = 0.0) -> None:
        """Orbit pose by trajectory-file values (x_up, y_left, r), about the current orbit base
        (the anchor after a reset)."""
        self.set_mode("orbit")
        self.state.orbit = np.array([pitch_deg, yaw_deg, radius, dolly], dtype=np.float64)

    def _fresh(self, mode: str) -> RigState:
        s = RigState(mode="walk", position=np.zeros(3), yaw_deg=0.0, pitch_deg=0.0, velocity=np.zeros(3),
                     look_rate=np.zeros(2), orbit_base=np.eye(4), orbit=np.zeros(4), orbit_rate=np.zeros(3))
        if mode == "orbit":
            self._enter_orbit(s)
        s.mode = mode
        return s

    def _enter_orbit(self, s: RigState) -> None:
        """Orbit the point orbit_radius ahead. The base keeps only the heading, so the orbit pose
        starts exactly at the current pose and never rolls."""
        r = self.cfg.orbit_radius * self.scale
        heading = rot_y(s.yaw_deg)
        s.orbit_base = pose(heading, s.position - heading @ orbit_c2w(-s.pitch_deg, 0.0, r)[:3, 3])
        s.orbit = np.array([-s.pitch_deg, 0.0, r, 0.0])

    # ---- integration (in place: `step` advances the rig's own state, `predict` a copy) --------
    def _integrate(self, s: RigState, cmd: CameraCommand, dt_s: float, frame: np.ndarray,
                   goal: tuple[np.ndarray, float, float] | None = None) -> None:
        """`s` one step of dt_s seconds later, in place; goal: `_goal_pose` of cmd's goal."""
        cmd = self._steer(s, cmd, goal)
        if s.mode == "orbit":
            self._integrate_orbit(s, cmd, dt_s)
            return
        self._integrate_look(s, cmd, dt_s)
        if s.mode != "tripod":
            self._integrate_move(s, cmd, dt_s, frame)

    def _goal_pose(self, cmd: CameraCommand, frame: np.ndarray, source_c2w) -> tuple[np.ndarray, float, float] | None:
        """cmd's goal (a pose relative to `source_c2w`) in the rig's frame: (position [3], yaw, pitch
        in degrees), or None without a goal or source pose. The same for every step of one frame."""
        if cmd.goal is None or source_c2w is None:
            return None
        x, y, z, yaw = cmd.goal
        goal = np.linalg.inv(frame) @ np.asarray(source_c2w, dtype=np.float64) @ \
            pose(rot_y(yaw), np.array([x, y, z]) * self.scale)                 # [4, 4] in the rig's frame
        return (goal[:3, 3], *yaw_pitch_of(goal[:3, :3]))

    def _steer(self, s: RigState, cmd: CameraCommand, goal: tuple[np.ndarray, float, float] | None) -> CameraCommand:
        """The command with move and look that close on its goal (`_goal_pose`); unchanged without a
        goal, in orbit mode, or while a person moves or looks."""
        manual = any(cmd.move) or any(cmd.look) or any(cmd.look_delta_deg)
        if goal is None or s.mode == "orbit" or manual:
            return cmd
        c, walk = self.cfg, s.mode == "walk"
        goal_position, goal_yaw, goal_pitch = goal
        turn = ((goal_yaw - s.yaw_deg + 180.0) % 360.0 - 180.0, goal_pitch - s.pitch_deg)   # degrees
        look = tuple(float(min(max(d * c.steer_rate / c.look_speed_deg_s, -1.0), 1.0)) for d in turn)
        move = (0.0, 0.0, 0.0)
        if s.mode != "tripod":
            error = goal_position - s.position                                # [3] frame axes
            heading = rot_y(s.yaw_deg) if walk else look_rotation(s.yaw_deg, s.pitch_deg)
            speed = (c.walk_speed if walk else c.fly_speed) * self.scale
            local = heading.T @ error * c.steer_rate / speed                   # [3] camera axes, in speeds
            if walk:
                local[1] = 0.0                                                 # walk keeps its eye height
            move = tuple(float(v) for v in _unit_clamp(local))
        return dataclasses.replace(cmd, move=move, look=look, run=False)

    def _integrate_look(self, s: RigState, cmd: CameraCommand, dt_s: float) -> None:
        c = self.cfg
        target = np.asarray(cmd.look, dtype=np.float64) * c.look_speed_deg_s
        s.look_rate = _approach(s.look_rate, target, c.look_response_rate, dt_s)
        s.yaw_deg += s.look_rate[0] * dt_s + cmd.look_delta_deg[0]
        pitch = float(s.pitch_deg + s.look_rate[1] * dt_s + cmd.look_delta_deg[1])
        s.pitch_deg = min(max(pitch, -c.pitch_limit_deg), c.pitch_limit_deg)

    def _integrate_move(self, s: RigState, cmd: CameraCommand, dt_s: float, frame: np.ndarray) -> None:
        c, walk = self.cfg, s.mode == "walk"
        move = _unit_clamp(cmd.move)
        speed = (c.walk_speed if walk else c.fly_speed) * self.scale * self.speed_factor * \
            (c.run_multiplier if cmd.run else 1.0)
        if walk:                                             # heading only: forward stays horizontal
            direction = rot_y(s.yaw_deg) @ np.array([move[0], 0.0, move[2]])
        else:
            direction = look_rotation(s.yaw_deg, s.pitch_deg) @ move
        held = bool(np.any(move != 0.0))
        s.velocity = _approach(s.velocity, direction * speed, c.accel_rate if held else c.damping_rate, dt_s)
        if walk:
            s.velocity[1] = 0.0
            s.position = s.position + self._collide(s, s.velocity * dt_s, frame)
            s.position[1] += (self.eye_y - s.position[1]) * (1.0 - math.exp(-c.accel_rate * dt_s))
        else:
            s.position = s.position + s.velocity * dt_s
        self._leash(s)

    def _leash(self, s: RigState) -> None:
        """Keep the camera within `reach` of the nearest source camera centre (ride-along: of the
        source camera it rides on), and take away the velocity that leads further out."""
        if not math.isfinite(self.reach):
            return
        centres = np.zeros((1, 3)) if self.ride_along else self.source_centres       # [M, 3] frame axes
        offsets = s.position - centres
        nearest = int(np.argmin(np.linalg.norm(offsets, axis=1)))
        out = offsets[nearest]
        distance = float(np.linalg.norm(out))
        if distance <= self.reach:
            return
        direction = out / distance
        s.position = centres[nearest] + direction * self.reach
        s.velocity = s.velocity - max(0.0, float(s.velocity @ direction)) * direction

    def _collide(self, s: RigState, step: np.ndarray, frame: np.ndarray) -> np.ndarray:
        """Walk: shorten `step` to stop collision_margin before the nearest surface the probe sees
        along it, and take away the velocity into that surface."""
        length = float(np.linalg.norm(step))
        if self.probe is None or length == 0.0:
            return step
        direction = step / length                            # [3] frame axes
        margin = self.cfg.collision_margin * self.scale
        centre = frame[:3, :3] @ s.position + frame[:3, 3]          # [3] world
        hit = float(self.probe(centre, frame[:3, :3] @ direction, within=length + margin))
        allowed = max(0.0, hit - margin)
        if length <= allowed:
            return step
        s.velocity = s.velocity - max(0.0, float(s.velocity @ direction)) * direction
        return direction * allowed

    def _integrate_orbit(self, s: RigState, cmd: CameraCommand, dt_s: float) -> None:
        c = self.cfg
        move, (look_yaw, look_pitch) = _unit_clamp(cmd.move), cmd.look
        boost = c.run_multiplier if cmd.run else 1.0
        target = np.array([np.clip(-move[1] - look_pitch, -1, 1) * c.orbit_speed_deg_s,   # E raises, look up lowers
                           np.clip(look_yaw - move[0], -1, 1) * c.orbit_speed_deg_s,      # D goes right, look right turns right
                           move[2] * c.orbit_dolly_speed * self.scale]) * boost             # W dollies in
        held = bool(np.any(move != 0.0)) or look_yaw != 0.0 or look_pitch != 0.0
        s.orbit_rate = _approach(s.orbit_rate, target, c.accel_rate if held else c.damping_rate, dt_s)
        x_up, y_left, radius, dolly = s.orbit
        x_up += s.orbit_rate[0] * dt_s - cmd.look_delta_deg[1]
        y_left += s.orbit_rate[1] * dt_s + cmd.look_delta_deg[0]
        dolly += s.orbit_rate[2] * dt_s
        x_up = float(np.clip(x_up, -c.orbit_pitch_limit_deg, c.orbit_pitch_limit_deg))
        dolly = min(dolly, radius - c.orbit_min_distance * self.scale)
        s.orbit = np.array([x_up, y_left, radius, dolly])
