"""The engine of `play` and `render`: one loop, two clocks.

Each loop iteration: run the fixed ticks that are due (poll controllers, apply time commands to the
WorldClock, integrate the CameraRig), hand finished blocks from the generation worker to the jitter
buffer, plan the next block when the buffer runs low, and present the frame that is due.

- Real time (`frame_locked=False`): wall clock; the presenter paces frames from the jitter buffer
  and holds the last frame when generation is late. The tick never waits for generation.
- Frame locked (`frame_locked=True`, headless and offline): a virtual clock that advances one frame
  period per presented frame and waits for every frame, so the output is complete and deterministic.
"""
from __future__ import annotations

import logging
import queue
import time
from dataclasses import dataclass

import numpy as np
import torch

from controllers.commands import Commands, TimeCommand, merge
from controllers.scripted import ScriptedPath
from runtime.config import AppConfig
from runtime.pacing import JitterBuffer, Pacer
from runtime.present import HudState
from runtime.probe import DepthProbe
from runtime.rig import CameraRig
from runtime.telemetry import GcPauses, Telemetry
from runtime.ticker import FixedTicker
from runtime.worker import BlockRequest, GeneratedBlock, GenerationWorker, PrepareHint, SceneTensors
from runtime.world_clock import WorldClock
from scenes.atomic import close_all

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameInfo:
    """What is known about one presented frame."""
    block_id: int
    source_index: int
    c2w: np.ndarray            # [4, 4] float64, the camera it was rendered from


class VirtualClock:
    """Time that moves only when told to (frame-locked sessions)."""

    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class Session:
    """Runs one session until `max_frames` are presented, the script ends, or quit is asked.

    inputs: objects with `poll() -> Commands` (keyboard, gamepads, input-log replayers), polled once
    per tick. event_sinks: objects with `handle(pygame_event)` (the window's keyboard and pads).
    script: a ScriptedPath that dictates every frame's pose and source index (replay, render).
    worker_setup: runs first on the generation thread (the refiner's warm-up); no block is planned
    before it is done, while the loop keeps the window responsive."""

    def __init__(self, cfg: AppConfig, scene, refiner, presenter, *, device: torch.device,
                 inputs=(), event_sinks=(), script: ScriptedPath | None = None, recorder=None,
                 frame_locked: bool = False, max_frames: int | None = None,
                 new_recorder=None, status=(), max_worker_restarts: int = 0, scene_tensors=None,
                 worker_setup=None):
        self.cfg, self.scene, self.presenter, self.recorder = cfg, scene, presenter, recorder
        self.inputs, self.event_sinks, self.script = list(inputs), list(event_sinks), script
        self.new_recorder, self.status = new_recorder, list(status)   # recorder factory; objects with .status
        self.frame_locked, self.max_frames = frame_locked, max_frames
        self.fps = cfg.runtime.loop.fps
        self.virtual = VirtualClock() if frame_locked else None
        self.now = self.virtual if frame_locked else time.perf_counter
        self.telemetry = Telemetry(fps=self.fps, now=time.perf_counter)
        self.ticker = FixedTicker(cfg.runtime.loop.tick_hz, cfg.runtime.loop.max_catchup_ticks, now=self.now)
        self.source_c2w = scene.c2w.double().numpy()                                  # [N, 4, 4]
        self.clock = WorldClock(scene.num_frames, scene.fps, self.fps, cfg.runtime.clock)
        scale = scene_scale(scene)
        probe = DepthProbe(scene, lambda: self.clock.index, body_radius=0.5 * cfg.runtime.rig.collision_margin * scale)
        self.rig = CameraRig(cfg.runtime.rig, scene_scale=scale, source_c2ws=self.source_c2w, probe=probe)
        self.buffer = JitterBuffer()
        self.pacer = Pacer(self.buffer, 1.0 / self.fps, cfg.runtime.pacing)
        self.refiner = refiner
        self._done: queue.Queue[GeneratedBlock] = queue.Queue()
        tensors = scene_tensors if scene_tensors is not None else SceneTensors(scene, device)
        self.worker = GenerationWorker(tensors, refiner, self._done.put, mark=self.telemetry.mark,
                                       keep_on_device=getattr(presenter, "accepts_device_frames", False),
                                       setup=worker_setup)
        self.max_worker_restarts, self.worker_restarts = max_worker_restarts, 0
        self.hud = HudState(visible=True)
        self.tick = 0
        self.frames_presented = 0
        self.quit = False
        self.first_present_s: float | None = None  # perf_counter time of the first presented frame
        self._next_block = 0
        self._in_flight = 0            # frames requested and not yet arrived
        self._restart = True           # the next block starts a fresh model context
        self._script_pos = 0
        self._submitted: dict[int, float] = {}     # block id -> submit time
        self._make_s: dict[bool, list[float]] = {False: [], True: []}   # recent blocks' submit-to-arrival
        #                                            times, apart for blocks prepared ahead (True) or not
        self._hint: tuple[int, tuple[int, ...]] | None = None   # (block id, source frames) last hinted
        self.prepared_blocks = 0

    def request_quit(self) -> None:
        """End the session at its next loop step (safe from a signal handler: it only sets a flag)."""
        self.quit = True

    # ---- the loop --------------------------------------------------------------------------
    def run(self) -> dict:
        """Run to the end; returns the telemetry summary plus session counters."""
        self.worker.start()
        try:
            self._await_worker()
            wall0 = time.perf_counter()
            self.ticker.restart()                  # input and time start now, not during the warm-up
            with GcPauses() as gc_pauses:
                while not self._finished():
                    self._iterate()
        finally:
            self.worker.stop()
            close_all(self.presenter.close, *([self.recorder.close] if self.recorder is not None else []))
        wall_s = time.perf_counter() - wall0
        summary = self.telemetry.summary()
        summary.update(wall_s=wall_s, achieved_fps=self.frames_presented / wall_s if wall_s > 0 else None,
                       frame_locked=self.frame_locked, dropped_requests=self.worker.mailbox.dropped,
                       worker_restarts=self.worker_restarts, prepared_blocks=self.prepared_blocks,
                       source_latent_cache=self.refiner.source_cache.stats() if hasattr(self.refiner, "source_cache") else None,
                       pacer=dict(self.pacer.counts), ticks=self.tick, ticker=self.ticker.stats(),
                       gc_pauses=gc_pauses.summary(),
                       peak_gpu_mem_gib=peak_gpu_memory_gib(self.worker.scene.device))
        return summary

    def _finished(self) -> bool:
        if self.quit or (self.max_frames is not None and self.frames_presented >= self.max_frames):
            return True
        if self.worker.error is not None:
            if self.worker_restarts >= self.max_worker_restarts:
                raise RuntimeError(f"generation worker failed: {self.worker.error}") from self.worker.error
            self._restart_worker()
        return self._script_over() and self._in_flight == 0 and len(self.buffer) == 0

    def _script_over(self) -> bool:
        return self.script is not None and not self.script.loop and self._script_pos >= len(self.script)

    def _restart_worker(self) -> None:
        """Watchdog (kiosk): replace a crashed worker, drop what it had in flight, start a fresh context."""
        log.warning("generation worker crashed (%s); restarting it", self.worker.error)
        self.worker = GenerationWorker(self.worker.scene, self.refiner, self._done.put, mark=self.worker._mark,
                                       keep_on_device=self.worker.keep_on_device, setup=self.worker.setup)
        self.worker.start()
        self._in_flight, self._restart, self._hint = 0, True, None
        self._submitted.clear()
        self.worker_restarts += 1

    def _iterate(self) -> None:
        self._pump_events()
        due, _ = self.ticker.advance()
        for _ in range(due):
            self._tick()
        self._collect(wait=False)
        self._plan()
        if self.frame_locked:
            self._present_locked()
        else:
            item = self.pacer.poll(time.perf_counter(), draining=self._draining())
            if item is not None:
                self._present(*item)
            self._sleep()

    def _await_worker(self) -> None:
        """While the worker's set-up (warm-up) runs: keep the window's events flowing and show how
        long it has been, but no ticks, so neither input nor time moves before a block can show it."""
        t0 = time.perf_counter()
        compiles = ["(the first start compiles for a minute or two; later starts reuse it)"] \
            if hasattr(self.refiner, "warm_up") else []
        while not self.worker.ready.wait(0.1) and not self.quit:
            self._pump_events()
            self.presenter.show_status([f"roam: warming up the {self.refiner.name} refiner, "
                                        f"{time.perf_counter() - t0:.0f} s", *compiles])

    def _present_locked(self) -> None:
        while len(self.buffer) == 0 and (self._in_flight > 0 or self.worker.mailbox.pending):
            if self.worker.error is not None or self.quit:   # let _finished() restart it, raise or stop
                return
            self._collect(wait=True)
        if len(self.buffer) == 0:
            return
        self._present(*self.buffer.pop())
        self.virtual.t = self.frames_presented / self.fps

    def _draining(self) -> bool:
        return self._script_over() and self._in_flight == 0

    def _sleep(self) -> None:
        now = time.perf_counter()
        wake = [self.ticker.time_to_next_tick()]
        if self.pacer.next_due_s is not None:
            wake.append(self.pacer.next_due_s - now)
        time.sleep(min(max(0.0, min(wake)), 0.005))

    # ---- input -----------------------------------------------------------------------------
    def _pump_events(self) -> None:
        for event in self.presenter.events():
            for sink in self.event_sinks:
                sink.handle(event)

    def _tick(self) -> None:
        cmds = merge(*(source.poll() for source in self.inputs)) if self.inputs else Commands()
        if self.recorder is not None and not cmds.is_idle:
            self.recorder.log_tick(self.tick, cmds.to_dict())
        self._apply_app(cmds)
        self.clock.apply(cmds.time)
        if cmds.time != TimeCommand():
            self._send_hint()           # source time changed: prepare the frames the next block will show
        if cmds.camera.reset or cmds.camera.mode is not None or cmds.camera.cycle_mode:
            self._restart = True        # the camera jumps: the next block starts a fresh model context
        self.rig.step(cmds.camera, 1.0 / self.cfg.runtime.loop.tick_hz, self.source_c2w[self.clock.index])
        self.telemetry.camera_command(self.tick, cmds.camera)
        self.tick += 1

    def _apply_app(self, cmds: Commands) -> None:
        app = cmds.app
        if app.quit:
            self.quit = True
        if app.toggle_hud:
            self.hud.visible = not self.hud.visible
        if app.toggle_fullscreen and hasattr(self.presenter, "toggle_fullscreen"):
            self.presenter.toggle_fullscreen()
        if app.screenshot and hasattr(self.presenter, "request_screenshot"):
            self.presenter.request_screenshot()
        if app.toggle_record and self.new_recorder is not None:
            if self.recorder is None:
                self.recorder = self.new_recorder()
            else:
                self.recorder.close()
                self.recorder = None

    # ---- planning and generation ------------------------------------------------------------
    def _plan_due(self) -> bool:
        """Frame locked: keep one block ahead. Real time: just in time, one block at a time: plan when
        the buffered frames last only `plan_margin_s` longer than recent blocks took to make, so
        each block carries the freshest camera input (control-to-photon latency). A block the worker
        prepares ahead takes less time after its request, so it is planned later, from the make
        times of prepared blocks. A time command just before the plan leaves the worker preparing
        when the request comes; the request waits for it, and the plan margin absorbs most of that."""
        if self.worker.mailbox.pending or not self.worker.ready.is_set():   # not before its warm-up is done
            return False
        if self.frame_locked:
            low_water = self.refiner.frames_for_block(False) + self.cfg.runtime.pacing.target_buffer_frames
            return len(self.buffer) + self._in_flight < low_water
        if self._in_flight > 0:
            return False
        prepared = self._hint is not None and not self._restart    # hinted for this block
        history = self._make_s[True] if prepared and self._make_s[True] else self._make_s[False]
        make_s = max(history) if history else float("inf")
        lead_s = len(self.buffer) / self.fps                 # until the buffered frames run out, ...
        if self.pacer.next_due_s is not None:                # ... counted from the next frame's slot
            lead_s += max(0.0, self.pacer.next_due_s - time.perf_counter())
        return lead_s <= make_s + self.cfg.runtime.pacing.plan_margin_s

    def _plan(self) -> None:
        if not self._plan_due():
            return
        if self._script_over():
            return
        if self.script is not None and self._script_pos in self.script.restarts:
            self._restart = True                         # the recorded run restarted here
        n = self.refiner.frames_for_block(self._restart)
        poses, indices, discontinuity = self._next_frames(n)
        if len(indices) == 0:
            return
        request = BlockRequest(block_id=self._next_block, source_indices=tuple(int(i) for i in indices),
                               target_c2w=poses, restart=self._restart or discontinuity,
                               input_sampled_s=time.perf_counter(), command_tick=self.tick,
                               issued_s=time.perf_counter())
        self.telemetry.mark(request.block_id, "input", request.input_sampled_s, tick=self.tick)
        self.telemetry.mark(request.block_id, "request", request.issued_s)
        self.worker.submit(request)
        if self.recorder is not None:
            self.recorder.log_block(request.block_id, request.restart, request.source_indices, request.target_c2w)
        self._submitted[request.block_id] = time.perf_counter()
        self._next_block += 1
        self._in_flight += len(indices)
        self._restart = False
        self._send_hint()

    def _send_hint(self) -> None:
        """Tell the worker which source frames the next block will show if nothing changes, so it runs
        the block's camera-independent work while it waits (real time only: a frame-locked session
        keeps a request waiting, so its worker never idles)."""
        if self.frame_locked or not self.worker.can_prepare:
            return
        n = self.refiner.frames_for_block(False)
        if self.script is not None:
            indices = tuple(int(i) for i in self.script.window(self._script_pos, n)[1])
            continues = self._script_pos not in self.script.restarts
        else:
            frames = self.clock.peek_frames(n)
            indices, continues = tuple(f.index for f in frames), not any(f.discontinuity for f in frames)
        hint = (self._next_block, indices) if continues and len(indices) == n else None
        if hint is not None and hint != self._hint:      # a pause hints the same frames block after block
            self.worker.prepare(PrepareHint(*hint))
        self._hint = hint

    def _next_frames(self, n: int) -> tuple[np.ndarray, np.ndarray, bool]:
        """Poses [n, 4, 4] and source indices [n] of the next n frames, and whether source time jumps."""
        if self.script is not None:          # a script is one continuous take, as in the reference
            poses, indices = self.script.window(self._script_pos, n)
            self._script_pos += len(indices)
            return poses, indices, False
        frames = [self.clock.advance() for _ in range(n)]
        indices = np.array([f.index for f in frames])
        ride = self.source_c2w[indices] if self.cfg.runtime.rig.ride_along else None
        poses = self.rig.predict(n, 1.0 / self.fps, ride)
        return poses, indices, any(f.discontinuity for f in frames)

    def _collect(self, wait: bool) -> None:
        try:
            while True:
                block = self._done.get(timeout=1.0) if wait else self._done.get_nowait()
                self._accept(block)
                wait = False
        except queue.Empty:
            pass

    def _accept(self, block: GeneratedBlock) -> None:
        req = block.request
        self._in_flight -= len(req.source_indices)
        history = self._make_s[block.prepared]
        self._make_s[block.prepared] = (history + [time.perf_counter() - self._submitted.pop(req.block_id)])[-8:]
        self.prepared_blocks += block.prepared
        offset = len(req.source_indices) - len(block.frames)      # a short block keeps its last frames
        for i, frame in enumerate(block.frames):
            j = offset + i
            self.buffer.push(frame, FrameInfo(req.block_id, req.source_indices[j], req.target_c2w[j]))

    # ---- presentation -----------------------------------------------------------------------
    def _present(self, frame: torch.Tensor, info: FrameInfo) -> None:
        self.hud.lines = self._hud_lines(info)
        self.presenter.present(frame, self.hud)
        now = time.perf_counter()
        self.telemetry.present(info.block_id, now)
        if self.first_present_s is None:
            self.first_present_s = now
        if self.recorder is not None:
            self.recorder.log_frame(frame, info.source_index, info.c2w)
        self.frames_presented += 1

    def _hud_lines(self, info: FrameInfo) -> list[str]:
        s = self.telemetry.summary() if self.frames_presented % 48 == 0 else None   # HUD stats every 2 s
        if s is not None:
            self._hud_stats = s
        s = getattr(self, "_hud_stats", {}) or {}
        lat = s.get("control_to_photon_ms", {})
        state = "paused" if self.clock.paused else f"{self.clock.speed:g}x {'rev' if self.clock.direction < 0 else 'fwd'}"
        return [f"roam  {self.refiner.name} refiner  {self.rig.mode} mode",
                (f"fps {s['fps']:5.1f}" if s.get("fps") else "fps    --") + "   latency p50 "
                + (f"{lat['p50']:4.0f} ms" if "p50" in lat else "  -- ms"),
                f"time {info.source_index:4d}/{self.scene.num_frames - 1}  {state}",
                f"buffer {len(self.buffer):2d} frames  block {info.block_id}",
                *[str(source.status) for source in self.status],
                f"REC {self.recorder.frames} frames" if self.recorder is not None else "C records"]


def peak_gpu_memory_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def scene_scale(scene) -> float:
    """How far the near scene is from its cameras: the 20th percentile of the first frame's depth
    (the median is dominated by sky and far walls, which would make walking far too fast)."""
    depth = scene.depth[0].flatten()
    valid = depth[torch.isfinite(depth) & (depth > 0)]
    return float(torch.quantile(valid[:: max(1, valid.numel() // 100_000)], 0.2)) if valid.numel() else 1.0
