"""Warm start of play with and without the ahead-of-time packages, in one command (GPU):

    python3 -m benchmarks.warm_start [--runs 2] [--cache DIR] [--tiny] [--set KEY=VALUE ...]

Each run is a fresh process of `main.py bench --play --headless --seconds 2` (play's whole session,
random weights, the built-in sample scene), so imports, weights, loading and warm-up all count.
First one `main.py bench --blocks 3` fills a compile cache of its own (DIR, default
warm_start inside roam's cache folder: a cold compile) and builds the packages, waiting for them. Then `--runs` warm
starts load the packages (model.aot_packages=true) and as many run torch.compile from the same
warm kernel cache (model.aot_packages=false), interleaved. Prints time to first frame and play's
"ready in" line of each run, and the medians. --tiny: the tiny DiT (a CPU smoke run of the command;
nothing compiles on a CPU, so both kinds are the same there).
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main_py(args: list[str], sets: list[str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "main.py", *args, *[a for s in sets for a in ("--set", s)]]
    print("$", " ".join(command[1:]), flush=True)
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


def warm_start(size: list[str], sets: list[str]) -> tuple[float, str]:
    """(time to first frame in s, play's "ready in" line) of one fresh play process."""
    done = main_py(["bench", "--play", *size, "--headless", "--seconds", "2"], sets)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    ready = next((line for line in done.stderr.splitlines() if "ready in" in line), "")
    return summary["time_to_first_frame_s"], re.sub(r"^roam: ", "", ready)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=2, help="warm starts of each kind")
    p.add_argument("--cache", default="warm_start", help="the compile cache and packages of this measurement")
    p.add_argument("--tiny", action="store_true", help="the tiny DiT (CPU smoke run)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="config overrides for every run")
    args = p.parse_args(argv)
    sets, size = [f"model.compile_cache_dir={args.cache}", *args.sets], ["--tiny"] if args.tiny else []
    t0 = time.perf_counter()
    main_py(["bench", *size, "--blocks", "3"], sets)                 # cold: compiles, builds the packages and waits
    print(f"cold compile and package build: {time.perf_counter() - t0:.0f} s", flush=True)
    runs: dict[str, list[tuple[float, str]]] = {"AOT packages": [], "torch.compile, warm cache": []}
    for _ in range(args.runs):
        runs["AOT packages"].append(warm_start(size, [*sets, "model.aot_packages=true"]))
        runs["torch.compile, warm cache"].append(warm_start(size, [*sets, "model.aot_packages=false"]))
    print(f"\n{'warm start':<28}{'first frame (s), each run':<30}median")
    for name, results in runs.items():
        times = [t for t, _ in results]
        print(f"{name:<28}{', '.join(f'{t:.1f}' for t in times):<30}{statistics.median(times):.1f}")
    for name, results in runs.items():
        for _, ready in results:
            print(f"  {name}: {ready}")
    return {name: [t for t, _ in results] for name, results in runs.items()}


if __name__ == "__main__":
    main()
