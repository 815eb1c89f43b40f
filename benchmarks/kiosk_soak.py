"""Kiosk soak: run `main.py play --kiosk --headless --realtime` for a long time and watch its memory.

    python3 -m benchmarks.kiosk_soak [--minutes 15] [--interval-s 30] [--out DIR] [--set KEY=VALUE ...]

The kiosk runs as a real subprocess (the command a kiosk machine runs) until it is ready; from then on
its resident memory (VmRSS of /proc/PID/status) is sampled every `--interval-s` seconds. At the end it
is stopped with SIGTERM, as a service manager stops it, and must exit 143 with its files finished. The
table gives each sample, and the summary the growth from minute 2 (after the caches and buffers have
filled) to the end. Linux only (reads /proc).
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
        samples, t0 = [], time.monotonic()
        print(f"{'minute':>7} {'RSS MB':>9} {'vs min 2':>9}", flush=True)
        while (elapsed := time.monotonic() - t0) <= args.minutes * 60 + 1:
            mb = rss_mb(proc.pid)
            if mb is None:
                raise SystemExit(f"kiosk_soak: the kiosk died after {elapsed:.0f} s:\n" + "\n".join(log[-20:]))
            samples.append((elapsed, mb))
            base = next((m for s, m in samples if s >= SETTLED_S), None)
            growth = f"{100 * (mb / base - 1):+8.1f}%" if base else f"{'':>9}"
            print(f"{elapsed / 60:7.1f} {mb:9.0f} {growth}", flush=True)
            time.sleep(max(0.0, args.interval_s - (time.monotonic() - t0 - elapsed)))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=300)
    settled = [mb for s, mb in samples if s >= SETTLED_S]
    summary = next((json.loads(line) for line in reversed(stdout.splitlines()) if line.startswith("{")), {})
    return {"command": cmd, "exit_code": proc.returncode, "samples": samples,
            "rss_settled_mb": settled[0] if settled else None, "rss_end_mb": samples[-1][1],
            "growth_pct": 100 * (settled[-1] / settled[0] - 1) if len(settled) > 1 else None,
            "frames_presented": summary.get("frames_presented"), "achieved_fps": summary.get("achieved_fps")}


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
    growth = "n/a (run longer than 2 minutes)" if result["growth_pct"] is None else f"{result['growth_pct']:+.1f}%"
    print(f"\nRSS {result['rss_settled_mb']} MB at minute 2 -> {result['rss_end_mb']:.0f} MB at the end: {growth}; "
          f"{result['frames_presented']} frames presented ({result['achieved_fps'] or 0:.1f} fps); "
          f"exit code {result['exit_code']} after SIGTERM (expected 143)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
