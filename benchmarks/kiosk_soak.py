"""Kiosk soak: run `main.py play --kiosk --headless --realtime` for a long time and watch its memory.

    python3 -m benchmarks.kiosk_soak [--minutes 15] [--interval-s 30] [--out DIR] [--set KEY=VALUE ...]

The kiosk runs as a real subprocess (the command a kiosk machine runs) until it is ready; from then on
its resident memory (VmRSS of /proc/PID/status) is read every second and a row printed every
`--interval-s` seconds: the reading then, and the lowest and highest of the interval (a block's
temporaries come and go within it). At the end it is stopped with SIGTERM, as a service manager stops
it, and must exit 143 with its files finished. The summary gives the growth from minute 2 (after the
caches and buffers have filled) to the end. Linux only (reads /proc).
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SETTLED_S = 120.0               # growth is measured from this many seconds after the first frame


def rss_mb(pid: int) -> float | None:
    """Resident memory of process `pid` in MB (None once it has gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def watch_stderr(proc: subprocess.Popen, ready: threading.Event, log: list[str]) -> None:
    """Keep the child's stderr (its last lines go into the report) and flag its first frame."""
    for line in proc.stderr:
        log.append(line.rstrip())
        del log[:-50]
        if "ready in" in line:
            ready.set()


def soak(args: argparse.Namespace) -> dict:
    out = Path(args.out)
    cmd = [sys.executable, "main.py", "play", "--kiosk", "--headless", "--realtime", "--out", str(out)]
    for override in args.set:
        cmd += ["--set", override]
    print("$", " ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready, log = threading.Event(), []
    threading.Thread(target=watch_stderr, args=(proc, ready, log), daemon=True).start()
    try:
        while not ready.wait(1.0):
            if proc.poll() is not None:
                raise SystemExit(f"kiosk_soak: the kiosk exited with {proc.returncode} before its first frame:\n"
                                 + "\n".join(log[-20:]))
        samples, t0, window = [], time.monotonic(), []
        print(f"{'minute':>7} {'RSS MB':>9} {'min':>7} {'max':>7} {'vs min 2':>9}   (min, max: over the interval)",
              flush=True)
        next_row = 0.0
        while (elapsed := time.monotonic() - t0) <= args.minutes * 60 + 1:
            mb = rss_mb(proc.pid)
            if mb is None:
                raise SystemExit(f"kiosk_soak: the kiosk died after {elapsed:.0f} s:\n" + "\n".join(log[-20:]))
            window.append(mb)
            if elapsed >= next_row:
                samples.append((elapsed, mb, min(window), max(window)))
                base = next((m for s, m, _, _ in samples if s >= SETTLED_S), None)
                growth = f"{100 * (mb / base - 1):+8.1f}%" if base else f"{'':>9}"
                print(f"{elapsed / 60:7.1f} {mb:9.0f} {min(window):7.0f} {max(window):7.0f} {growth}", flush=True)
                window, next_row = [], next_row + args.interval_s
            time.sleep(min(1.0, args.interval_s))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=300)
    settled = [row for row in samples if row[0] >= SETTLED_S]
    growth = lambda k: 100 * (settled[-1][k] / settled[0][k] - 1) if len(settled) > 1 else None
    summary = next((json.loads(line) for line in reversed(stdout.splitlines()) if line.startswith("{")), {})
    return {"command": cmd, "exit_code": proc.returncode, "samples": samples,
            "rss_settled_mb": settled[0][1] if settled else None, "rss_end_mb": samples[-1][1],
            "growth_pct": growth(1), "floor_growth_pct": growth(2),
            "frames_presented": summary.get("frames_presented"), "achieved_fps": summary.get("achieved_fps"),
            "displayed_fps": (summary.get("display") or {}).get("fps")}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python3 -m benchmarks.kiosk_soak", description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=15.0, help="how long to run after the first frame")
    p.add_argument("--interval-s", type=float, default=30.0, help="seconds between memory samples")
    p.add_argument("--out", default=str(REPO / "out" / "kiosk-soak"), help="the kiosk's output folder")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override for the kiosk")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    if not Path("/proc/self/status").is_file():
        raise SystemExit("kiosk_soak reads /proc: it runs on Linux only")
    result = soak(args)
    pct = lambda key: "n/a (run longer than 2 minutes)" if result[key] is None else f"{result[key]:+.1f}%"
    shown = "" if result["displayed_fps"] is None else f", displayed at {result['displayed_fps']:.1f} fps"
    settled = "n/a" if result["rss_settled_mb"] is None else f"{result['rss_settled_mb']:.0f}"
    print(f"\nRSS {settled} MB at minute 2 -> {result['rss_end_mb']:.0f} MB at the end: "
          f"{pct('growth_pct')} (the interval's lowest: {pct('floor_growth_pct')}); "
          f"{result['frames_presented']} frames presented ({result['achieved_fps'] or 0:.1f} fps{shown}); "
          f"exit code {result['exit_code']} after SIGTERM (expected 143)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
