"""Pieces of the official-weights device run (benchmarks/weights_path_device.sh):

    python -m benchmarks.weights_path_probe video OUT.mp4 [--seconds 5]
        a short real video (H.264, 832 x 480, 24 fps, a textured scene under a panning camera)
    python -m benchmarks.weights_path_probe encoders CHECKPOINT_DIR [--device cuda]
        load and run the two encoders `build` uses, as build loads them: Florence-2 captioning one
        frame and umT5 encoding the caption; prints one JSON line with each one's load time, run time
        and peak GPU memory
    python -m benchmarks.weights_path_probe summary RUN.log [RUN.log ...]
        the JSON summaries `play` printed, one table row per run
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def write_video(path: Path, seconds: float, width: int = 832, height: int = 480, fps: int = 24) -> None:
    """A textured ground and wall under a slow pan: enough structure for depth and captions."""
    import av
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (height, width * 2, 3), dtype=np.uint8)
    rows = np.arange(height)[:, None]
    texture[rows[:, 0] > height // 2] //= 2                                  # darker ground
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(int(seconds * fps)):
            shift = int(i * width / (seconds * fps))
            frame = np.ascontiguousarray(texture[:, shift:shift + width])   # [H, W, 3]
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())


def timed(fn):
    import torch
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    value = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    return value, time.perf_counter() - start, peak


def probe_encoders(root: Path, device: str) -> dict:
    """Florence-2 captioning one frame, then umT5 encoding the caption (a fixed prompt when Florence-2
    fails, whose error is reported): seconds and peak GPU memory of each."""
    import torch
    from model.text import load_text_encoder
    from scenes.captions import CaptionError, caption_frame
    frame = np.zeros((480, 832, 3), np.uint8)
    result = {"device": device}
    try:
        caption, seconds, peak = timed(lambda: caption_frame(frame, root / "Florence-2-large", device))
        result.update(florence_load_and_caption_s=round(seconds, 2), florence_peak_gib=peak, caption=caption)
    except CaptionError as e:
        caption, result["florence_error"] = "", str(e)[:300]
    encoder, load_s, load_peak = timed(lambda: load_text_encoder(root, device=device, dtype=torch.bfloat16))
    embeds, encode_s, encode_peak = timed(lambda: encoder(caption or "a room with a table and a window"))
    result.update(umt5_load_s=round(load_s, 2), umt5_load_peak_gib=load_peak, umt5_encode_s=round(encode_s, 3),
                  umt5_encode_peak_gib=encode_peak, prompt_embeds=list(embeds.shape))
    return result


def summary_rows(logs: list[Path]) -> list[str]:
    """One row per play log: its refiner line and the JSON summary play printed last."""
    rows = ["| run | refiner | fps | control-to-photon p50 / p95 ms | peak GPU GiB | first frame s | late |",
            "|---|---|---|---|---|---|---|"]
    for log in logs:
        lines = log.read_text().splitlines()
        refiner = next((l.removeprefix("roam: ") for l in lines if l.startswith("roam: ") and "refiner" in l), "?")
        summaries = [json.loads(l) for l in lines if l.startswith("{") and "achieved_fps" in l]
        if not summaries:
            rows.append(f"| {log.stem} | {refiner} | (no summary: see {log}) |")
            continue
        s, c2p = summaries[-1], summaries[-1].get("control_to_photon_ms") or {}
        rows.append(f"| {log.stem} | {refiner} | {s['achieved_fps']:.1f} | {c2p.get('p50', 0):.0f} / "
                    f"{c2p.get('p95', 0):.0f} | {s.get('peak_gpu_mem_gib')} | {s.get('time_to_first_frame_s', 0):.1f} | "
                    f"{s.get('late_frames')} |")
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.weights_path_probe")
    sub = p.add_subparsers(dest="what", required=True)
    v = sub.add_parser("video")
    v.add_argument("out", type=Path)
    v.add_argument("--seconds", type=float, default=5.0)
    e = sub.add_parser("encoders")
    e.add_argument("checkpoints", type=Path)
    e.add_argument("--device", default="cuda")
    s = sub.add_parser("summary")
    s.add_argument("logs", type=Path, nargs="+")
    args = p.parse_args(argv)
    if args.what == "video":
        write_video(args.out, args.seconds)
    elif args.what == "encoders":
        print(json.dumps(probe_encoders(args.checkpoints, args.device)))
    else:
        print("\n".join(summary_rows(args.logs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
