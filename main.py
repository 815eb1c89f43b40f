"""roam: walk through a video as a 4D world. The composition root: parse the command line, load
the config, hand over to the command's entry point in runtime/commands.py. No logic lives here."""
from __future__ import annotations

import argparse
import sys

COMMANDS = {
    "play": "walk through a scene or video in real time (the default command)",
    "build": "turn a video into a cached Scene (depth, poses, caption)",
    "render": "offline render with the reference pipeline's flags, on roam's engine",
    "bench": "GPU benchmark of the generation pipeline: per-stage times, fps, memory",
    "doctor": "report which checkpoints are missing, present or verified, and what they enable",
}


def add_common(p: argparse.ArgumentParser, top: bool = False) -> None:
    """--config and --set, accepted before and after the command (sub-parser values land in
    their own attributes so they never overwrite the top-level ones)."""
    suffix = "" if top else "_sub"
    p.add_argument("--config", dest="config" + suffix, default=None,
                   help="config file (default: config.yaml beside main.py)")
    p.add_argument("--set", dest="overrides" + suffix, action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set runtime.loop.fps=30 (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="main.py", description="roam: turn one video into a world you walk through in real time. "
        "With no command, plays the built-in sample scene (headless when there is no display).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n" + "\n".join(f"  {k:<8} {v}" for k, v in COMMANDS.items()))
    add_common(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    play = sub.add_parser("play", help=COMMANDS["play"], description=COMMANDS["play"] + ". Keys: WASD/arrows "
                          "move, mouse drag or IJKL looks, Q/E down/up, Shift runs, Space pauses time, "
                          "H toggles the HUD, F fullscreen, P screenshot, R records, Esc quits.")
    play.add_argument("scene", nargs="?", default=None, metavar="SCENE_OR_VIDEO",
                      help="a video file or a built Scene folder (default: the built-in sample scene)")
    play.add_argument("--headless", action="store_true", help="render offscreen and write files even with a display")
    play.add_argument("--seconds", type=float, default=None, help="stop after this many seconds of presented video")
    play.add_argument("--out", default=None, help="output folder (default: out/<timestamp>)")
    play.add_argument("--script", default=None, help="drive the camera from a trajectory file or a recorded run folder")
    play.add_argument("--record", action="store_true", help="record the whole session into OUT/recording/")
    play.add_argument("--kiosk", action="store_true", help="fullscreen kiosk mode with attract loop")
    play.add_argument("--realtime", action="store_true",
                      help="headless but paced in real time (late frames are held, as in a window); default "
                           "headless runs wait for every frame")
    add_common(play)

    build = sub.add_parser("build", help=COMMANDS["build"], description=COMMANDS["build"])
    build.add_argument("video", help="input video file")
    build.add_argument("--depth", default="auto", help="depth provider: auto | sample | file | da3 | estimate")
    build.add_argument("--depth-file", default=None, help="depth .npz/.npy for --depth file")
    build.add_argument("--prompt", default=None, help="caption to use instead of running Florence-2")
    add_common(build)

    render = sub.add_parser("render", help=COMMANDS["render"], description=COMMANDS["render"])
    render.add_argument("--input_dir", required=True)
    render.add_argument("--traj_txt_path", required=True)
    add_common(render)

    bench = sub.add_parser("bench", help=COMMANDS["bench"], description=COMMANDS["bench"] + ". Options: "
                           "--blocks N, --warmup N, --vae (Wan VAE instead of TAEHV), --compile, --attn NAME, "
                           "--json OUT.json, --plot [OUT.png], --tiny (CPU smoke run); see benchmarks/pipeline_bench.py.")
    add_common(bench)

    doctor = sub.add_parser("doctor", help=COMMANDS["doctor"], description=COMMANDS["doctor"])
    add_common(doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        args, extra = parser.parse_known_args(["play", *argv])
    if extra and args.command != "bench":           # bench hands its own options to benchmarks/
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "bench":                     # benchmarks/ sits beside runtime/, not inside it
        from benchmarks.pipeline_bench import main as bench_main
        bench_main(extra)
        return 0
    args.config = getattr(args, "config_sub", None) or args.config
    args.overrides = [*args.overrides, *getattr(args, "overrides_sub", [])]
    from runtime import commands
    return commands.dispatch(args)


if __name__ == "__main__":
    sys.exit(main())
