"""`main.py bench` runs the whole generation block (render, encode, DiT, decode) and reports every stage."""
import json
import subprocess
import sys
from pathlib import Path

from benchmarks import perf_report

REPO = Path(__file__).resolve().parents[2]


def test_bench_cli_reports_every_stage(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "main.py", "bench", "--tiny", "--blocks", "4", "--warmup", "1",
                           "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(out.read_text())
    assert set(r["stage_ms"]) == {"render", "encode", "dit", "decode"}
    assert all(ms > 0 for ms in r["stage_ms"].values())
    assert abs(sum(r["stage_ms"].values()) - r["block_ms"]) < 0.05 * r["block_ms"]
    assert r["frames_per_block"] == 12 and "fps" in proc.stdout
    prepared = r["prepared"]                                  # blocks 1 and 3 were prepared ahead
    assert prepared["blocks"] == 2 and set(prepared["stage_ms"]) == set(r["stage_ms"]) and prepared["prepare_ms"] > 0
    assert "prepared ahead" in proc.stdout
    assert r["command"] == f"python3 main.py bench --tiny --blocks 4 --warmup 1 --json {out}" and r["date"]
    doc = tmp_path / "performance.md"                         # the run becomes a row of docs/performance.md
    perf_report.main(["--add", str(out), "--results", str(tmp_path / "results"), "--doc", str(doc)])
    row = next(line for line in doc.read_text().splitlines() if "main.py bench --tiny" in line)
    assert r["date"] in row and r["device"] in row and f"{r['fps']:.1f}" in row
