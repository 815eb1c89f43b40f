"""Config of scene building and rendering (section `scenes` of config.yaml)."""
from dataclasses import dataclass, field
from typing import ClassVar

FIT_MODES = ("stretch", "crop", "pad")    # scenes.fit (scenes/frame_fit.py)


@dataclass(frozen=True)
class SampleConfig:
    frames: int = 120                  # frames of the built-in sample scene (5 s at 24 fps)
    fps: float = 24.0                  # its frame rate; the ball's motion follows real time
    seed: int = 0                      # seed of its procedural textures and object placement

    RANGES: ClassVar[dict] = {"frames": (2, 10_000, "frames of video the sample renders and keeps in memory"),
                              "fps": (1, 240, "frames per second"), "seed": (0, 2**32 - 1, "a random seed")}


@dataclass(frozen=True)
class DepthConfig:
    chunk_frames: int = 1000           # most frames per depth-model pass (the reference's DA3 limit); longer videos run in chunks
    hfov_deg: float = 60.0             # horizontal field of view assumed when no provider knows the intrinsics
    eye_height: float = 1.6            # estimate: camera height above the assumed ground plane (metres)
    backdrop: float = 30.0             # estimate: depth of the far backdrop plane behind the ground (metres)
    png_scale: float = 0.001           # file: depth units per code of 16-bit PNGs that have no scale.txt (mm -> m)
    sfm: bool = False                  # estimate: EXPERIMENTAL structure from motion with pycolmap (pip install pycolmap): camera motion and sparse depth over the prior, used when the reconstruction is sound (not yet better than the prior on the sample: docs/performance.md)
    sfm_max_frames: int = 64           # estimate: most frames SfM sees (evenly spaced; the others take interpolated poses)
    sfm_max_width: int = 480           # estimate: frames are downscaled to at most this width for SfM (speed)

    RANGES: ClassVar[dict] = {
        "chunk_frames": (1, 100_000, "frames per depth-model pass, held in memory at once"),
        "hfov_deg": (1, 179, "degrees of horizontal field of view"), "eye_height": (1e-3, 1e4, "metres"),
        "backdrop": (1e-3, 1e6, "metres"), "png_scale": (1e-9, 1e6, "depth units per PNG code"),
        "sfm_max_frames": (2, 10_000, "frames"), "sfm_max_width": (16, 8192, "pixels"),
    }


@dataclass(frozen=True)
class FusionConfig:
    enabled: bool = True               # geometry refiner renders the fused world state (all frames' static points + the current frame)
    fused_conditioning_for_dit: bool = False   # EXPERIMENTAL: condition the DiT on the fused render too
    max_points: int = 2_000_000        # memory budget of the fused static points (about 20 bytes each)
    voxel_pixels: float = 1.0          # voxel edge in source pixel footprints (depth / fx) before budget coarsening
    neighbour_offsets: tuple[int, ...] = (-16, -8, -4, -2, 2, 4, 8, 16)   # frames compared with each frame to find moving pixels
    analysis_stride: int = 2           # the static/dynamic test runs on every n-th pixel (then upsampled)
    depth_tolerance: float = 0.04      # relative depth difference that counts as inconsistent
    colour_tolerance: float = 0.12     # RGB difference (0..1) beyond a 3x3 neighbourhood's range that counts as inconsistent
    dynamic_vote: float = 0.25         # a pixel is dynamic when this share of the frames that see it disagree
    dilate_px: int = 3                 # grow the dynamic mask by this many pixels (edges of moving things)
    protect_px: int = 12               # fused points behind a moving thing fill no hole within this many pixels of it
    chunk_frames: int = 8              # frames processed at once while building (memory vs. speed)
    point_stride: int = 4              # every n-th frame (and the last) adds its static points; every frame gets its moving-pixel mask

    RANGES: ClassVar[dict] = {
        "max_points": (1, 500_000_000, "points of about 20 bytes in memory"), "voxel_pixels": (0.01, 1000, "pixels"),
        "neighbour_offsets": (-10_000, 10_000, "frame offsets"), "analysis_stride": (1, 64, "pixels"),
        "depth_tolerance": (1e-6, 100, "a relative depth difference"), "colour_tolerance": (1e-6, 1, "an RGB difference"),
        "dynamic_vote": (1e-6, 1, "a share of frames"), "dilate_px": (0, 1000, "pixels"),
        "protect_px": (0, 1000, "pixels"), "chunk_frames": (1, 10_000, "frames held in memory at once"),
        "point_stride": (1, 10_000, "frames"),
    }

    def __post_init__(self):
        if min(self.max_points, self.analysis_stride, self.chunk_frames, self.point_stride) < 1 or self.voxel_pixels <= 0:
            raise ValueError("fusion: max_points, voxel_pixels, analysis_stride, chunk_frames and point_stride must be "
                             "positive")
        if not self.neighbour_offsets or 0 in self.neighbour_offsets:
            raise ValueError(f"fusion.neighbour_offsets must be non-zero frame offsets, got {list(self.neighbour_offsets)}")
        if not (0 < self.dynamic_vote <= 1) or self.depth_tolerance <= 0 or self.colour_tolerance <= 0 or min(
                self.dilate_px, self.protect_px) < 0:
            raise ValueError("fusion: need 0 < dynamic_vote <= 1, positive tolerances and dilate_px, protect_px >= 0")


@dataclass(frozen=True)
class ScenesConfig:
    width: int = 832                   # working frame width in pixels (the model's resolution)
    height: int = 480                  # working frame height in pixels
    cache_dir: str = "scenes"          # where built Scenes are cached, keyed by content hash (relative: inside the user's cache folder, $ROAM_CACHE_DIR or $XDG_CACHE_HOME/roam)
    storage: str = "compact"           # how Scenes are stored: compact (frames as high-quality video, depth float16 where the reference's depth codec is no finer) | exact (lossless; `render` always uses it)
    fit: str = "crop"                  # videos of another shape: crop (keep the shape, cut the overflow) | pad (black bars) | stretch (the reference's; `render` always stretches)
    sample: SampleConfig = field(default_factory=SampleConfig)   # the built-in sample scene
    fusion: FusionConfig = field(default_factory=FusionConfig)   # the fused world state (scenes/fusion.py)
    depth: DepthConfig = field(default_factory=DepthConfig)      # depth providers of `main.py build`

    RANGES: ClassVar[dict] = {"width": (16, 8192, "pixels of every frame in memory"),
                              "height": (16, 8192, "pixels of every frame in memory")}

    def __post_init__(self):
        if self.fit not in FIT_MODES:
            raise ValueError(f"scenes.fit={self.fit!r}: expected one of {', '.join(FIT_MODES)}")
        if self.storage not in ("compact", "exact"):
            raise ValueError(f"scenes.storage={self.storage!r}: expected compact or exact")
