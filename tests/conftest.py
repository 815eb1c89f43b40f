"""Shared test setup: CPU-only by default, SDL dummy video, parity fixtures located beside the repo."""
import os
from pathlib import Path

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

REPO = Path(__file__).resolve().parent.parent
PARITY = Path(os.environ.get("ROAM_PARITY_DIR", REPO.parent / "shared" / "parity"))


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA device (run with -m gpu on the device)")


def pytest_collection_modifyitems(config, items):
    import torch
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(pytest.mark.skip(reason="no CUDA device"))


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    """The golden-tensor folder ../shared/parity; tests skip with a reason when it is absent."""
    if not PARITY.is_dir():
        pytest.skip(f"parity fixtures not found at {PARITY} (set ROAM_PARITY_DIR)")
    return PARITY


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    """A scene cache holding the tiny sample scene (tests/reliability.py TINY) and its fused world,
    built once for the reliability suites' subprocesses (pass `cache_flags(cache)`). They may add to
    it; none may damage it."""
    from tests.reliability import build_tiny_cache
    return build_tiny_cache(tmp_path_factory.mktemp("tiny-cache"))


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> Path:
    """A complete checkpoint tree at the tiny size (benchmarks/fake_checkpoints.py), written once per
    session. Read-only: a test that breaks files works on a copy (shutil.copytree)."""
    from benchmarks.fake_checkpoints import SIZES, write_tree
    root = tmp_path_factory.mktemp("tiny_checkpoints") / "checkpoints"
    write_tree(root, SIZES["tiny"], seed=0, device="cpu", log=lambda msg: None)
    return root
