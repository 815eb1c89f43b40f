"""Camera trajectories exactly as the reference builds them (pipeline-spec sections 5.1-5.5).

A trajectory file has 3 lines of whitespace-separated keyframes: pitch (`x_up`, degrees), yaw
(`y_left`, degrees) and r (orbit radius, or dolly distance; scene units). Each line's keys sit at
uniform times in [0, 1], independently of the other lines, so the lines may differ in length.
Sampling to T frames, `sphere2pose` and the composition with source poses reproduce the
reference's `datasets/utils.py` (`txt_interpolation`, `generate_traj_txt`) and
`scripts/render_point_cloud.py` (`generate_target_c2ws`), quirks included: a smoothing spline
that misses its keys, only the r line's endpoints pinned, zoom detection on sampled values, and
composition with init^-1 rather than init.

Convention: OpenCV camera axes (+x right, +y down, +z forward), c2w 4x4, column-vector points.
Recorded camera paths that are not keyframe orbits use the full-pose JSON format at the end.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from scenes.atomic import write_atomic
from scenes.errors import SceneInputError

LINE_NAMES = ("pitch", "yaw", "r")
KEY_RANGES = {                    # each line's keys: (lowest, highest, why)
    "pitch": (-3600.0, 3600.0, "degrees, ten turns; the adaptive frame count grows with the turn"),
    "yaw": (-3600.0, 3600.0, "degrees, ten turns; the adaptive frame count grows with the turn"),
    "r": (-1e6, 1e6, "scene units; farther, float32 poses lose their precision"),
}


@dataclass(frozen=True)
class TrajectoryKeys:
    """Raw keyframes of one trajectory file (each line needs at least 2 finite keys)."""
    pitch: tuple[float, ...]   # x_up, degrees: positive moves the camera up (-y) and tilts it down
    yaw: tuple[float, ...]     # y_left, degrees: positive moves the camera left and turns it right
    r: tuple[float, ...]       # orbit radius around (0, 0, r); the dolly distance when angles stay 0

    def __post_init__(self):
        for name in LINE_NAMES:
            values = getattr(self, name)
            object.__setattr__(self, name, tuple(float(v) for v in values))
            _check_line(getattr(self, name), f"trajectory keys ({name})", name)

    def total_angle_deg(self) -> float:
        """max(sum |d pitch|, sum |d yaw|) over the raw keys (the adaptive frame count's angle)."""
        return float(max(np.abs(np.diff(self.pitch)).sum(), np.abs(np.diff(self.yaw)).sum()))


def _check_line(values: tuple[float, ...], where: str, name: str) -> None:
    if len(values) < 2:
        raise SceneInputError(f"{where}: needs at least 2 keyframes, found {len(values)}")
    if bad := [v for v in values if not math.isfinite(v)]:
        raise SceneInputError(f"{where}: keyframes must be finite numbers, found {bad[0]!r}")
    low, high, why = KEY_RANGES[name]
    if bad := [v for v in values if not low <= v <= high]:
        raise SceneInputError(f"{where}: keyframe {bad[0]:g} is out of range: expected {low:g} to {high:g} ({why})")


def _parse_line(text: str, where: str, line: int) -> tuple[float, ...]:
    tokens = text.split()
    if not tokens:
        raise SceneInputError(f"{where}: empty line; expected whitespace-separated numbers")
    values = []
    for tok in tokens:
        try:
            values.append(float(tok))
        except ValueError:
            raise SceneInputError(f"{where}: {tok!r} is not a number") from None
    _check_line(tuple(values), where, LINE_NAMES[line])
    return tuple(values)


def parse_keys(text: str, where: str = "trajectory") -> TrajectoryKeys:
    """The reference reads exactly the first 3 lines; anything after them is ignored."""
    lines = text.splitlines()
    if len(lines) < 3:
        raise SceneInputError(f"{where}: expected 3 lines (pitch, yaw and r keyframes), found {len(lines)}")
    return TrajectoryKeys(*(_parse_line(lines[i], f"{where} line {i + 1} ({LINE_NAMES[i]})", i) for i in range(3)))


def read_keys(path: str | os.PathLike) -> TrajectoryKeys:
    """Read a 3-line trajectory file; every problem is a one-line SceneInputError naming file and line."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise SceneInputError(f"trajectory file {os.fspath(path)!r} not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SceneInputError(f"trajectory file {os.fspath(path)!r} cannot be read: {err}") from None
    return parse_keys(text, os.fspath(path))


def _format_number(v: float) -> str:
    text = repr(float(v))                          # shortest round-trip form: reads back bit-exact
    return text[:-2] if text.endswith(".0") else text


def format_keys(keys: TrajectoryKeys) -> str:
    """The reference's layout: one line per list, numbers separated by single spaces ("0 10 -0.25")."""
    return "".join(" ".join(map(_format_number, getattr(keys, n))) + "\n" for n in LINE_NAMES)


def write_keys(path: str | os.PathLike, keys: TrajectoryKeys) -> None:
    """Save keyframes (e.g. of a recorded orbit) as a 3-line file that the reference also reads."""
    write_atomic(path, format_keys(keys).encode())


# ---------------------------------------------------------------------------------------------
# Sampling to T frames

def _check_count(T: int) -> None:
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 1:
        # the reference crashes here (IndexError / "need at least one array to stack")
        raise SceneInputError(f"a trajectory needs a frame count T >= 1, got {T!r}")


def interpolate_line(keys, T: int, *, pin_ends: bool = False) -> np.ndarray:
    """Sample one keyframe line at linspace(0, 1, T) -> [T] float64, as `txt_interpolation`.

    More than 3 keys: FITPACK's cubic *smoothing* spline with s = m (the UnivariateSpline
    default), which misses the keys by design; 3 or fewer: piecewise linear (interp1d, whose
    knot handling np.interp does not share). pin_ends (r lines only, and only for > 3 keys):
    overwrite the first, then the last sample with the raw first and last key (T = 1: last wins).
    Bit-exact with scipy 1.15-1.17 (Fortran FITPACK); scipy 1.18's rewrite picks other knots."""
    from scipy.interpolate import UnivariateSpline, interp1d   # here, not at the top: play's start never needs it
    _check_count(T)
    y = np.asarray(keys, dtype=np.float64)                                              # [K]
    x = np.linspace(0, 1, len(y))                                                       # [K]
    f = UnivariateSpline(x, y, k=3) if len(y) > 3 else interp1d(x, y)
    out = np.asarray(f(np.linspace(0, 1, T)), dtype=np.float64)   # [T]
    if pin_ends and len(y) > 3:
        out[0] = y[0]
        out[-1] = y[-1]
    return out


@dataclass(frozen=True)
class SampledTrajectory:
    """Per-frame values of a trajectory at T frames, before sphere2pose."""
    pitch: np.ndarray     # [T] float64, degrees
    yaw: np.ndarray       # [T] float64, degrees
    r: np.ndarray         # [T] float64, the r line
    r_zoom: np.ndarray    # [T] float64, the r_zoom line (the renderer passes the same keys as r)
    is_zoom: bool         # every sampled pitch and yaw is exactly 0.0: pure dolly, t = (0, 0, r)
    is_not_y: bool        # every sampled yaw is exactly 0.0: the radius comes from r_zoom

    @property
    def radius(self) -> np.ndarray:
        """[T] the radius list sphere2pose receives."""
        return self.r_zoom if self.is_not_y else self.r


def sample(keys: TrajectoryKeys, T: int, *, r_zoom_keys=None) -> SampledTrajectory:
    """Interpolate every line to T frames. The flags use exact float equality on the *sampled*
    arrays, so at T = 1 a trajectory whose first keys are 0 becomes a dolly (a reference quirk)."""
    pitch = interpolate_line(keys.pitch, T)
    yaw = interpolate_line(keys.yaw, T)
    r = interpolate_line(keys.r, T, pin_ends=True)
    r_zoom = r if r_zoom_keys is None else interpolate_line(r_zoom_keys, T, pin_ends=True)
    is_not_y = bool(np.all(yaw == 0))
    return SampledTrajectory(pitch, yaw, r, r_zoom, bool(np.all(pitch == 0)) and is_not_y, is_not_y)


def sphere2pose(pitch_deg, yaw_deg, radius, *, is_zoom: bool, rotation_only: bool,
                dtype=np.float32) -> np.ndarray:
    """[T] pitch, yaw (degrees) and radius -> relative c2w [T, 4, 4] float64.

    R = Ry(yaw) Rx(pitch); the centre orbits (0, 0, r): t = (-r cx sy, -r sx, r - r cx cy).
    rotation_only: t = 0. is_zoom (overrides rotation_only): R = I as sampled, t = (0, 0, r).
    dtype float32 is the reference bit for bit: inputs, deg->rad, sin, cos and t in float32, and
    Ry @ Rx in float64 (numpy promotes the float32 entries when it builds the matrices).
    dtype float64 evaluates the same formula in float64 throughout."""
    x, y, r = (np.asarray(v, dtype=dtype).reshape(-1) for v in (pitch_deg, yaw_deg, radius))  # [T] each
    sy, cy = np.sin(np.deg2rad(y)), np.cos(np.deg2rad(y))
    sx, cx = np.sin(np.deg2rad(x)), np.cos(np.deg2rad(x))
    z64, one64 = np.zeros(len(x)), np.ones(len(x))                                      # [T] each
    sy6, cy6, sx6, cx6 = (v.astype(np.float64) for v in (sy, cy, sx, cx))
    rot_y = np.stack([cy6, z64, sy6, z64, one64, z64, -sy6, z64, cy6], -1).reshape(-1, 3, 3)  # [T, 3, 3]
    rot_x = np.stack([one64, z64, z64, z64, cx6, sx6, z64, -sx6, cx6], -1).reshape(-1, 3, 3)  # [T, 3, 3]
    if is_zoom:
        t = np.stack([np.zeros_like(r), np.zeros_like(r), r], -1)                 # [T, 3]
    elif rotation_only:
        t = np.zeros((len(r), 3))                                                       # [T, 3]
    else:
        t = np.stack([-r * cx * sy, -r * sx, r - r * cx * cy], -1)                # [T, 3]
    c2w = np.tile(np.eye(4), (len(x), 1, 1))                                       # [T, 4, 4]
    c2w[:, :3, :3] = rot_y @ rot_x
    c2w[:, :3, 3] = t
    return c2w


def relative_poses(keys: TrajectoryKeys, T: int, *, rotation_only: bool = False,
                   r_zoom_keys=None, dtype=np.float32) -> np.ndarray:
    """`generate_traj_txt`: the virtual camera's c2w relative to the first source camera, [T, 4, 4]."""
    s = sample(keys, T, r_zoom_keys=r_zoom_keys)
    return sphere2pose(s.pitch, s.yaw, s.radius, is_zoom=s.is_zoom, rotation_only=rotation_only, dtype=dtype)


def dataset_reference_w2c(keys: TrajectoryKeys, T: int, radius: float, *, rotation_only: bool = False) -> np.ndarray:
    """The v2v dataset's saved `target_extrinsics` [T, 4, 4] float64 w2c (pipeline-spec 5.5):
    r keys scaled by the foreground radius, float32 sphere2pose, float64 inverse. Never rendered."""
    scaled = [v * radius for v in keys.r]
    rel = relative_poses(TrajectoryKeys(keys.pitch, keys.yaw, scaled), T,
                         rotation_only=rotation_only, r_zoom_keys=scaled)
    return np.linalg.inv(rel)


# ---------------------------------------------------------------------------------------------
# Composition with source poses (torch, as the renderer does it)

def source_c2w(w2c_3x4, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[N, 3, 4] w2c (extrinsic.txt) -> [N, 4, 4] c2w: cast to dtype first, complete, invert.
    float32 is what the reference renderer loads."""
    w2c = torch.as_tensor(np.asarray(w2c_3x4), dtype=dtype)                             # [N, 3, 4]
    if w2c.ndim != 3 or w2c.shape[1:] != (3, 4):
        raise SceneInputError(f"source poses: expected [N, 3, 4] w2c, got {tuple(w2c.shape)}")
    bottom = torch.tensor([0, 0, 0, 1], dtype=dtype).expand(len(w2c), 1, 4)             # [N, 1, 4]
    return torch.linalg.inv(torch.cat([w2c, bottom], dim=1))                      # [N, 4, 4]


def compose_targets(rel_c2w, src_c2w: torch.Tensor, *, relative_to_source: bool = False) -> torch.Tensor:
    """Target c2w [T, 4, 4] in src_c2w's dtype and device (`generate_target_c2ws`), init = src_0:

    default:            tgt_i = init^-1 rel_i  (fixed in the source world, anchored at frame 0)
    relative_to_source: tgt_i = (init^-1 src_i)(init^-1 rel_i), computed as the reference does,
                        inv(inv(init^-1 rel_i) inv(init^-1 src_i)); the camera rides on src_i.
    init^-1 (not init) is the reference's quirk; it only matters when src_0 is not the identity."""
    rel = torch.as_tensor(np.asarray(rel_c2w), dtype=src_c2w.dtype, device=src_c2w.device)  # [T, 4, 4]
    if rel.shape != src_c2w.shape:
        raise SceneInputError(f"relative poses {tuple(rel.shape)} and source poses {tuple(src_c2w.shape)} differ")
    init_inv = torch.linalg.inv(src_c2w[0])                                        # [4, 4]
    tgt = init_inv @ rel                                                           # [T, 4, 4]
    if relative_to_source:
        src_rel = init_inv @ src_c2w                                               # [T, 4, 4]
        tgt = torch.linalg.inv(torch.linalg.inv(tgt) @ torch.linalg.inv(src_rel))
    return tgt


def target_c2w(keys: TrajectoryKeys, src_c2w: torch.Tensor, *, relative_to_source: bool = False,
               rotation_only: bool = False) -> torch.Tensor:
    """The renderer's targets for a (possibly freeze-extended) source pose list: T = len(src_c2w)."""
    rel = relative_poses(keys, len(src_c2w), rotation_only=rotation_only)
    return compose_targets(rel, src_c2w, relative_to_source=relative_to_source)


# ---------------------------------------------------------------------------------------------
# Full-pose camera paths (recorded runs): JSON
#
#   {"format": "roam.camera_path", "version": 1, "axes": "opencv",
#    "frames": [{"c2w": [[r00, r01, r02, tx], [r10, r11, r12, ty], [r20, r21, r22, tz], [0, 0, 0, 1]],
#                "source_index": 0}, ...]}
#
# One entry per output frame. c2w maps OpenCV camera coordinates (+x right, +y down, +z forward)
# to world coordinates, row-major, column-vector points. "source_index" (optional, in every frame
# or in none) is the source video frame shown at that output frame (pause, scrub, ping-pong).

POSE_JSON_FORMAT, POSE_JSON_VERSION = "roam.camera_path", 1


def write_pose_json(path: str | os.PathLike, c2w, source_index=None) -> None:
    """Write [T, 4, 4] c2w (and optional [T] source indices) as a camera-path JSON file."""
    c2w = np.asarray(c2w, dtype=np.float64)                                             # [T, 4, 4]
    _check_poses(c2w, source_index, os.fspath(path))
    frames = [{"c2w": m.tolist()} for m in c2w]
    for frame, idx in zip(frames, source_index if source_index is not None else []):
        frame["source_index"] = int(idx)
    doc = {"format": POSE_JSON_FORMAT, "version": POSE_JSON_VERSION, "axes": "opencv", "frames": frames}
    write_atomic(path, (json.dumps(doc, indent=1) + "\n").encode())


def read_pose_json(path: str | os.PathLike) -> tuple[np.ndarray, list[int] | None]:
    """-> (c2w [T, 4, 4] float64, source indices [T] or None). Errors are one line naming the file."""
    where = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise SceneInputError(f"camera path file {where!r} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SceneInputError(f"{where}: not a readable JSON camera path ({err})") from None
    if not isinstance(doc, dict) or doc.get("format") != POSE_JSON_FORMAT or doc.get("version") != POSE_JSON_VERSION:
        raise SceneInputError(f"{where}: expected \"format\": \"{POSE_JSON_FORMAT}\", \"version\": {POSE_JSON_VERSION}")
    if doc.get("axes") != "opencv" or not isinstance(doc.get("frames"), list) or not doc["frames"]:
        raise SceneInputError(f"{where}: expected \"axes\": \"opencv\" and a non-empty \"frames\" list")
    frames = doc["frames"]
    if not all(isinstance(fr, dict) and "c2w" in fr for fr in frames):
        raise SceneInputError(f"{where}: every frame needs a \"c2w\" 4x4 matrix")
    try:
        c2w = np.array([fr["c2w"] for fr in frames], dtype=np.float64)                  # [T, 4, 4]
    except (TypeError, ValueError):
        raise SceneInputError(f"{where}: every \"c2w\" must be a 4x4 list of numbers") from None
    indices = [fr.get("source_index") for fr in frames]
    source_index = None if all(i is None for i in indices) else indices
    _check_poses(c2w, source_index, where)
    return c2w, source_index


def _check_poses(c2w: np.ndarray, source_index, where: str) -> None:
    if c2w.ndim != 3 or c2w.shape[1:] != (4, 4) or len(c2w) == 0:
        raise SceneInputError(f"{where}: expected c2w of shape [T, 4, 4] with T >= 1, got {c2w.shape}")
    if not np.isfinite(c2w).all():
        raise SceneInputError(f"{where}: c2w contains NaN or inf")
    rot = c2w[:, :3, :3]
    ortho = np.abs(rot @ rot.transpose(0, 2, 1) - np.eye(3)).max(axis=(1, 2))           # [T]
    bad = np.flatnonzero((np.abs(c2w[:, 3] - [0, 0, 0, 1]).max(axis=1) > 1e-6) | (ortho > 1e-4)
                         | (np.linalg.det(rot) <= 0))
    if len(bad):
        raise SceneInputError(f"{where}: frame {bad[0]}: c2w is not a rigid transform "
                              f"(rotation must be orthonormal with det +1, last row 0 0 0 1)")
    if source_index is not None:
        ok = len(source_index) == len(c2w) and all(
            isinstance(i, (int, np.integer)) and not isinstance(i, bool) and i >= 0 for i in source_index)
        if not ok:
            raise SceneInputError(f"{where}: \"source_index\" must be a non-negative integer in every frame or in none")
