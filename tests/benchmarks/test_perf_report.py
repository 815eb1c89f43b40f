"""benchmarks/perf_report.py: docs/performance.md's tables are made from the run files in docs/results/.
The real bench and play outputs go through it in test_pipeline_bench.py and test_session.py."""
import json
from pathlib import Path

import pytest

from benchmarks import perf_report

REPO = Path(__file__).resolve().parents[2]


def test_performance_doc_is_up_to_date_with_its_result_files():
    assert perf_report.main(["--check"]) == 0, "run python3 -m benchmarks.perf_report and commit docs/performance.md"


def test_regenerating_keeps_the_hand_written_text_and_replaces_the_tables(tmp_path):
    doc = tmp_path / "performance.md"
    doc.write_text(f"# Performance\n\nintro\n\n{perf_report.BEGIN}\nstale table\n{perf_report.END}\n\n## Earlier\n\nkept\n")
    assert perf_report.main(["--results", str(tmp_path / "results"), "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert "stale table" not in text and "No result files yet." in text
    assert text.startswith("# Performance\n\nintro\n") and text.endswith("## Earlier\n\nkept\n")
    assert perf_report.main(["--check", "--results", str(tmp_path / "results"), "--doc", str(doc)]) == 0


def test_a_file_that_is_no_run_result_is_a_one_line_error(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"hello": 1}))
    with pytest.raises(SystemExit, match="give `main.py bench --json` output or a play session's telemetry.json"):
        perf_report.main(["--add", str(bad), "--results", str(tmp_path / "r"), "--doc", str(tmp_path / "p.md")])
    assert not (tmp_path / "r").exists() or not list((tmp_path / "r").iterdir())
