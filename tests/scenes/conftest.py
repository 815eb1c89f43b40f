"""Loaders of the geometry parity fixtures (../shared/parity/geometry, README.md there)."""
import json

import pytest
from safetensors.torch import load_file


@pytest.fixture(scope="session")
def geometry_dir(parity_dir):
    path = parity_dir / "geometry"
    if not path.is_dir():
        pytest.skip(f"geometry fixtures not found at {path}")
    return path


@pytest.fixture(scope="session")
def traj_fixture(geometry_dir):
    return json.loads((geometry_dir / "trajectory_interp.json").read_text())["trajectories"]


@pytest.fixture(scope="session")
def frames_fixture(geometry_dir):
    return json.loads((geometry_dir / "frames.json").read_text())


@pytest.fixture(scope="session")
def poses(geometry_dir):
    return load_file(geometry_dir / "poses.safetensors")


@pytest.fixture(scope="session")
def warper_golden(geometry_dir):
    return load_file(geometry_dir / "warper.safetensors")


@pytest.fixture(scope="session")
def warper_meta(geometry_dir):
    return json.loads((geometry_dir / "warper.json").read_text())


@pytest.fixture(scope="session")
def ply_golden(geometry_dir):
    return load_file(geometry_dir / "ply_render.safetensors")


@pytest.fixture(scope="session")
def codec_fixture(geometry_dir):
    return json.loads((geometry_dir / "depth_codec.json").read_text())
