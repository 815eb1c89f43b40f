"""The benchmarks as a user meets them: `main.py bench` on a machine without CUDA stops at once with
one line, and the kiosk soak runs the kiosk, samples its memory and stops it with SIGTERM."""
import json
import subprocess
import sys

import pytest
import torch

from tests.reliability import REPO, cache_overrides, decoded_frames, leftovers, one_line_error


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_bench_without_cuda_stops_at_once_with_one_line():
    """Not the 12-14 GB full-size model built on the CPU over minutes (dit_bench does the same)."""
    done = subprocess.run([sys.executable, "main.py", "bench"], cwd=REPO, capture_output=True, text=True, timeout=60)
    one_line_error(done, "needs a CUDA GPU", "--tiny")


def test_the_kiosk_soak_samples_memory_and_stops_the_kiosk_with_sigterm(tmp_path, cache):
    """`play --kiosk --headless --realtime` runs until a service manager's SIGTERM, then finishes its files."""
    sets = [a for o in cache_overrides(cache) for a in ("--set", o)]
    done = subprocess.run([sys.executable, "-m", "benchmarks.kiosk_soak", "--minutes", "0.05", "--interval-s", "1",
                           "--out", str(tmp_path / "out"), "--json", str(tmp_path / "soak.json"), *sets],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads((tmp_path / "soak.json").read_text())
    assert result["exit_code"] == 143 and len(result["samples"]) >= 3 and result["rss_end_mb"] > 50
    assert "RSS MB" in done.stdout and result["frames_presented"] > 0 and result["displayed_fps"] > 0
    assert decoded_frames(tmp_path / "out" / "video.mp4") > 0 and (tmp_path / "out" / "telemetry.json").is_file()
    assert not leftovers(tmp_path / "out")
