"""`main.py build VIDEO`: build (or find in the cache) the Scene of a video (scenes/build.py) and
print its folder on stdout."""
from __future__ import annotations

from cli.device import pick_device
from scenes.build import build_scene_at


def run(cfg, args) -> int:
    _, folder = build_scene_at(cfg, args.video, device=pick_device(cfg.runtime.device), depth=args.depth,
                               depth_file=args.depth_file, prompt=args.prompt)
    print(folder)
    return 0
