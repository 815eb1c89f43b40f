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


def test_compare_eager_reports_every_block_and_is_zero_for_the_same_path():
    """The optimised path compared with itself (eager, float64 RoPE) must agree exactly; the float32
    RoPE path may differ, but only by bf16 rounding."""
    same = main(["--tiny", "--blocks", "2", "--compare-eager", "--set", "model.rope=float64"])
    assert same["rel_diff_vs_eager_bf16_per_block"] == [0.0, 0.0]
    other = main(["--tiny", "--blocks", "2", "--compare-eager", "--seed", "3", "--set", "model.seed=5"])
    assert len(other["rel_diff_vs_eager_bf16_per_block"]) == 2
    assert all(0 <= d < 0.02 for d in other["rel_diff_vs_eager_bf16_per_block"])


def test_profile_classes_inductor_kernels_as_other_whatever_op_they_are_named_after():
    from benchmarks.dit_bench import kernel_class
    assert kernel_class("cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_7") == "attention"
    assert kernel_class("nvjet_sm90_tst_192x192_64x4_1x1_h_bz_coopB_gelubias_TNN") == "matmul"
    assert kernel_class("triton_poi_fused__scaled_dot_product_cudnn_attention__to_copy_transpose_view_3") == "other"
    assert kernel_class("triton_red_fused__scaled_mm__to_copy_abs_amax_clamp_div_gelu_t_view_8") == "other"
