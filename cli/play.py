"""`main.py play`: compose a session from the config and the command line, run it, write its files."""
from __future__ import annotations

import importlib
import json
import signal
import sys
import threading
import time
from pathlib import Path

import torch

from controllers.gamepad import make_gamepad
from controllers.keyboard import PygameKeyboard
from model import checkpoint
from model.refiners import GeometryRefiner
from cli.depth_notice import depth_notice
from cli.device import pick_device
from cli.errors import UserError
from runtime.display import Display
from runtime.present import HeadlessPresenter, WindowPresenter, has_display
from runtime.recorder import Recorder, load_displayed
from runtime.kiosk import KioskInputs, LoopedInputLog
from runtime.scripts import DEMO_PERIOD_S, demo_walk, load_script
from runtime.session import Session, scene_scale
from runtime.telemetry import run_record
from runtime.worker import SceneTensors
from runtime.world_cache import load_or_build_world
from scenes.sample import load_sample_scene
from scenes.scene import load_scene


# The session figures play prints and keeps in telemetry.json ("session").
SUMMARY_KEYS = ("frames_presented", "wall_s", "achieved_fps", "fps", "jitter_ms", "control_to_photon_ms",
                "content_latency_ms", "display", "pose_error", "late_frames", "pacer", "prepared_blocks",
                "gc_pauses", "peak_gpu_mem_gib", "time_to_first_frame_s")


def dit_expected(cfg) -> bool:
    """Whether play will most likely run the DiT: asked for, or `auto` with random weights or the
    DiT's weight files present (a cheap look; make_refiner verifies them)."""
    if cfg.runtime.refiner != "auto":
        return cfg.runtime.refiner == "dit"
    files = checkpoint.discover(cfg.model.checkpoint_dir)
    return cfg.model.random_weights or (files.dit_inspatio is not None and bool(files.dit_base))


def preload_compiler(cfg, device) -> threading.Thread | None:
    """With the DiT expected and compiled on a GPU: start CUDA and import torch.compile's machinery on
    a thread while the scene loads (each takes seconds in a fresh process: benchmarks/startup_probe.py),
    instead of one after the other before the first frame."""
    if not (device.type == "cuda" and cfg.model.compile and dit_expected(cfg)):
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


def make_refiner(cfg, device, scene=None):
    """`runtime.refiner`: geometry, dit, or auto (dit when its checkpoints verify, else geometry)."""
    choice = cfg.runtime.refiner
    if choice not in ("auto", "geometry", "dit"):
        raise UserError(f"runtime.refiner={choice!r}: expected auto, geometry or dit")
    if choice == "geometry":
        return GeometryRefiner()
    from model.dit_refiner import dit_refiner_or_reason
    from model.fp8 import check_fp8_support
    if cfg.model.fp8:
        try:
            check_fp8_support(device)
        except ValueError as err:
            raise UserError(str(err)) from None
    refiner, reason = dit_refiner_or_reason(cfg.model, device, scene)
    if refiner is not None:
        return refiner
    if choice == "dit":
        raise UserError(f"runtime.refiner=dit: {reason}")
    print(f"roam: geometry refiner (no weights needed): {reason}", file=sys.stderr)
    return GeometryRefiner()


def fused_world(cfg, scene, refiner, device):
    """The fused world state when the config asks for it: by default for the geometry refiner; for
    the DiT only with the experimental `fused_conditioning_for_dit` (it was trained on per-frame renders)."""
    fusion = cfg.scenes.fusion
    if not (fusion.enabled if refiner.name == "geometry" else fusion.fused_conditioning_for_dit):
        return None
    return load_or_build_world(scene, fusion, cfg.scenes.cache_dir, device)


def make_presenter(cfg, scene, out: Path, *, headless: bool, kiosk: bool, device):
    """A window, or files: video.mp4 at the display's rate when reprojecting (x264's veryfast preset:
    half medium's CPU time per frame at the same size), else at loop.fps."""
    if not headless:
        return WindowPresenter(scene.width, scene.height, out_dir=out, fullscreen=kiosk, device=device)
    if cfg.runtime.reproject:
        return HeadlessPresenter(out, cfg.runtime.display_hz, scene.width, scene.height, preset="veryfast")
    return HeadlessPresenter(out, cfg.runtime.loop.fps, scene.width, scene.height)


def make_display(cfg, scene, presenter, world) -> Display | None:
    """With `runtime.reproject`: the display that draws every frame from the camera at present time.
    The fused world (if built) tells which pixels of each source frame are static (the fill image)."""
    if not cfg.runtime.reproject:
        return None
    static = None
    if world is not None:
        def static(i: int):
            return ~world.dynamic(torch.tensor([i]), scene.height, scene.width)[0].cpu().numpy()
    return Display(presenter, scene, scale=scene_scale(scene), static=static or (lambda i: None))


def kiosk_inputs(cfg, live, sinks, seconds):
    """Live controllers behind the kiosk rules; attract mode plays a recorded run or the demo walk."""
    kiosk = cfg.runtime.kiosk
    attract = LoopedInputLog(Path(kiosk.attract_run) / "inputs.jsonl") if kiosk.attract_run else \
        demo_walk(seconds or DEMO_PERIOD_S, cfg.runtime.loop.tick_hz)
    keyboard = next((s for s in sinks if isinstance(s, PygameKeyboard)), None)
    held = (lambda: keyboard.state().held) if keyboard is not None else frozenset
    return KioskInputs([i for i in live if i is not None], attract, idle_timeout_s=kiosk.idle_timeout_s,
                       tick_hz=cfg.runtime.loop.tick_hz, admin_quit=kiosk.admin_quit, held_keys=held)


def output_dir(cfg, out: str | None) -> Path:
    if out:
        return Path(out)
    return Path(cfg.runtime.out_dir) / time.strftime("play-%Y%m%d-%H%M%S")


def controllers_for(cfg, args, headless: bool, seconds, script):
    """(inputs polled each tick, window event sinks, HUD status sources) for this session."""
    inputs, sinks = [], []
    if headless and script is None and not args.kiosk:
        inputs.append(demo_walk(seconds, cfg.runtime.loop.tick_hz))
    if not headless:
        keyboard = PygameKeyboard(cfg.controllers)
        inputs, sinks = [keyboard], [keyboard]
    pad = make_gamepad(cfg.controllers.gamepad, cfg.controllers.scrub_step_s)
    if pad is not None and (not headless or not hasattr(pad, "handle")):   # a pygame pad needs the window
        inputs.append(pad)
        sinks += [pad] if hasattr(pad, "handle") else []
    status = [pad] if pad is not None and hasattr(pad, "status") else []
    if args.kiosk:
        inputs = [kiosk_inputs(cfg, inputs, sinks, seconds)]
        status.append(inputs[0])
    return inputs, sinks, status


def warm_up(refiner, scene) -> None:
    if hasattr(refiner, "warm_up"):
        t0 = time.perf_counter()
        refiner.warm_up(scene.height, scene.width, report=lambda msg: print(f"roam: {msg}", file=sys.stderr))
        print(f"roam: warm-up done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)


def play(cfg, args) -> int:
    started = time.perf_counter()
    device = pick_device(cfg.runtime.device)
    preload = preload_compiler(cfg, device)
    scene = load_play_scene(cfg, args.scene)
    if (notice := depth_notice(scene)) is not None:
        print(notice, file=sys.stderr)
    if preload is not None:
        preload.join()
    t_scene = time.perf_counter()
    refiner = make_refiner(cfg, device, scene)
    t_model = time.perf_counter()
    headless = args.headless or not has_display()
    out, fps = output_dir(cfg, args.out), cfg.runtime.loop.fps
    seconds = args.seconds if args.seconds is not None else (cfg.runtime.headless_seconds if headless else None)
    script = load_script(args.script, scene.c2w) if args.script else None
    shown = load_displayed(Path(args.script)) if args.script and Path(args.script).is_dir() else None
    presenter = make_presenter(cfg, scene, out, headless=headless, kiosk=args.kiosk, device=device)
    inputs, sinks, status = controllers_for(cfg, args, headless, seconds, script)
    world = fused_world(cfg, scene, refiner, device)
    display = make_display(cfg, scene, presenter, world)
    live_content = display is not None and isinstance(refiner, GeometryRefiner)
    tensors = SceneTensors(scene, device, None if live_content else world)
    video_fps = cfg.runtime.display_hz if display is not None else fps
    takes = iter(range(1, 10**6))
    new_recorder = lambda: Recorder(out / f"recording-{next(takes)}", video_fps, scene.width, scene.height)
    t_world = time.perf_counter()

    def setup() -> None:
        """Warm-up on the generation thread, which owns the CUDA state (PyTorch keeps cuDNN's
        execution plans per thread: warmed on another thread, the first blocks would pay again)."""
        t0 = time.perf_counter()
        warm_up(refiner, scene)
        tensors.warm_up()
        print(f"roam: ready in {time.perf_counter() - started:.1f} s (scene{' and compiler' if preload else ''} "
              f"{t_scene - started:.1f} s, model {t_model - t_scene:.1f} s, world {t_world - t_model:.1f} s, "
              f"warm-up {time.perf_counter() - t0:.1f} s)", file=sys.stderr)

    session = Session(cfg, scene, refiner, presenter, device=device, inputs=inputs, event_sinks=sinks,
                      scene_tensors=tensors,
                      script=script, frame_locked=headless and not args.realtime,
                      recorder=Recorder(out / "recording", video_fps, scene.width, scene.height) if args.record else None,
                      max_frames=round(seconds * fps) if seconds is not None else None,
                      new_recorder=new_recorder, status=status,
                      max_worker_restarts=cfg.runtime.kiosk.max_worker_restarts if args.kiosk else 0,
                      worker_setup=setup, display=display, live_content=live_content, shown=shown)
    drawn = f", drawn at {cfg.runtime.display_hz:g} Hz from the camera at present time " \
            f"(GL: {display.gl_renderer})" if display else \
        (", frames by CUDA-OpenGL interop" if presenter.accepts_device_frames else "")
    print(f"roam: {'headless' if headless else 'window'} session, {refiner.name} refiner on {device}{drawn}, "
          f"output in {out}", file=sys.stderr)
    interrupted = stop_on_sigint(session)
    run, summary = run_record(["main.py", *sys.argv[1:]], device), None
    run["refiner"] = refiner.name
    if display is not None:
        run["gl_renderer"] = display.gl_renderer
    try:
        summary = session.run()
        if session.first_present_s is not None:
            summary["time_to_first_frame_s"] = session.first_present_s - started
        summary = {k: summary.get(k) for k in SUMMARY_KEYS}
        print(json.dumps(summary))
    finally:                   # also on Ctrl-C: the video and recording are already finalized
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if hasattr(refiner, "close"):
            refiner.close()    # background work, e.g. a package build: the next start builds the rest
        out.mkdir(parents=True, exist_ok=True)
        session.telemetry.write_json(out / "telemetry.json", run=run, session=summary)
        print(f"roam: wrote {out}", file=sys.stderr)
    if interrupted:
        print("roam: interrupted", file=sys.stderr)
    return 130 if interrupted else 0


def stop_on_sigint(session) -> list:
    """The first Ctrl-C ends the session at the next loop step, so the video, the recording and the
    telemetry are finished whole; a second one stops at once. -> a list that is non-empty once asked."""
    asked = []

    def handler(signum, frame):
        if asked:
            raise KeyboardInterrupt
        asked.append(signum)
        session.quit = True
    signal.signal(signal.SIGINT, handler)
    return asked
