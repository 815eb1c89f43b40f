"""`main.py play`: compose a session from the config and the command line, run it, write its files."""
from __future__ import annotations

import importlib
import json
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from controllers.gamepad import make_gamepad
from controllers.keyboard import PygameKeyboard
from model import checkpoint
from cli.depth_notice import depth_notice
from cli.device import pick_device
from cli.errors import UserError
from cli.refiner_choice import make_refiner
from runtime.display import Display
from runtime.present import HeadlessPresenter, WindowPresenter, has_display
from runtime.recorder import Recorder, load_displayed
from runtime.kiosk import KioskInputs, LoopedInputLog
from runtime.loading import LoadingCancelled, run_with_loading_screen
from runtime.scripts import DEMO_PERIOD_S, demo_walk, load_script
from runtime.session import Session, scene_scale
from runtime.telemetry import run_record
from runtime.worker import SceneTensors
from runtime.world_cache import load_or_build_world
from scenes.atomic import writable_folder
from scenes.sample import load_sample_scene
from scenes.scene import load_scene


# The session figures play prints and keeps in telemetry.json ("session").
SUMMARY_KEYS = ("frames_presented", "wall_s", "achieved_fps", "fps", "jitter_ms", "control_to_photon_ms",
                "content_latency_ms", "display", "pose_error", "late_frames", "pacer", "prepared_blocks",
                "gc_pauses", "peak_gpu_mem_gib", "time_to_first_frame_s", "frame_locked")


def dit_expected(cfg, random_dit=None) -> bool:
    """Whether play will most likely run the DiT: asked for, or `auto` with random weights or the
    DiT's weight files present (a cheap look; make_refiner verifies them)."""
    if cfg.runtime.refiner != "auto":
        return cfg.runtime.refiner == "dit"
    files = checkpoint.discover(cfg.model.checkpoint_dir)
    return random_dit is not None or (files.dit_inspatio is not None and bool(files.dit_base))


def preload_compiler(cfg, device, random_dit=None) -> threading.Thread | None:
    """With the DiT expected and compiled on a GPU: start CUDA and import torch.compile's machinery on
    a thread while the scene loads (each takes seconds in a fresh process: benchmarks/startup_probe.py),
    instead of one after the other before the first frame."""
    if not (device.type == "cuda" and cfg.model.compile and dit_expected(cfg, random_dit)):
        return None
    from model.dit_refiner import use_compile_cache
    use_compile_cache(cfg.model.compile_cache_dir)

    def load() -> None:
        import torch
        torch.zeros(1, device=device)
        importlib.import_module("torch._inductor.compile_fx")
    thread = threading.Thread(target=load, name="preload-compiler", daemon=True)
    thread.start()
    return thread


def load_play_scene(cfg, name: str | None):
    """No argument: the built-in sample. A folder: a built Scene. A video: build it first."""
    if name is None:
        print("roam: loading the built-in sample scene (built and cached on first use)", file=sys.stderr)
        return load_sample_scene(cfg.scenes)
    path = Path(name)
    if path.is_dir():
        return load_scene(path)
    if path.is_file():
        from scenes.build import build_scene
        return build_scene(cfg, path, device=pick_device(cfg.runtime.device))
    raise UserError(f"{name}: no such video or scene folder")


def fused_world(cfg, scene, refiner, device):
    """The fused world state, for a refiner that renders it (the geometry refiner; the DiT was trained
    on per-frame renders), when scenes.fusion.enabled."""
    fusion = cfg.scenes.fusion
    if not (fusion.enabled and refiner.fused_world):
        return None
    return load_or_build_world(scene, fusion, cfg.scenes.cache_dir, device)


def make_presenter(cfg, size: tuple[int, int], out: Path, *, headless: bool, kiosk: bool, device):
    """A window, or files: video.mp4 at the display's rate when reprojecting (encoded as it runs, at
    `runtime.video_preset`), else at loop.fps. size: (width, height)."""
    if not headless:
        return WindowPresenter(*size, out_dir=out, fullscreen=kiosk, device=device)
    if cfg.runtime.reproject:
        return HeadlessPresenter(out, cfg.runtime.display_hz, *size, preset=cfg.runtime.video_preset)
    return HeadlessPresenter(out, cfg.runtime.loop.fps, *size)


def make_display(cfg, scene, presenter, world) -> Display | None:
    """With `runtime.reproject`: the display that draws every frame from the camera at present time.
    The fused world (if built) tells which pixels of each source frame are static (the fill image)."""
    if not cfg.runtime.reproject:
        return None
    static = None
    if world is not None:
        def static(i: int):
            return ~world.dynamic(torch.tensor([i]), scene.height, scene.width)[0].cpu().numpy()
    return Display(presenter, scene, scale=scene_scale(scene), static=static or (lambda i: None),
                   render_scale=cfg.runtime.render_scale)


def kiosk_inputs(cfg, scene, live, sinks, seconds):
    """Live controllers behind the kiosk rules; attract mode plays a recorded run or the demo walk."""
    kiosk = cfg.runtime.kiosk
    attract = LoopedInputLog(Path(kiosk.attract_run) / "inputs.jsonl") if kiosk.attract_run else \
        demo_walk(scene, seconds or DEMO_PERIOD_S, cfg.runtime.loop.tick_hz, min_seen=cfg.runtime.walk_min_seen)
    keyboard = next((s for s in sinks if isinstance(s, PygameKeyboard)), None)
    return KioskInputs([i for i in live if i is not None], attract, idle_timeout_s=kiosk.idle_timeout_s,
                       tick_hz=cfg.runtime.loop.tick_hz, admin_quit=kiosk.admin_quit,
                       held_keys=keys_down(keyboard) if keyboard is not None else frozenset)


def keys_down(keyboard: PygameKeyboard):
    """-> the key names held now or pressed since the last tick (a quick tap of a whole key
    combination, such as the kiosk's admin quit, counts though no key is held at the tick)."""
    return lambda: keyboard.state().held | keyboard.state().pressed


def output_dir(cfg, out: str | None) -> Path:
    if out:
        return Path(out)
    return Path(cfg.runtime.out_dir) / time.strftime("play-%Y%m%d-%H%M%S")


def controllers_for(cfg, args, scene, keyboard: PygameKeyboard | None, seconds, script):
    """(inputs polled each tick, window event sinks, HUD status sources) for this session; a window's
    keyboard, or None headless (then the demo walk drives, unless a script or the kiosk does)."""
    inputs, sinks = [], []
    headless = keyboard is None
    if headless and script is None and not args.kiosk:
        inputs.append(demo_walk(scene, seconds, cfg.runtime.loop.tick_hz, min_seen=cfg.runtime.walk_min_seen))
    if not headless:
        inputs, sinks = [keyboard], [keyboard]
    pad = make_gamepad(cfg.controllers.gamepad, cfg.controllers.scrub_step_s)
    if pad is not None and (not headless or not pad.needs_window_events):
        inputs.append(pad)
        sinks += [pad] if pad.needs_window_events else []
    status = [pad] if pad is not None else []
    if args.kiosk:
        inputs = [kiosk_inputs(cfg, scene, inputs, sinks, seconds)]
        status.append(inputs[0])
    return inputs, sinks, status


def warm_up(refiner, scene) -> None:
    t0 = time.perf_counter()
    refiner.warm_up(scene.height, scene.width, report=lambda msg: print(f"roam: {msg}", file=sys.stderr))
    print(f"roam: warm-up done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)


@dataclass
class Parts:
    """What play loads before a session can start, and when each part was ready (perf_counter s)."""
    scene: object
    refiner: object
    world: object
    preloaded: bool
    t_scene: float
    t_model: float
    t_world: float


def load_parts(cfg, args, device, report, random_dit=None) -> Parts:
    """The scene, the refiner and the fused world; `report(step)` names each step as it starts.
    random_dit: see play."""
    preload = preload_compiler(cfg, device, random_dit)
    report("loading the built-in sample scene" if args.scene is None else f"loading {Path(args.scene).name}")
    scene = load_play_scene(cfg, args.scene)
    if (notice := depth_notice(scene)) is not None:
        print(notice, file=sys.stderr)
    if preload is not None:
        preload.join()
    t_scene = time.perf_counter()
    report(f"loading the refiner ({cfg.runtime.refiner})")
    refiner = make_refiner(cfg, device, scene, random_dit, real_time=True)
    t_model = time.perf_counter()
    report("fusing the world (once per scene)")
    world = fused_world(cfg, scene, refiner, device)
    return Parts(scene, refiner, world, preload is not None, t_scene, t_model, time.perf_counter())


def run(cfg, args) -> int:
    return play(cfg, args, args.stop)


def play(cfg, args, stop, random_dit=None) -> int:
    """Run a session; `stop` (cli/stop_signals.py): the first stop signal ends it cleanly, with
    the exit code 128 + its number. random_dit: bench --play's DiT (a DiTConfig) with random weights
    instead of checkpoints."""
    started = time.perf_counter()
    out, fps = writable_folder(output_dir(cfg, args.out)), cfg.runtime.loop.fps   # before anything slow
    if args.script and not Path(args.script).exists():
        raise UserError(f"--script {args.script}: no such file or folder; give a trajectory .txt, a camera-path "
                        ".json or a recorded run folder")
    device = pick_device(cfg.runtime.device)
    headless = args.headless or not has_display()
    if headless:
        parts = load_parts(cfg, args, device, report=lambda step: None, random_dit=random_dit)
        presenter = make_presenter(cfg, (parts.scene.width, parts.scene.height), out, headless=True,
                                   kiosk=args.kiosk, device=device)
    else:                           # the window first, so the loading shows on it rather than a black screen
        presenter = make_presenter(cfg, (cfg.scenes.width, cfg.scenes.height), out, headless=False,
                                   kiosk=args.kiosk, device=device)
        keyboard = PygameKeyboard(cfg.controllers)
        admin, keys = frozenset(cfg.runtime.kiosk.admin_quit), keys_down(keyboard)
        quit_asked = (lambda: bool(admin) and admin <= keys()) if args.kiosk else (lambda: keyboard.poll().app.quit)
        try:
            parts = run_with_loading_screen(presenter, lambda report: load_parts(cfg, args, device, report, random_dit),
                                            handle=keyboard.handle, quit_asked=quit_asked)
        except LoadingCancelled:
            presenter.close()
            print("roam: closed while loading", file=sys.stderr)
            return 0
    scene, refiner = parts.scene, parts.refiner
    script = load_script(args.script, scene.c2w) if args.script else None
    seconds = args.seconds if args.seconds is not None else \
        (cfg.runtime.headless_seconds if headless and not args.kiosk and script is None else None)
    inputs, sinks, status = controllers_for(cfg, args, scene, None if headless else keyboard, seconds, script)
    shown = load_displayed(Path(args.script)) if args.script and Path(args.script).is_dir() else None
    display = make_display(cfg, scene, presenter, parts.world)
    live_content = display is not None and refiner.display_draws
    tensors = SceneTensors(scene, device, None if live_content else parts.world)
    video_fps = cfg.runtime.display_hz if display is not None else fps
    takes = iter(range(1, 10**6))

    def new_recorder() -> Recorder:
        return Recorder(out / f"recording-{next(takes)}", video_fps, scene.width, scene.height,
                        preset=cfg.runtime.video_preset)
    t_scene, t_model, t_world = parts.t_scene, parts.t_model, parts.t_world

    def setup() -> None:
        """Warm-up on the generation thread, which owns the CUDA state (PyTorch keeps cuDNN's
        execution plans per thread: warmed on another thread, the first blocks would pay again)."""
        t0 = time.perf_counter()
        warm_up(refiner, scene)
        tensors.warm_up()
        print(f"roam: ready in {time.perf_counter() - started:.1f} s (scene{' and compiler' if parts.preloaded else ''} "
              f"{t_scene - started:.1f} s, model {t_model - t_scene:.1f} s, world {t_world - t_model:.1f} s, "
              f"warm-up {time.perf_counter() - t0:.1f} s)", file=sys.stderr)

    session = Session(cfg, scene, refiner, presenter, device=device, inputs=inputs, event_sinks=sinks,
                      scene_tensors=tensors,
                      script=script, frame_locked=headless and not args.realtime,
                      recorder=Recorder(out / "recording", video_fps, scene.width, scene.height,
                                        preset=cfg.runtime.video_preset) if args.record else None,
                      max_frames=max(1, round(seconds * fps)) if seconds is not None else None,
                      new_recorder=new_recorder, status=status,
                      max_worker_restarts=cfg.runtime.kiosk.max_worker_restarts if args.kiosk else 0,
                      worker_setup=setup, display=display, live_content=live_content, shown=shown)
    drawn = f", drawn at {cfg.runtime.display_hz:g} Hz from the camera at present time " \
            f"(GL: {display.gl_renderer}, render scale {display.render_scale:g})" if display else \
        (", frames by CUDA-OpenGL interop" if presenter.accepts_device_frames else "")
    print(f"roam: {'headless' if headless else 'window'} session, {refiner.name} refiner on {device}{drawn}, "
          f"output in {out}", file=sys.stderr)
    record, summary = run_record(["main.py", *args.argv], device), None
    record["refiner"] = refiner.name
    if display is not None:
        record["gl_renderer"], record["render_scale"] = display.gl_renderer, display.render_scale
    try:
        with stop.graceful(session.request_quit):
            summary = session.run()
        if session.first_present_s is not None:
            summary["time_to_first_frame_s"] = session.first_present_s - started
        summary = {k: summary.get(k) for k in SUMMARY_KEYS}
        print(json.dumps(summary))
    finally:                   # also after a second stop signal: the video and recording are already finalized
        refiner.close()        # background work, e.g. a package build: the next start builds the rest
        session.telemetry.write_json(out / "telemetry.json", run=record, session=summary)
        print(f"roam: wrote {out}", file=sys.stderr)
    if stop.exit_code is not None:
        print("roam: interrupted", file=sys.stderr)
        return stop.exit_code
    return 0
