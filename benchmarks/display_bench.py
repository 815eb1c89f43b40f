"""The display measured through `play` itself: real-time headless sessions of the same scene and demo
walk with reprojection (every displayed frame drawn from the camera at present time) and without
(today's presenter, `runtime.reproject=false`), and a table of what their telemetry says: displayed
fps and frame gaps, camera control-to-photon, content latency, the displayed pose's error at
present time, time to the first frame, a block's make time (what reprojection's depth adds to it),
with the machine's load before and after.

    python3 -m benchmarks.display_bench [--seconds 30] [--out DIR] [--only on|off] [--random-dit] [play options ...]

Options after the benchmark's own go to `main.py play` (a scene, `--set ...`); `--random-dit` runs
the DiT with random weights instead (`main.py bench --play`).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODES = {"on": [], "off": ["--set", "runtime.reproject=false"]}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run(mode: str, seconds: float, out: Path, play_args: list[str], random_dit: bool) -> dict:
    play = ["bench", "--play"] if random_dit else ["play"]
    cmd = [sys.executable, "main.py", *play, "--headless", "--realtime", "--seconds", str(seconds),
           "--out", str(out / mode), *play_args, *MODES[mode]]
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
    before = load()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"display_bench: play ({mode}) failed:\n{proc.stderr[-3000:]}")
    summary = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("{")))   # play's summary
    gl = next((line.split("GL: ", 1)[1].split("), output in")[0] for line in proc.stderr.splitlines() if "GL: " in line),
              "-")
    stages = json.loads((out / mode / "telemetry.json").read_text())["summary"]["stages_ms"]
    return {"summary": summary, "make": stages["make"], "load": f"{before} -> {load()}", "gl": gl,
            "command": " ".join(cmd[1:])}


def ms(d: dict | None, key: str) -> str:
    return f"{d[key]:.0f}" if d and d.get(key) is not None else "-"


def row(mode: str, r: dict) -> list[str]:
    s = r["summary"]
    shown = s.get("display") or {"fps": s.get("fps"), "frame_interval_ms": s.get("frame_interval_ms"),
                                 "gaps": s.get("late_frames")}
    c2p, content = s.get("control_to_photon_ms") or {}, s.get("content_latency_ms") or s.get("control_to_photon_ms")
    error = (s.get("pose_error") or {}).get("translation") or {}
    rotation = (s.get("pose_error") or {}).get("rotation_deg") or {}
    gap = shown.get("max_gap_periods")
    make = r["make"]                                                  # a block's start to its frames decoded
    return [mode, f"{shown['fps']:.1f}" if shown.get("fps") else "-", str(shown.get("gaps", "-")),
            f"{gap:.1f}" if gap is not None else "-", f"{ms(c2p, 'p50')} / {ms(c2p, 'p95')} (n={c2p.get('n', 0)})",
            f"{ms(content, 'p50')} / {ms(content, 'p95')}",
            f"{error.get('p95', 0) or 0:.3f} / {rotation.get('p95', 0) or 0:.2f}",
            f"{s.get('time_to_first_frame_s') or 0:.1f}",
            f"{ms(make, 'p50')} / {ms(make, 'p95')} (n={make.get('n', 0)})" if make.get("n") else "-", r["load"]]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=30.0, help="length of each session")
    p.add_argument("--out", default="out/display_bench", help="parent folder of the sessions' outputs")
    p.add_argument("--only", choices=sorted(MODES), default=None, help="run one mode only")
    p.add_argument("--random-dit", action="store_true", help="the DiT with random weights (main.py bench --play)")
    args, play_args = p.parse_known_args(argv)
    play_args = [a for a in play_args if a != "--"]
    out = Path(args.out)
    results = {mode: run(mode, args.seconds, out, play_args, args.random_dit) for mode in MODES if args.only in (None, mode)}
    head = ["reproject", "displayed fps", "gaps > 1.5 periods", "longest gap (periods)",
            "control-to-photon p50 / p95 ms", "content latency p50 / p95 ms", "pose error p95 (units / deg)",
            "first frame s", "block make p50 / p95 ms", "load before -> after"]
    rows = [head] + [row(mode, r) for mode, r in results.items()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {args.seconds:g} s each, GL: {next(iter(results.values()))['gl']}")
    for r in rows:
        print(" | ".join(cell.ljust(w) for cell, w in zip(r, widths)))
    (out / "display_bench.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
