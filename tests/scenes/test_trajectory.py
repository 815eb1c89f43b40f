"""Trajectory files, interpolation, sphere2pose and pose composition against the reference
fixtures (parity/geometry sections 1 and 2), plus the bad-input errors and the file writers."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy
import torch
from scipy.interpolate import UnivariateSpline

from scenes import trajectory as tj
from scenes.errors import SceneInputError
from scenes.frames import freeze_indices

REPO = Path(__file__).resolve().parents[2]


def keys_of(traj_fixture, name):
    return tj.TrajectoryKeys(**traj_fixture[name]["keys"])


def close(a, b, atol):
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    assert a.shape == b.shape
    err = (a - b).abs().max().item()
    assert err <= atol, f"max abs error {err:.3g} > {atol:g}"


# --- files -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["x_y_circle_cycle", "zoom_out_in"])
def test_shipped_files_hold_the_reference_keys(name, traj_fixture):
    keys = tj.read_keys(REPO / "traj" / f"{name}.txt")
    assert keys == keys_of(traj_fixture, name)
    assert (REPO / "traj" / f"{name}.txt").read_text() == tj.format_keys(keys)


def test_synthetic_files_parse(geometry_dir, traj_fixture):
    for path in sorted((geometry_dir / "traj").glob("*.txt")):
        assert tj.read_keys(path) == keys_of(traj_fixture, path.stem), path.name
        assert path.read_text() == tj.format_keys(tj.read_keys(path))     # same layout as ours


def test_total_angle_is_taken_on_raw_keys(traj_fixture):
    for name, t in traj_fixture.items():
        assert keys_of(traj_fixture, name).total_angle_deg() == t["total_angle_deg"], name


# --- interpolation ---------------------------------------------------------------------------

def test_spline_fit_matches_fitpack_diagnostics(traj_fixture):
    """Guards the scipy version: the smoothing spline picks the reference's knots and coefficients.
    scipy 1.18 replaced the Fortran FITPACK and picks other knots (up to 2 degrees off), hence the
    pin in requirements.txt."""
    for name, t in traj_fixture.items():
        for line, spline in t["spline"].items():
            if spline is None:
                assert t["line_modes"][line] == "linear"
                continue
            keys = t["keys"][line]
            fit = UnivariateSpline(np.linspace(0, 1, len(keys)), keys, k=3)
            np.testing.assert_array_equal(fit.get_knots(), spline["knots"], err_msg=(
                f"{name} {line}: scipy {scipy.__version__} fits other knots than the reference's FITPACK"))
            np.testing.assert_allclose(fit.get_coeffs(), spline["coeffs"], rtol=0, atol=1e-12)
            assert math.isclose(fit.get_residual(), spline["residual"], rel_tol=1e-9, abs_tol=1e-20)


def test_sampled_arrays_are_bit_exact(traj_fixture):
    checked = 0
    for name, t in traj_fixture.items():
        keys = keys_of(traj_fixture, name)
        for T, want in t["frames"].items():
            if "error" in want:
                continue
            s = tj.sample(keys, int(T))
            for got, ref in ((s.pitch, want["pitch"]), (s.yaw, want["yaw"]), (s.r, want["r"]),
                             (tj.interpolate_line(keys.r, int(T)), want["r_before_endpoint_pin"])):
                assert got.dtype == np.float64
                np.testing.assert_array_equal(got, np.array(ref), err_msg=f"{name} T={T}")
            assert (s.is_zoom, s.is_not_y) == (want["is_zoom"], want["is_not_y"]), f"{name} T={T}"
            assert ("r_zoom" if s.is_not_y else "r") == want["radius_list_used"]
            f32 = want["sphere2pose_inputs_f32"]
            for got, ref in ((s.pitch, f32["pitch"]), (s.yaw, f32["yaw"]), (s.radius, f32["r"])):
                np.testing.assert_array_equal(got.astype(np.float32), np.array(ref, dtype=np.float32))
            checked += 1
    assert checked == 30


def test_zero_frames_is_a_clear_error(traj_fixture):
    """The reference crashes at T = 0 (IndexError or ValueError); we say what is wrong."""
    for name, t in traj_fixture.items():
        assert "error" in t["frames"]["0"]
        with pytest.raises(SceneInputError, match="T >= 1"):
            tj.sample(keys_of(traj_fixture, name), 0)
        with pytest.raises(SceneInputError, match="T >= 1"):
            tj.relative_poses(keys_of(traj_fixture, name), 0)


def test_one_frame_of_a_yaw_sweep_is_a_dolly(traj_fixture):
    rel = tj.relative_poses(keys_of(traj_fixture, "synth_yaw_sweep"), 1)
    np.testing.assert_array_equal(rel[0], [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1], [0, 0, 0, 1]])


# --- poses -----------------------------------------------------------------------------------

def _rel_cases(poses, family):
    for key in (k for k in poses if k.startswith(family + "/")):
        _, name, T, rot = key.split("/")
        yield key, name, int(T[1:]), rot == "rot1"


def test_relative_poses_float32_match_the_reference(poses, traj_fixture):
    cases = list(_rel_cases(poses, "rel"))
    assert len(cases) == 60
    for key, name, T, rot in cases:
        got = tj.relative_poses(keys_of(traj_fixture, name), T, rotation_only=rot)
        close(got, poses[key], 1e-7)                     # float32 trig may differ by an ulp elsewhere


def test_relative_poses_float64(poses, traj_fixture):
    cases = list(_rel_cases(poses, "rel_f64"))
    assert len(cases) == 60
    for key, name, T, rot in cases:
        got = tj.relative_poses(keys_of(traj_fixture, name), T, rotation_only=rot, dtype=np.float64)
        close(got, poses[key], 1e-12)
        close(got, poses[key.replace("rel_f64/", "rel/")], 2e-7)


def test_source_poses_load_as_the_renderer_does(poses, geometry_dir):
    w2c = np.loadtxt(geometry_dir / "source_extrinsic.txt").reshape(-1, 3, 4)
    np.testing.assert_array_equal(w2c, poses["src/w2c_3x4"].numpy())
    c2w32 = tj.source_c2w(w2c)
    assert c2w32.dtype == torch.float32
    close(c2w32, poses["src/c2w_f32"], 2e-6)              # LAPACK builds differ in the last bits
    close(torch.linalg.inv(c2w32), poses["src/w2c_f32"], 2e-6)
    close(tj.source_c2w(w2c, torch.float64), poses["src/c2w_f64"], 1e-12)


def test_composed_targets(poses, traj_fixture):
    src32, src64 = poses["src/c2w_f32"], poses["src/c2w_f64"]
    keys = sorted(k for k in poses if k.startswith("tgt/") and k.endswith("/c2w_f32"))
    assert len(keys) == 20
    for key in keys:
        _, name, combo, _ = key.split("/")
        rts, rot = combo.startswith("rts1"), combo.endswith("rot1")
        tgt = tj.target_c2w(keys_of(traj_fixture, name), src32, relative_to_source=rts, rotation_only=rot)
        close(tgt, poses[key], 2e-6)
        close(torch.linalg.inv(tgt), poses[key.replace("c2w_f32", "w2c_f32")], 2e-6)
        tgt64 = tj.compose_targets(poses[f"rel/{name}/T49/rot{int(rot)}"].numpy(), src64, relative_to_source=rts)
        close(tgt64, poses[key.replace("c2w_f32", "c2w_f64")], 1e-12)
        close(torch.linalg.inv(tgt64), poses[key.replace("c2w_f32", "w2c_f64")], 1e-12)


def test_freeze_feeds_the_composition(poses, traj_fixture):
    for rts in (0, 1):
        pre = f"tgt_freeze/x_y_circle_cycle/rts{rts}_rot0_ff20_fr6/"
        src = poses["src/c2w_f32"][freeze_indices(49, 6, 20)]
        close(src, poses[pre + "src_c2w_f32"], 0)
        close(torch.linalg.inv(src), poses[pre + "src_w2c_f32"], 2e-6)
        tgt = tj.target_c2w(keys_of(traj_fixture, "x_y_circle_cycle"), src, relative_to_source=bool(rts))
        close(tgt, poses[pre + "c2w_f32"], 2e-6)
        close(torch.linalg.inv(tgt), poses[pre + "w2c_f32"], 2e-6)


def test_target_zero_is_init_inverse_not_the_source_view(poses, traj_fixture):
    """The reference composes with init^-1; with a non-identity first pose, frame 0 is not the source."""
    src = poses["src/c2w_f32"]
    tgt = tj.target_c2w(keys_of(traj_fixture, "synth_yaw_sweep"), src)
    close(tgt[0], torch.linalg.inv(src[0]), 1e-6)
    assert (tgt[0] - src[0]).abs().max() > 0.05


def test_dataset_reference_extrinsics(poses, traj_fixture, frames_fixture):
    cases = [c for c in frames_fixture["adaptive"] if "reference_extrinsics_key" in c]
    assert {c["reference_extrinsics_key"] for c in cases} == {k for k in poses if k.startswith("dataset_w2c/")}
    for c in cases:
        got = tj.dataset_reference_w2c(keys_of(traj_fixture, c["trajectory"]), c["reference_extrinsics_frames"],
                                       c["reference_extrinsics_radius_scale"])
        close(got, poses[c["reference_extrinsics_key"]], 1e-9)


# --- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, match", [
    ("0 1\n0 1\n", r"expected 3 lines .* found 2"),
    ("", r"expected 3 lines .* found 0"),
    ("0 1\n\n1 1\n", r"line 2 \(yaw\): empty line"),
    ("0 1\n0 x1\n1 1\n", r"line 2 \(yaw\): 'x1' is not a number"),
    ("0 1\n0 1\n1 nan\n", r"line 3 \(r\): .*finite"),
    ("0 inf\n0 1\n1 1\n", r"line 1 \(pitch\): .*finite"),
    ("5\n0 1\n1 1\n", r"line 1 \(pitch\): needs at least 2 keyframes"),
])
def test_bad_trajectory_files(tmp_path, text, match):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(SceneInputError, match=match) as err:
        tj.read_keys(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_trajectory_file(tmp_path):
    with pytest.raises(SceneInputError, match=r"trajectory file .*nope\.txt.* not found"):
        tj.read_keys(tmp_path / "nope.txt")


def test_extra_lines_are_ignored_as_in_the_reference(tmp_path):
    (tmp_path / "t.txt").write_text("0 1\n0 2\n1 1\nnot a number\n")
    assert tj.read_keys(tmp_path / "t.txt") == tj.TrajectoryKeys((0, 1), (0, 2), (1, 1))


def test_write_keys_round_trips_exactly(tmp_path):
    rng = np.random.default_rng(0)
    keys = tj.TrajectoryKeys(rng.normal(size=7) * 30, (0.0, -0.0, 1e-300, 12.5), rng.normal(size=3))
    tj.write_keys(tmp_path / "rec.txt", keys)
    assert tj.read_keys(tmp_path / "rec.txt") == keys
    assert (tmp_path / "rec.txt").read_text().splitlines()[1] == "0 -0 1e-300 12.5"
    assert [p.name for p in tmp_path.iterdir()] == ["rec.txt"]          # no temporary left behind


# --- full-pose JSON --------------------------------------------------------------------------

def test_pose_json_round_trip(tmp_path, poses):
    c2w = poses["src/c2w_f64"].numpy()
    tj.write_pose_json(tmp_path / "a.json", c2w, source_index=list(range(len(c2w))))
    got, idx = tj.read_pose_json(tmp_path / "a.json")
    np.testing.assert_array_equal(got, c2w)
    assert idx == list(range(len(c2w)))
    tj.write_pose_json(tmp_path / "b.json", c2w[:3])
    got, idx = tj.read_pose_json(tmp_path / "b.json")
    assert idx is None and got.shape == (3, 4, 4)
    doc = json.loads((tmp_path / "b.json").read_text())
    assert (doc["format"], doc["version"], doc["axes"]) == ("roam.camera_path", 1, "opencv")


def _doc(frames):
    return {"format": "roam.camera_path", "version": 1, "axes": "opencv", "frames": frames}


@pytest.mark.parametrize("content, match", [
    ("{not json", "not a readable JSON"),
    (json.dumps({"format": "other", "version": 1}), "expected \"format\""),
    (json.dumps(_doc([])), "non-empty"),
    (json.dumps(_doc([{"c2w": [[1, 0, 0], [0, 1, 0]]}])), r"shape \[T, 4, 4\]"),
    (json.dumps(_doc([{"c2w": np.diag([2.0, 1, 1, 1]).tolist()}])), "frame 0: c2w is not a rigid"),
    (json.dumps(_doc([{"c2w": np.eye(4).tolist(), "source_index": 0}, {"c2w": np.eye(4).tolist()}])),
     "source_index"),
    (json.dumps(_doc([{"c2w": np.eye(4).tolist(), "source_index": -1}])), "source_index"),
])
def test_bad_pose_json(tmp_path, content, match):
    (tmp_path / "p.json").write_text(content)
    with pytest.raises(SceneInputError, match=match) as err:
        tj.read_pose_json(tmp_path / "p.json")
    assert "p.json" in str(err.value) and "\n" not in str(err.value)


def test_missing_pose_json(tmp_path):
    with pytest.raises(SceneInputError, match="not found"):
        tj.read_pose_json(tmp_path / "none.json")
