"""Config of scene building and rendering (section `scenes` of config.yaml)."""
from dataclasses import dataclass, field


@dataclass(frozen=True)
class DepthConfig:
    chunk_frames: int = 1000           # most frames per depth-model pass (the reference's DA3 limit); longer videos run in chunks
    hfov_deg: float = 60.0             # horizontal field of view assumed when no provider knows the intrinsics
    eye_height: float = 1.6            # estimate: camera height above the assumed ground plane (metres)
    backdrop: float = 30.0             # estimate: depth of the far backdrop plane behind the ground (metres)
    png_scale: float = 0.001           # file: depth units per code of 16-bit PNGs that have no scale.txt (mm -> m)


@dataclass(frozen=True)
class ScenesConfig:
    width: int = 832                   # working frame width in pixels (the model's resolution)
    height: int = 480                  # working frame height in pixels
    cache_dir: str = ".cache/scenes"   # where built Scenes are cached, keyed by content hash
    depth: DepthConfig = field(default_factory=DepthConfig)      # depth providers of `main.py build`
