"""A real-time play session whose demo walk also toggles pause every few seconds: time commands change
the source frames the next block will show, which the worker prepares ahead (runtime/worker.py
PrepareHint). Late blocks and underruns in the summary show how well that holds up.

    python3 -m benchmarks.pause_walk [--every 2.1] play --headless --realtime --seconds 60 \\
        --set runtime.refiner=dit --set model.random_weights=true

Everything after the options is main.py's command line.
"""
from __future__ import annotations

import argparse
import dataclasses
import runpy
import sys

import runtime.scripts
from controllers.commands import TimeCommand


def with_pauses(walk, every_s: float):
    """A demo_walk replacement: the same walk, plus a pause toggle every `every_s` seconds."""
    def paused_walk(*args, **kwargs):
        inputs = walk(*args, **kwargs)
        poll, period = inputs.poll, max(1, round(every_s * inputs.tick_hz))

        def poll_with_pauses():
            cmds = poll()
            if inputs.tick % period == 0:
                cmds = dataclasses.replace(cmds, time=TimeCommand(toggle_pause=True))
            return cmds
        inputs.poll = poll_with_pauses
        return inputs
    return paused_walk


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--every", type=float, default=2.1, help="seconds between pause toggles")
    args, rest = p.parse_known_args(argv)
    runtime.scripts.demo_walk = with_pauses(runtime.scripts.demo_walk, args.every)   # before play imports it
    sys.argv = ["main.py", *rest]
    runpy.run_path("main.py", run_name="__main__")


if __name__ == "__main__":
    main()
