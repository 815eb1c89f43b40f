"""benchmarks/display_gaps: a real-time headless play with the display's calls timed, and the report."""
import subprocess
import sys

from tests.reliability import REPO, cache_flags


def test_it_times_a_real_session_and_names_what_the_late_frames_waited_for(tmp_path, cache):
    done = subprocess.run([sys.executable, "-m", "benchmarks.display_gaps", "--seconds", "3", "--out",
                           str(tmp_path / "out"), *cache_flags(cache)], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    head = next(line for line in lines if "displayed intervals" in line)
    assert int(head.split()[0]) > 20                             # 3 s of displayed frames were timed
    assert any(line.startswith("largest share of each long interval") for line in lines)
    timed = {line.split()[0] for line in lines if line.startswith("  ")}
    assert {"WorldView.render", "HeadlessPresenter.present_texture", "Session._tick"} <= timed
    assert (tmp_path / "out" / "telemetry.json").is_file()
