"""Entry points of the CLI commands. Each loads the config, builds its objects and runs."""
from __future__ import annotations

import sys
from pathlib import Path

from cli.errors import UserError
from runtime.config import ConfigError, load_config
from scenes.atomic import file_problem
from scenes.errors import SceneInputError


def dispatch(args, stop) -> int:
    """Run the command; `stop` is the process's StopSignals (cli/stop_signals.py), which main.py
    installed and which turns a stop signal outside a session into Interrupted."""
    try:
        cfg = load_config(args.config, args.overrides)
        if args.command == "play":
            return run_play(cfg, args, stop)
        handler = {"build": run_build, "render": run_render, "doctor": run_doctor, "cache": run_cache,
                   "download": run_download}[args.command]
        return handler(cfg, args)
    except (ConfigError, UserError, SceneInputError) as err:      # bad input: one line, exit 2
        print(f"roam: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:                  # an unusable folder, a full disk: one line, exit 2
        if (problem := file_problem(err)) is None:
            raise
        print(f"roam: error: {problem}", file=sys.stderr)
        return 2


def keys_help() -> str:
    """What each key and gamepad button does in play, as config.yaml binds them (play --help)."""
    from controllers.config import ControllersConfig
    from controllers.help import help_text
    try:
        controllers = load_config().controllers
    except ConfigError:                  # a broken config.yaml is reported when a command runs
        controllers = ControllersConfig()
    return help_text(controllers)


def run_play(cfg, args, stop) -> int:
    from cli.play import play
    return play(cfg, args, stop)


def run_build(cfg, args) -> int:
    """Build (or find in the cache) the Scene of args.video, embed its caption when the text encoder is
    here, and build its fused world (with scenes.fusion.enabled); print the Scene's folder on stdout."""
    from cli.depth_notice import depth_notice
    from cli.device import pick_device
    from cli.prompt_embedding import embed_built_scene
    from runtime.world_cache import load_or_build_world
    from scenes.build import build_scene_at
    device = pick_device(cfg.runtime.device)
    scene, folder = build_scene_at(cfg, args.video, device=device, depth=args.depth, depth_file=args.depth_file,
                                   prompt=args.prompt)
    embed_built_scene(cfg.model.checkpoint_dir, scene, device)
    if cfg.scenes.fusion.enabled:
        load_or_build_world(scene, cfg.scenes.fusion, cfg.scenes.cache_dir, device)
    if (notice := depth_notice(scene)) is not None:
        print(notice, file=sys.stderr)
    print(folder)
    return 0


def run_cache(cfg, args) -> int:
    from cli.cache import cache
    return cache(cfg, args)


def run_render(cfg, args) -> int:
    from cli.render.command import render
    return render(cfg, args)


def run_doctor(cfg, args) -> int:
    """Each checkpoint, part by part: missing / present / verified / invalid, what it enables, and the
    download command of each incomplete part."""
    return doctor(Path(cfg.model.checkpoint_dir))


def run_download(cfg, args) -> int:
    """The official weights (--only one part) into --dir, then doctor."""
    from cli.download import download
    root = Path(args.dir or cfg.model.checkpoint_dir)
    download(root, args.only)
    return doctor(root)


def doctor(root: Path) -> int:
    from cli.doctor import print_report, report
    parts = report(root)
    print_report(root, parts)
    dit = next(p for p in parts if p.part.name == "dit")
    print("\nDiT refiner:", "ready" if dit.complete else "not available (the geometry refiner runs without weights)")
    print("FP8 attention (model.fp8):", fp8_attention_status())
    return 1 if any(r.status == "invalid" for p in parts for r in p.rows) else 0


def fp8_attention_status() -> str:
    """Whether the FP8 mode's attention kernel can run on this machine's first GPU, or why not."""
    import torch
    from model.fp8_attention import fp8_attention_unavailable
    reason = fp8_attention_unavailable(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    return f"not available: {reason} (the FP8 mode keeps bf16 attention)" if reason else "available"
