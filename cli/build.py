"""`main.py build VIDEO`: build (or find in the cache) the Scene of a video (scenes/build.py), embed its
caption when the text encoder is here, build its fused world (with scenes.fusion.enabled), say when
its depth is a guess, and print its folder on stdout."""
from __future__ import annotations

import sys

from cli.depth_notice import depth_notice
from cli.device import pick_device
from cli.prompt_embedding import embed_built_scene
from runtime.world_cache import load_or_build_world
from scenes.build import build_scene_at


def run(cfg, args) -> int:
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
