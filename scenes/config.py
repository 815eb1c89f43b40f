"""Config of scene building and rendering (section `scenes` of config.yaml)."""
from dataclasses import dataclass


@dataclass(frozen=True)
class ScenesConfig:
    width: int = 832                   # working frame width in pixels (the model's resolution)
    height: int = 480                  # working frame height in pixels
    cache_dir: str = ".cache/scenes"   # where built Scenes are cached, keyed by content hash
