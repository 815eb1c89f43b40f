"""Entry points of the CLI commands. Each loads the config, builds its objects and runs."""
from __future__ import annotations

import sys

from runtime.config import ConfigError, load_config
from scenes.atomic import file_problem
from scenes.errors import SceneInputError


class UserError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def not_yet(name: str, issue: str) -> int:
    print(f"roam {name}: not available yet (comes with the issue '{issue}'); nothing was done.", file=sys.stderr)
    return 2


def dispatch(args, stop) -> int:
    """Run the command; `stop` is the process's StopSignals (runtime/stop_signals.py), which main.py
    installed and which turns a stop signal outside a session into Interrupted."""
    try:
        cfg = load_config(args.config, args.overrides)
        if args.command == "play":
            return run_play(cfg, args, stop)
        handler = {"build": run_build, "render": run_render, "bench": run_bench, "doctor": run_doctor}[args.command]
        return handler(cfg, args)
    except (ConfigError, UserError, SceneInputError) as err:      # bad input: one line, exit 2
        print(f"roam: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:                  # an unusable folder, a full disk: one line, exit 2
        if (problem := file_problem(err)) is None:
            raise
        print(f"roam: error: {problem}", file=sys.stderr)
        return 2


def pick_device(name: str):
    import torch
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("runtime.device=cuda but no CUDA device is available; use --set runtime.device=cpu")
    return torch.device(name)


def run_play(cfg, args, stop) -> int:
    from runtime.play import play
    return play(cfg, args, stop)


def run_build(cfg, args) -> int:
    """Build (or find in the cache) the Scene of args.video; print its folder on stdout."""
    from runtime.build import build_scene_at
    _, folder = build_scene_at(cfg, args.video, depth=args.depth, depth_file=args.depth_file, prompt=args.prompt)
    print(folder)
    return 0


def run_render(cfg, args) -> int:
    from runtime.render_cmd import render
    return render(cfg, args)


def run_bench(cfg, args) -> int:
    """Handled by main.py, which hands its options to benchmarks/pipeline_bench.py."""
    raise UserError("bench runs through main.py (benchmarks/pipeline_bench.py)")


def run_doctor(cfg, args) -> int:
    """Each checkpoint: missing / present / verified / invalid, and the feature it enables."""
    from model.checkpoint import doctor_report
    rows = doctor_report(cfg.model.checkpoint_dir)
    width = max(len(r.name) for r in rows)
    for r in rows:
        print(f"{r.name:<{width}}  {r.status:<8}  {r.path}\n{'':<{width}}  enables: {r.enables}\n{'':<{width}}  {r.detail}")
    print("\nDiT refiner:", "ready" if all(r.status == "verified" for r in rows if r.enables.startswith("DiT")) else
          "not available (the geometry refiner runs without weights)")
    print("FP8 attention (model.fp8):", fp8_attention_status())
    return 1 if any(r.status == "invalid" for r in rows) else 0


def fp8_attention_status() -> str:
    """Whether the FP8 mode's attention kernel can run on this machine's first GPU, or why not."""
    import torch
    from model.fp8_attention import fp8_attention_unavailable
    reason = fp8_attention_unavailable(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    return f"not available: {reason} (the FP8 mode keeps bf16 attention)" if reason else "available"
