"""roam: walk through a video as a 4D world. The composition root: parse the command line, load
the config, hand over to the command's entry point in cli/main.py. No logic lives here."""
from __future__ import annotations

import argparse
import os
import sys

from cli.flags import Parser, number_flag

MAX_FREEZE_REPEAT = 100_000      # --freeze_repeat: over an hour of extra output frames at 24 fps

COMMANDS = {
    "play": "walk through a scene or video in real time (the default command)",
    "build": "turn a video into a cached Scene (depth, poses, caption)",
    "render": "offline render with the reference pipeline's flags, on roam's engine",
    "bench": "GPU benchmark of the generation pipeline: per-stage times, fps, memory",
    "doctor": "report which checkpoints are missing, present or verified, and what they enable",
    "cache": "list roam's caches (Scenes, compiled kernels) with their sizes, or clean them",
    "download": "fetch the official weights into the checkpoint folder, then run doctor",
}


def add_common(p: argparse.ArgumentParser, top: bool = False) -> None:
    """--config and --set, accepted before and after the command (sub-parser values land in
    their own attributes so they never overwrite the top-level ones)."""
    suffix = "" if top else "_sub"
    p.add_argument("--config", dest="config" + suffix, default=None,
                   help="config file (default: config.yaml beside main.py)")
    p.add_argument("--set", dest="overrides" + suffix, action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set runtime.loop.fps=30 (repeatable)")


def add_render_flags(p: argparse.ArgumentParser) -> None:
    """The reference's run_test_pipeline.sh flags (same names and defaults) and roam's own."""
    flag = p.add_argument
    flag("--input_dir", required=True, help="folder of *.mp4 videos (sorted, not recursive)")
    flag("--traj_txt_path", required=True, help="3-line trajectory file, e.g. traj/x_y_circle_cycle.txt")
    flag("--checkpoint_path", default="checkpoints/InSpatio-World-1.3B/InSpatio-World-1.3B.safetensors",
         help="DiT weights; its last two folders name the output subfolders")
    flag("--config_path", dest="config_sub", default=None, help="roam's config.yaml (same as --config)")
    flag("--da3_model_path", default="checkpoints/DA3", help="DA3 depth weights (roam reads <checkpoint root>/DA3)")
    flag("--florence_model_path", default="checkpoints/Florence-2-large", help="caption model folder")
    flag("--output_folder", default=None, help="default: ./output/<input_dir name>/<trajectory name>")
    flag("--skip_step1", action="store_true", help="reuse captions from <input_dir>/new.json")
    flag("--skip_step2", action="store_true", help="reuse cached scenes (always checked against the video)")
    flag("--skip_step3", action="store_true", help="stop after captions and scenes")
    flag("--relative_to_source", action="store_true", help="the camera rides on the source camera")
    flag("--rotation_only", action="store_true", help="zero the trajectory's translation (pan/tilt)")
    flag("--disable_adaptive_frame", action="store_true", help="keep the native frame count")
    flag("--freeze_repeat", type=number_flag(int, 0, MAX_FREEZE_REPEAT, "each repeat is one more output frame"),
         default=0, help="repeat the freeze frame this many extra times")
    flag("--freeze_frame", type=number_flag(int, 0, 10**6, "a source frame index; larger ones are clamped to the last"),
         default=None, help="frame to freeze (default: the middle one)")
    flag("--render_backend", default="warper", help="warper (reference) | ply | gpu (roam's real-time render)")
    flag("--use_tae", action="store_true", help="TAEHV tiny autoencoder instead of the Wan VAE")
    flag("--tae_checkpoint_path", default="checkpoints/taehv/taew2_1.pth", help="TAEHV weights")
    flag("--compile_dit", action="store_true", help="torch.compile the DiT")
    flag("--step1_gpus", default="0", help="accepted for compatibility (captions run in each rank)")
    flag("--step2_gpus", default="0", help="accepted for compatibility (scenes are built in each rank)")
    flag("--step3_gpus", default=None, help="CUDA_VISIBLE_DEVICES for the ranks --step3_nproc starts")
    flag("--step3_nproc", type=number_flag(int, 1, 1024, "processes started on this machine"), default=1,
         help="data-parallel ranks over the videos (torch.distributed)")
    flag("--master_port", type=number_flag(int, 1, 65535, "a TCP port"), default=29513, help="torch.distributed port")
    flag("--refiner", default="auto", help="auto | geometry | dit")
    flag("--depth", default="auto", help="depth provider per video: auto | sample | file | da3 | estimate")
    flag("--prompt", default=None, help="caption for every video instead of Florence-2 / new.json")
    flag("--seed", type=number_flag(int, 0, 2**63 - 1, "a random seed"), default=0, help="seed of the DiT's noise")
    flag("--device", default=None, help="auto | cpu | cuda (default: runtime.device)")
    flag("--no_progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="main.py", description="roam: turn one video into a world you walk through in real time. "
        "With no command, plays the built-in sample scene (headless when there is no display).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n" + "\n".join(f"  {k:<8} {v}" for k, v in COMMANDS.items()))
    add_common(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    from cli.main import keys_help
    play = sub.add_parser("play", help=COMMANDS["play"], formatter_class=argparse.RawDescriptionHelpFormatter,
                          description=f"{COMMANDS['play']}.\n\nkeys, gamepad and what they do (config.yaml "
                          f"controllers; in the window, ? or F1 shows this):\n{keys_help()}")
    play.add_argument("scene", nargs="?", default=None, metavar="SCENE_OR_VIDEO",
                      help="a video file or a built Scene folder (default: the built-in sample scene)")
    play.add_argument("--headless", action="store_true", help="render offscreen and write files even with a display")
    play.add_argument("--seconds", type=number_flag(float, 0.1, 1e7, "seconds of presented video; leave it out to "
                                                    "play a script to its end or a window or kiosk until you quit"),
                      default=None, help="stop after this many seconds of presented video")
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
    add_render_flags(render)
    add_common(render)

    bench = sub.add_parser("bench", help=COMMANDS["bench"], description=COMMANDS["bench"] + ". Options: "
                           "--blocks N, --warmup N, --vae (Wan VAE instead of TAEHV), --compile, --attn NAME, "
                           "--row-limit N, --json OUT.json, --plot [OUT.png], --tiny (CPU smoke run); see cli/bench.py.")
    add_common(bench)

    doctor = sub.add_parser("doctor", help=COMMANDS["doctor"], description=COMMANDS["doctor"])
    add_common(doctor)

    cache = sub.add_parser("cache", help=COMMANDS["cache"], description=COMMANDS["cache"] + ". Examples: "
                           "`main.py cache`, `main.py cache clean all`, `main.py cache clean --older-than 14`, "
                           "`main.py cache clean VIDEO` (its Scenes).")
    cache.add_argument("action", nargs="?", default="list", choices=("list", "clean"), help="list (default) or clean")
    cache.add_argument("target", nargs="?", default=None, help="clean: all | a video file | a scene key (prefix)")
    cache.add_argument("--older-than", type=float, default=None, metavar="DAYS",
                       help="clean: the Scenes not used for this many days")
    add_common(cache)
    download = sub.add_parser("download", help=COMMANDS["download"], description=COMMANDS["download"] +
                              " (what the reference's scripts/download.sh fetches; needs huggingface_hub).")
    download.add_argument("--only", choices=("dit", "depth", "captions", "tae"), default=None,
                          help="one part: dit (about 23 GB) | depth (DA3, 6.8 GB) | captions (Florence-2, 1.6 GB) | "
                               "tae (20 MB); default: all")
    download.add_argument("--dir", default=None, help="checkpoint folder (default: model.checkpoint_dir, checkpoints)")
    add_common(download)
    return parser


def main(argv: list[str] | None = None) -> int:
    from cli.stop_signals import Interrupted, StopSignals
    with StopSignals() as stop:                     # before anything starts SDL (see cli/stop_signals.py)
        try:
            return run_command(argv, stop)
        except Interrupted as err:                  # a stop signal outside a session: unwound like Ctrl-C
            print("roam: interrupted", file=sys.stderr)
            return err.exit_code


def run_command(argv: list[str] | None, stop) -> int:
    from cli.bytecode_cache import use_bytecode_cache
    use_bytecode_cache()                            # before anything imports torch
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")   # no banner when pygame is imported
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(token in COMMANDS for token in argv) and not {"-h", "--help"} & set(argv):
        argv = ["play", *argv]                      # play is the default command
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "bench":           # bench hands its own options to benchmarks/
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "bench":                     # benchmarks/ sits beside runtime/, not inside it
        from cli.bench import main as bench_main
        bench_main(extra)
        return 0
    args.config = getattr(args, "config_sub", None) or args.config
    args.overrides = [*args.overrides, *getattr(args, "overrides_sub", [])]
    from cli import main as commands
    return commands.dispatch(args, stop)


def exit_process(code: int) -> None:
    """Exit with `code`. A generation worker still inside a torch op (stopped mid-block when the
    session ended) would make Python's shutdown abort ("terminate called without an active
    exception", exit 134), so with such a thread alive the process ends without that shutdown; every
    output is finished and flushed by then."""
    import logging
    import threading
    if threading.active_count() == 1:
        sys.exit(code)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_process(main())
