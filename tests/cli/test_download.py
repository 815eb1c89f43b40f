"""main.py download against a Hub served on 127.0.0.1 by the test (tests/fake_hub.py), with the
tiny fake checkpoint tree as the Hub's files: each part lands in the reference's layout and verifies,
--only fetches its part alone, a verified file is not fetched again, and a transfer killed half-way
resumes where it stopped."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fake_hub import FakeHub

REPO = Path(__file__).resolve().parents[2]
INSPATIO = "InSpatio-World-1.3B/InSpatio-World-1.3B.safetensors"


@pytest.fixture(scope="module")
def source(tiny_checkpoints):
    """The session's tiny tree (read only): what the fake Hub serves."""
    return tiny_checkpoints


def folder_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def hub(source):
    wan = folder_files(source / "Wan2.1-T2V-1.3B")
    hub = FakeHub({
        "inspatio/world": {"InSpatio-World-1.3B.safetensors": (source / INSPATIO).read_bytes(),
                           "InSpatio-World.safetensors": b"a larger model roam does not use", "README.md": b"#"},
        "Wan-AI/Wan2.1-T2V-1.3B": {**wan, "README.md": b"#", "assets/logo.png": b"png"},
        "depth-anything/DA3NESTED-GIANT-LARGE": {**folder_files(source / "DA3"), "README.md": b"#"},
        "florence-community/Florence-2-large": {**folder_files(source / "Florence-2-large"), "README.md": b"#"},
    }, raw={"taew2_1.pth": (source / "taehv/taew2_1.pth").read_bytes()})
    yield hub
    hub.close()


def download(hub, tmp_path, *args, wait=True):
    env = {**os.environ, "HF_ENDPOINT": hub.url, "ROAM_TAEHV_URL": f"{hub.url}/raw/taew2_1.pth",
           "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1"}
    cmd = [sys.executable, "main.py", "download", "--dir", str(tmp_path / "checkpoints"), *args]
    if not wait:
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_only_fetches_its_part_then_all_parts_verify_and_a_rerun_fetches_nothing(hub, source, tmp_path):
    proc = download(hub, tmp_path, "--only", "tae")
    assert proc.returncode == 0, proc.stderr
    assert [path for _, path, _ in hub.log] == ["/raw/taew2_1.pth"]
    assert "tae (complete)" in proc.stdout and "dit (missing)" in proc.stdout
    assert "get it:     python main.py download --only dit   (about 23.3 GB)" in proc.stdout

    hub.log.clear()
    proc = download(hub, tmp_path)
    assert proc.returncode == 0, proc.stderr
    ckpt = tmp_path / "checkpoints"
    for part in ("dit", "depth", "captions", "tae"):
        assert f"{part} (complete)" in proc.stdout
    assert "DiT refiner: ready" in proc.stdout
    assert not [p for _, p, _ in hub.log if p.endswith(("README.md", "logo.png", "InSpatio-World.safetensors"))]
    assert not hub.gets("taew2_1.pth")                                   # verified already: not fetched again
    for rel in (INSPATIO, "Wan2.1-T2V-1.3B/models_t5_umt5-xxl-enc-bf16.pth", "DA3/model.safetensors",
                "Florence-2-large/model.safetensors", "taehv/taew2_1.pth"):
        assert (ckpt / rel).read_bytes() == (source / rel).read_bytes()

    hub.log.clear()
    proc = download(hub, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not [path for method, path, _ in hub.log if "/resolve/" in path]


def test_a_file_already_there_is_checked_not_fetched(hub, source, tmp_path):
    vae = tmp_path / "checkpoints/Wan2.1-T2V-1.3B/Wan2.1_VAE.pth"
    vae.parent.mkdir(parents=True)
    vae.write_bytes((source / "Wan2.1-T2V-1.3B/Wan2.1_VAE.pth").read_bytes())       # copied in by hand
    proc = download(hub, tmp_path, "--only", "dit")
    assert proc.returncode == 0, proc.stderr
    assert not hub.gets("Wan2.1_VAE.pth") and hub.gets("config.json")


def test_a_killed_transfer_resumes_where_it_stopped(hub, source, tmp_path):
    data = (source / "DA3/model.safetensors").read_bytes()                 # 137 MB: written in 10 MB chunks
    hub.stall_after["/model.safetensors"] = len(data) * 3 // 4
    proc = download(hub, tmp_path, "--only", "depth", wait=False)
    try:
        assert hub.sent.wait(120), "the transfer never started"
        partial = wait_for_partial(tmp_path / "checkpoints/DA3/model.safetensors.part")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    hub.release.set()
    kept = partial.stat().st_size
    assert 0 < kept < len(data) and not (tmp_path / "checkpoints/DA3/model.safetensors").exists()

    proc = download(hub, tmp_path, "--only", "depth")
    assert proc.returncode == 0, proc.stderr
    assert hub.gets("DA3NESTED-GIANT-LARGE/resolve/main/model.safetensors")[-1] == f"bytes={kept}-", "\n".join(map(str, hub.log))
    assert (tmp_path / "checkpoints/DA3/model.safetensors").read_bytes() == data
    assert "depth (complete)" in proc.stdout


def wait_for_partial(part: Path, timeout_s: float = 60) -> Path:
    """The partial file, once it holds bytes and stopped growing."""
    deadline, last = time.monotonic() + timeout_s, -1
    while time.monotonic() < deadline:
        size = part.stat().st_size if part.exists() else 0
        if size and size == last:
            return part
        last = size
        time.sleep(0.5)
    raise AssertionError(f"{part} never held bytes")


def test_a_server_that_is_gone_or_a_repository_that_is_not_there_is_one_line(hub, tmp_path):
    del hub.repos["depth-anything/DA3NESTED-GIANT-LARGE"]                      # the listing is a 404
    proc = download(hub, tmp_path, "--only", "depth")
    hub.close()
    gone = download(hub, tmp_path, "--only", "tae")
    for proc, where in ((proc, "depth-anything/DA3NESTED-GIANT-LARGE"), (gone, "taehv/taew2_1.pth")):
        assert proc.returncode == 2
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith(f"roam: error: download of {where} failed (") and last.endswith("it resumes")


def test_without_huggingface_hub_one_line_names_the_install(tmp_path):
    code = ("import sys; sys.modules['huggingface_hub'] = None; import main; "
            f"sys.exit(main.main(['download', '--dir', {str(tmp_path)!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("roam: error: main.py download needs huggingface_hub: "
                                   "pip install -r requirements-download.txt")
