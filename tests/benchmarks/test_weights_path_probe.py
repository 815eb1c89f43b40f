"""benchmarks/weights_path_probe.py, the pieces of the device script: the video it builds, the encoder
probe on the tiny tree, and the table it makes of play's summaries."""
import json

import av

from benchmarks.weights_path_probe import probe_encoders, summary_rows, write_video


def test_video_is_a_real_h264_clip(tmp_path):
    write_video(tmp_path / "walk.mp4", seconds=1.0)
    with av.open(str(tmp_path / "walk.mp4")) as f:
        frames = [fr.to_ndarray(format="rgb24") for fr in f.decode(video=0)]
        assert f.streams.video[0].codec_context.name == "h264"
    assert len(frames) == 24 and frames[0].shape == (480, 832, 3)
    assert (frames[0] != frames[-1]).mean() > 0.5                             # the camera pans


def test_encoder_probe_loads_and_runs_umt5_from_the_tree(tiny_checkpoints):
    result = probe_encoders(tiny_checkpoints, "cpu")
    assert result["prompt_embeds"] == [1, 512, 64] and result["umt5_load_s"] > 0
    assert ("caption" in result) != ("florence_error" in result)


def test_summary_has_one_row_per_run_with_its_refiner(tmp_path):
    summary = {"achieved_fps": 41.96, "control_to_photon_ms": {"p50": 61.2, "p95": 88.9}, "peak_gpu_mem_gib": 21.5,
               "time_to_first_frame_s": 6.25, "late_frames": 2}
    (tmp_path / "auto.log").write_text(f"roam: DiT refiner (weights verified)\nnoise\n{json.dumps(summary)}\n")
    (tmp_path / "broken.log").write_text("Traceback ...\n")
    rows = summary_rows([tmp_path / "auto.log", tmp_path / "broken.log"])
    assert rows[2] == "| auto | DiT refiner (weights verified) | 42.0 | 61 / 89 | 21.5 | 6.2 | 2 |"
    assert rows[3].startswith("| broken | ? | (no summary")
