"""The GPU benchmark's smoke run: tiny model, 2 blocks, on CPU."""
import json

from benchmarks.dit_bench import main


def test_tiny_bench_runs_on_cpu(tmp_path, capsys):
    out = tmp_path / "bench.json"
    result = main(["--tiny", "--blocks", "2", "--json", str(out)])
    assert json.loads(out.read_text())["block_ms"] == result["block_ms"]
    assert len(result["block_ms"]) == 2 and all(ms > 0 for ms in result["block_ms"])
    assert result["median_block_ms"] == result["block_ms"][-1]
    assert result["fps"] == 12 / (result["median_block_ms"] / 1000)
    assert 0 < result["rel_diff_bf16_vs_fp32"] < 0.05        # bf16 rounding, not a broken model
    assert "median steady-state block" in capsys.readouterr().out
