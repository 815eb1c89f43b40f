"""The application config: config.yaml mapped strictly onto frozen dataclasses.

Each package owns the dataclass of its own section (controllers/config.py, scenes/config.py,
model/config.py, and RuntimeConfig below); this module composes them, loads the yaml with
`yaml.safe_load`, applies `a.b=c` overrides and rejects unknown keys, wrong types and numbers out of
range. A dataclass declares the range of each numeric field once, in its `RANGES` class attribute:
{field: (lowest, highest, why)}, both ends included; NaN is never in range.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import yaml

from controllers.config import ControllersConfig
from model.config import ModelConfig
from runtime.cache_root import in_cache
from scenes.config import ScenesConfig

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "config.yaml"


class ConfigError(ValueError):
    """A config file or override that does not match the schema."""


@dataclass(frozen=True)
class LoopConfig:
    tick_hz: float = 60.0              # fixed input/simulation tick rate (Hz)
    max_catchup_ticks: int = 4         # after a stall, drop older time instead of spiralling
    fps: float = 24.0                  # presentation rate (frames per second)

    RANGES: ClassVar[dict] = {
        "tick_hz": (1, 1000, "input ticks per second: 0 never ticks, more only burns CPU"),
        "max_catchup_ticks": (1, 1000, "ticks run at once after a stall"),
        "fps": (1, 240, "presented frames per second"),
    }


@dataclass(frozen=True)
class RigConfig:
    """CameraRig (runtime/rig.py). Distances are in units of the scene scale (20th-percentile depth of the first frame)."""
    mode: str = "walk"                 # walk | fly | orbit | tripod at start (Tab cycles)
    walk_speed: float = 0.3            # scene scales per second at full stick / held key
    fly_speed: float = 0.5             # scene scales per second in fly mode
    run_multiplier: float = 3.0        # speed factor while run (Shift / left stick press) is held
    accel_rate: float = 10.0           # 1/s: how fast velocity reaches the held-input speed
    damping_rate: float = 6.0          # 1/s: how fast velocity dies away after release (inertia)
    look_speed_deg_s: float = 90.0     # turn rate (deg/s) at full stick / held IJKL
    look_response_rate: float = 15.0   # 1/s: smoothing of stick and key look rates
    pitch_limit_deg: float = 85.0      # walk/fly/tripod: never look further up or down than this
    collision_margin: float = 0.15     # walk: stop this far short of a surface
    orbit_radius: float = 1.0          # orbit: centre distance in front of the camera (trajectory r)
    orbit_speed_deg_s: float = 45.0    # orbit: pitch/yaw rate (deg/s) at full input
    orbit_dolly_speed: float = 0.5     # orbit: W/S dolly toward / away from the centre, per second
    orbit_pitch_limit_deg: float = 80.0  # orbit: largest |pitch|
    orbit_min_distance: float = 0.1    # orbit: closest approach to the centre
    ride_along: bool = False           # pose = source camera at time t @ offset (reference --relative_to_source)
    steer_rate: float = 1.5            # 1/s: how fast an automatic walk (demo, kiosk attract) closes on its next goal
    untrusted_speed: float = 0.4       # walk/fly speed factor where the scene's depth is a guess (depth_trust 0, `build` says so); 1 at full trust
    untrusted_reach: float = 0.5       # walk/fly: farthest from the source cameras (scene scales) at depth_trust 0; reach / (1 - trust) in general, no limit at trust 1

    RANGES: ClassVar[dict] = {
        "walk_speed": (0, 1000, "scene scales per second"), "fly_speed": (0, 1000, "scene scales per second"),
        "run_multiplier": (0, 100, "a speed factor"), "accel_rate": (1e-3, 1000, "a rate per second"),
        "damping_rate": (1e-3, 1000, "a rate per second"), "look_speed_deg_s": (0, 3600, "degrees per second"),
        "look_response_rate": (1e-3, 1000, "a rate per second"), "pitch_limit_deg": (0, 89.9, "degrees from level"),
        "collision_margin": (0, 100, "scene scales"), "orbit_radius": (1e-3, 1000, "scene scales"),
        "orbit_speed_deg_s": (0, 3600, "degrees per second"), "orbit_dolly_speed": (0, 1000, "scene scales per second"),
        "orbit_pitch_limit_deg": (0, 89.9, "degrees from level"), "orbit_min_distance": (0, 1000, "scene scales"),
    }

    def __post_init__(self):
        if self.mode not in ("walk", "fly", "orbit", "tripod"):
            raise ValueError(f"mode: {self.mode!r} is not one of walk, fly, orbit, tripod")
        if min(self.accel_rate, self.damping_rate, self.look_response_rate, self.steer_rate) <= 0:
            raise ValueError("accel_rate, damping_rate, look_response_rate and steer_rate must be > 0")
        if not (0 < self.untrusted_speed <= 1) or self.untrusted_reach <= 0:
            raise ValueError("untrusted_speed must be in (0, 1] and untrusted_reach > 0")


@dataclass(frozen=True)
class ClockConfig:
    """WorldClock (runtime/world_clock.py): which source frame each presented frame shows."""
    ends: str = "pingpong"             # at the clip's ends: loop | pingpong | stop
    speed_steps: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)  # [ and ] step through these playback speeds
    min_speed: float = 0.25            # playback speed is clamped to [min_speed, max_speed]
    max_speed: float = 4.0             # fastest playback speed
    start_speed: float = 1.0           # playback speed at start
    start_paused: bool = False         # start with time frozen
    match_source_fps: bool = True      # 1x plays at the source fps; false: one source frame per presented frame (the reference)
    discontinuity_frames: int = 1      # a scrub/jump moving farther than this (frames) restarts the model context

    RANGES: ClassVar[dict] = {
        "speed_steps": (0.01, 100, "playback speeds"), "min_speed": (0.01, 100, "a playback speed"),
        "max_speed": (0.01, 100, "a playback speed"), "start_speed": (0.01, 100, "a playback speed"),
        "discontinuity_frames": (0, 10**6, "source frames"),
    }

    def __post_init__(self):
        if self.ends not in ("loop", "pingpong", "stop"):
            raise ValueError(f"ends: {self.ends!r} is not one of loop, pingpong, stop")
        if not 0 < self.min_speed <= self.start_speed <= self.max_speed:
            raise ValueError(f"need 0 < min_speed <= start_speed <= max_speed, got "
                             f"{self.min_speed}, {self.start_speed}, {self.max_speed}")
        if list(self.speed_steps) != sorted(self.speed_steps) or not self.speed_steps:
            raise ValueError(f"speed_steps must be a non-empty ascending list, got {list(self.speed_steps)}")


@dataclass(frozen=True)
class PacingConfig:
    """Frame pacing of the presenter (runtime/pacing.py)."""
    target_buffer_frames: int = 3      # frames buffered before playback starts, and again after a stall
    deadband_s: float = 0.010          # present a frame up to this early rather than one refresh late
    max_late_frames: float = 0.5       # later than this (frame periods): re-anchor the schedule, never burst to catch up
    max_buffer_frames: int = 48        # more frames buffered than this: drop the oldest (caps latency)
    plan_margin_s: float = 0.06        # real time: plan a block when the buffer holds only this much more than a block takes

    RANGES: ClassVar[dict] = {
        "target_buffer_frames": (1, 1000, "frames held in memory"), "deadband_s": (0, 1, "seconds"),
        "max_late_frames": (0, 100, "frame periods"), "max_buffer_frames": (1, 1000, "frames held in memory"),
        "plan_margin_s": (0, 10, "seconds"),
    }

    def __post_init__(self):
        if self.target_buffer_frames < 1 or self.max_buffer_frames < self.target_buffer_frames:
            raise ValueError("need 1 <= target_buffer_frames <= max_buffer_frames")


@dataclass(frozen=True)
class KioskConfig:
    """`play --kiosk` (runtime/kiosk.py)."""
    idle_timeout_s: float = 30.0       # no input for this long: reset the scene and play the attract run
    attract_run: str = ""              # recorded run folder whose inputs.jsonl loops in attract mode ("" = demo walk)
    admin_quit: tuple[str, ...] = ("left ctrl", "left alt", "q")  # only this key combination quits
    max_worker_restarts: int = 100     # watchdog: restart a crashed generation worker up to this often

    RANGES: ClassVar[dict] = {
        "idle_timeout_s": (1, 10**6, "seconds without input before the attract loop"),
        "max_worker_restarts": (0, 10**6, "restarts"),
    }


X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


@dataclass(frozen=True)
class RuntimeConfig:
    loop: LoopConfig = field(default_factory=LoopConfig)  # the fixed-tick loop
    kiosk: KioskConfig = field(default_factory=KioskConfig)  # play --kiosk
    rig: RigConfig = field(default_factory=RigConfig)  # the camera rig; distances in scene scales (the 20th percentile of the first frame's depth)
    clock: ClockConfig = field(default_factory=ClockConfig)  # the world clock: which source frame each presented frame shows
    pacing: PacingConfig = field(default_factory=PacingConfig)  # frame pacing of the presenter
    headless_seconds: float = 4.0      # length of a headless session when --seconds is not given
    reproject: bool = True             # draw the world from the newest camera pose at display_hz; false: show each generated frame as it was made, at loop.fps
    display_hz: float = 60.0           # displayed frames per second when reprojecting (a window also waits for its display's refresh)
    render_scale: float | str = "auto"  # share of the display size the world is drawn at, then scaled up: auto = 1 on a GPU, 0.75 on a software renderer (llvmpipe)
    video_preset: str = "ultrafast"    # x264 preset of the videos a session encodes as it runs (headless display-rate video, recordings): slower ones make smaller files but take CPU the display needs
    walk_min_seen: float = 0.9         # automatic walks (demo, kiosk attract) keep this share of the source view's coverage in every view
    seen_warning: float = 0.75         # the HUD says the camera left the seen world when the render covers less of the view
    out_dir: str = "out"               # parent folder of session output folders
    refiner: str = "auto"              # auto | geometry | dit (auto: dit when its checkpoints verify; play: on a CUDA GPU)
    device: str = "auto"               # auto | cpu | cuda

    RANGES: ClassVar[dict] = {"headless_seconds": (0.1, 10**7, "seconds of presented video"),
                              "display_hz": (1, 1000, "displayed frames per second"),
                              "walk_min_seen": (0, 1, "a share of the view"), "seen_warning": (0, 1, "a share of the view")}

    def __post_init__(self):
        if self.render_scale != "auto" and (isinstance(self.render_scale, str) or not 0.25 <= self.render_scale <= 1):
            raise ValueError(f"render_scale: {self.render_scale!r} is not auto or a share of the display size from 0.25 to 1")
        if self.video_preset not in X264_PRESETS:
            raise ValueError(f"video_preset: {self.video_preset!r} is not one of {', '.join(X264_PRESETS)}")


@dataclass(frozen=True)
class AppConfig:
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    controllers: ControllersConfig = field(default_factory=ControllersConfig)
    scenes: ScenesConfig = field(default_factory=ScenesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)


def _check_scalar(kind, value, where: str):
    """Return `value` converted to `kind` when that is lossless, else raise ConfigError."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _check_scalar(option, value, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(kind)
        item = args[0] if args else typing.Any
        return tuple(_check_scalar(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if kind is typing.Any:
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is float and isinstance(value, str):      # yaml reads 1e9 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{where}: expected float, got {value!r}") from None
    if kind is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if kind in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{where}: expected {kind.__name__}, got {value!r}")
    if isinstance(kind, type) and not isinstance(value, kind):
        raise ConfigError(f"{where}: expected {kind.__name__}, got {value!r}")
    return value


def out_of_range(value, low: float, high: float, why: str) -> str | None:
    """Why `value` is not in [low, high] ("is out of range: expected 1 to 1000 (why)"), or None."""
    if value is None or (low <= value <= high and not (isinstance(value, float) and math.isnan(value))):
        return None
    return f"is out of range: expected {_number(low)} to {_number(high)} ({why})"


def check_range(value, low: float, high: float, why: str, where: str) -> None:
    """Raise ConfigError naming `where`, the value, its range and why, unless low <= value <= high."""
    if problem := out_of_range(value, low, high, why):
        shown = _number(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else repr(value)
        raise ConfigError(f"{where}={shown} {problem}")


def _number(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def build(cls, raw: dict, where: str):
    """Map one yaml mapping onto dataclass `cls`; unknown keys are errors, not silent defaults."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'top level'}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    if unknown := raw.keys() - names:
        raise ConfigError(f"{where or 'top level'}: unknown keys {sorted(unknown)}; expected some of {sorted(names)}")
    kwargs, ranges = {}, getattr(cls, "RANGES", {})
    for key, value in raw.items():
        kind, here = hints[key], f"{where}.{key}" if where else key       # the key's dotted path
        if dataclasses.is_dataclass(kind):
            kwargs[key] = build(kind, value or {}, here)
            continue
        kwargs[key] = _check_scalar(kind, value, here)
        if key in ranges and isinstance(kwargs[key], tuple):
            for i, item in enumerate(kwargs[key]):
                check_range(item, *ranges[key], where=f"{here}[{i}]")
        elif key in ranges:
            check_range(kwargs[key], *ranges[key], where=here)
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from err
    return obj


def parse_override(text: str) -> tuple[list[str], object]:
    """'runtime.loop.fps=30' -> (['runtime', 'loop', 'fps'], 30). Values are parsed as yaml."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected KEY=VALUE, e.g. runtime.loop.fps=30")
    key, value = text.split("=", 1)
    path = [p for p in key.strip().split(".") if p]
    if not path:
        raise ConfigError(f"override {text!r}: empty key")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: value is not valid yaml ({yaml_problem(err)})") from None
    return path, parsed


def _apply(raw: dict, path: list[str], value, text: str) -> None:
    node = raw
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {text!r}: {part} is not a section")
        node = child
    node[path[-1]] = value


def load_config(path: Path | str | None = None, overrides: typing.Sequence[str] = ()) -> AppConfig:
    """Load config.yaml (or `path`), apply 'a.b=c' overrides and validate everything."""
    path = Path(path) if path else DEFAULT_CONFIG_PATH
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "not found"
        raise ConfigError(f"config file {path} {what}; pass --config PATH or restore config.yaml")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as err:
        raise ConfigError(f"{path}: cannot read it ({err.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (not UTF-8); pass a yaml file like config.yaml") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid yaml ({yaml_problem(err)}); compare it with config.yaml") from None
    from_file = copy.deepcopy(raw)
    for text in overrides:
        keys, value = parse_override(text)
        _apply(raw, keys, value, text)
    try:
        return with_cache_paths(build(AppConfig, raw, ""))
    except ConfigError as err:      # say where the bad value came from: the file, or a --set
        raise ConfigError(f"{path.name}: {err}" if _fails_with(from_file, err) else f"--set {err}") from None


def _fails_with(raw: dict, err: ConfigError) -> bool:
    """Whether the config `raw` alone fails with the same error."""
    try:
        build(AppConfig, raw, "")
    except ConfigError as own:
        return str(own) == str(err)
    return False


def with_cache_paths(cfg: AppConfig) -> AppConfig:
    """The config with its cache folders made absolute inside the user's cache folder (runtime/cache_root.py)."""
    scenes = dataclasses.replace(cfg.scenes, cache_dir=str(in_cache(cfg.scenes.cache_dir)))
    model = dataclasses.replace(cfg.model, compile_cache_dir=str(in_cache(cfg.model.compile_cache_dir)))
    return dataclasses.replace(cfg, scenes=scenes, model=model)


def add_config_args(parser, suffix: str = "") -> None:
    """--config and --set on an argparse parser (every command and benchmark takes them); their values
    land in `config<suffix>` and `overrides<suffix>`."""
    parser.add_argument("--config", dest="config" + suffix, default=None,
                        help="config file (default: config.yaml beside main.py)")
    parser.add_argument("--set", dest="overrides" + suffix, action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set runtime.loop.fps=30 (repeatable)")


def config_from_args(args) -> AppConfig:
    """load_config with the --config and --set of `args` (see add_config_args)."""
    return load_config(args.config, args.overrides)


def yaml_problem(err: yaml.YAMLError) -> str:
    """PyYAML's several-line message as one line: the problem and where it is."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem


def config_to_dict(cfg) -> dict:
    """The resolved config as plain data (for run.json and telemetry)."""
    return dataclasses.asdict(cfg)
