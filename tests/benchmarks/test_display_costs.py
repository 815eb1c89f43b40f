"""benchmarks/display_costs: the per-call costs docs/performance.md quotes, measured on a sample scene."""
import re
import subprocess
import sys

from tests.reliability import REPO, cache_flags


def test_it_times_each_piece_on_the_sample(cache):
    done = subprocess.run([sys.executable, "-m", "benchmarks.display_costs", "--repeats", "2", *cache_flags(cache)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = dict(re.findall(r"^(.+?):\s+([\d.]+) ms", done.stdout, re.M))
    for piece in ("static mask, expanded and cleaned", "rig prediction, 12 frames 0.7 s ahead",
                  "rig prediction steering to a goal (the demo walk)", "displayed-pose telemetry, a tick and a frame",
                  "world view, one displayed frame", "layer upload, colour and inverse depth",
                  "read-back of a displayed frame", "x264 ultrafast", "x264 veryfast"):
        assert float(figures[piece]) > 0, (piece, done.stdout)
