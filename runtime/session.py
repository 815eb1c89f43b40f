"""The engine of `play` and `render`: one loop, two clocks.

Each loop iteration: run the fixed ticks that are due (poll controllers, apply time commands to the
WorldClock, integrate the CameraRig), hand finished blocks from the generation worker to the jitter
buffer, request the next block when the planner says so (runtime/planner.py), and present the frame
the session's clock says is due (runtime/timing.py):

- Real time (`frame_locked=False`): wall clock; the presenter paces frames from the jitter buffer
  and holds the last frame when generation is late. The tick never waits for generation.
- Frame locked (`frame_locked=True`, headless and offline): a virtual clock that advances one frame
  period per presented frame and waits for every frame, so the output is complete and deterministic.

The HUD's text is runtime/hud.py's; the watchdog replaces a crashed worker (GenerationWorker.replacement).

With a `display` (runtime/display.py, `runtime.reproject`), frames from the jitter buffer are not
shown as they are: they become the content, and the display draws the world from the rig's pose at
present time, `runtime.display_hz` times a second (frame locked: one display period per frame).
The camera reaches the screen at the display's rate; content still changes at `loop.fps`. With
`live_content` (the geometry refiner) no blocks are generated at all: the planner hands the world
clock's source frames straight to the jitter buffer and the display draws the point cloud itself.
"""
from __future__ import annotations

import logging
import math
import queue
import sys
import time
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from controllers.commands import Commands, TimeCommand, merge
from controllers.help import help_rows
from controllers.scripted import ScriptedPath
from runtime.config import AppConfig
from runtime.display import GeneratedView
from runtime.hud import Hud, HudView
from runtime.pacing import JitterBuffer, Pacer
from runtime.planner import MakeTimes, PlanState
from runtime.probe import DepthProbe
from runtime.rig import CameraRig
from runtime.telemetry import GcPauses, PoseTrace, Telemetry
from runtime.ticker import FixedTicker
from runtime.timing import FrameLocked, RealTime, next_display_due
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
    depth: torch.Tensor | None = None   # float32 [H, W] camera z of its render (for warping it), if made
    seen: float | None = None  # share of its pixels the point-cloud render covered


class Session:
    """Runs one session until `max_frames` are presented, the script ends, or quit is asked.

    inputs: objects with `poll() -> Commands` (keyboard, gamepads, input-log replayers), polled once
    per tick. event_sinks: objects with `handle(pygame_event)` (the window's keyboard and pads).
    script: a ScriptedPath that dictates every frame's pose and source index (replay, render).
    frame_locked: the clock that waits for every frame (runtime/timing.py), else real time.
    worker_setup: runs first on the generation thread (the refiner's warm-up); no block is planned
    before it is done, while the loop keeps the window responsive.
    display: a Display that draws every displayed frame from the rig's pose (module docstring);
    live_content: with a display, show the source frames without generating blocks (geometry);
    shown: with a display, the displayed frames of a recorded run to show again (their poses and
    content frames: runtime.recorder.DisplayedFrames), frame locked: exactly as they were."""

    def __init__(self, cfg: AppConfig, scene, refiner, presenter, *, device: torch.device,
                 inputs=(), event_sinks=(), script: ScriptedPath | None = None, recorder=None,
                 frame_locked: bool = False, max_frames: int | None = None,
                 new_recorder=None, status=(), max_worker_restarts: int = 0, scene_tensors=None,
                 worker_setup=None, display=None, live_content: bool = False, shown=None):
        self.cfg, self.scene, self.presenter, self.recorder = cfg, scene, presenter, recorder
        self.inputs, self.event_sinks, self.script = list(inputs), list(event_sinks), script
        self.new_recorder, self.status = new_recorder, list(status)   # recorder factory; objects with .status
        self.max_frames = max_frames
        self.fps = cfg.runtime.loop.fps
        self.buffer = JitterBuffer()
        self.pacer = Pacer(self.buffer, 1.0 / self.fps, cfg.runtime.pacing)
        self.timing = FrameLocked(self.buffer, self.fps, refiner.frames_for_block(False)
                                  + cfg.runtime.pacing.target_buffer_frames) if frame_locked \
            else RealTime(self.pacer, cfg.runtime.pacing.plan_margin_s)
        self.frame_locked = self.timing.frame_locked
        self.display, self.live_content = display, live_content and display is not None
        self.shown = shown if display is not None else None
        self.display_hz = cfg.runtime.display_hz
        self.telemetry = Telemetry(fps=self.fps, now=time.perf_counter,
                                   display_hz=self.display_hz if display is not None else None)
        self.pose_trace = PoseTrace()
        self.ticker = FixedTicker(cfg.runtime.loop.tick_hz, cfg.runtime.loop.max_catchup_ticks, now=self.timing.now)
        self.source_c2w = scene.c2w.double().numpy()                                  # [N, 4, 4]
        self.clock = WorldClock(scene.num_frames, scene.fps, self.fps, cfg.runtime.clock)
        scale = scene_scale(scene)
        probe = DepthProbe(scene, lambda: self.clock.index, body_radius=0.5 * cfg.runtime.rig.collision_margin * scale)
        self.rig = CameraRig(cfg.runtime.rig, scene_scale=scale, source_c2ws=self.source_c2w, probe=probe,
                             depth_trust=float(scene.meta.get("depth_trust", 1.0)))
        self.refiner = refiner
        self._done: queue.Queue[GeneratedBlock] = queue.Queue()
        tensors = scene_tensors if scene_tensors is not None else SceneTensors(scene, device)
        self.worker = GenerationWorker(tensors, refiner, self._done.put, mark=self.telemetry.mark,
                                       keep_on_device=display is None and presenter.accepts_device_frames,
                                       setup=worker_setup, with_depth=display is not None and not self.live_content)
        self.max_worker_restarts, self.worker_restarts = max_worker_restarts, 0
        self.hud = Hud(self.telemetry.summary, seen_warning=cfg.runtime.seen_warning,
                       reset_keys=cfg.controllers.keys.reset, help_rows=help_rows(cfg.controllers))
        self.tick = 0
        self.frames_presented = 0
        self.quit = False
        self.first_present_s: float | None = None  # perf_counter time of the first presented frame
        self._next_block = 0
        self._in_flight = 0            # frames requested and not yet arrived
        self._restart = True           # the next block starts a fresh model context
        self._script_pos = 0
        self._submitted: dict[int, float] = {}     # block id -> submit time
        self._make_times = MakeTimes()
        self._hint: tuple[int, tuple[int, ...]] | None = None   # (block id, source frames) last hinted
        self.prepared_blocks = 0
        self._planned_frames = 0                       # frames requested so far
        self.content: FrameInfo | None = None          # the content frame shown now (display)
        self.generated: GeneratedView | None = None   # ... and its generated frame, if any
        self.displayed = 0                             # displayed frames so far
        self._next_display_s: float | None = None
        self._render_s = 0.0                           # recent time from pose sample to present (EMA)
        self._alpha = 0.0                              # the ticker's fraction of a tick at the last advance
        self._seen_shown: float | None = None          # the last displayed frame's share the video saw
        self._waiting_since = self._status_due_s = time.perf_counter()   # the first frame's wait: since, next redraw

    def request_quit(self) -> None:
        """End the session at its next loop step (safe from a signal handler: it only sets a flag)."""
        self.quit = True

    # ---- the loop --------------------------------------------------------------------------
    def run(self) -> dict:
        """Run to the end; returns the telemetry summary plus session counters."""
        self.worker.start()
        try:
            self._await_worker()
            wall0 = self._waiting_since = time.perf_counter()
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
                       source_latent_cache=self.refiner.cache_stats(),
                       pacer=dict(self.pacer.counts), ticks=self.tick, ticker=self.ticker.stats(),
                       gc_pauses=gc_pauses.summary(), pose_error=self.pose_trace.summary(),
                       peak_gpu_mem_gib=peak_gpu_memory_gib(self.worker.scene.device))
        return summary

    def _finished(self) -> bool:
        if self.quit or (self.max_frames is not None and self._shown_s() >= self.max_frames / self.fps - 1e-9):
            return True
        if self.worker.error is not None:
            if self.worker_restarts >= self.max_worker_restarts:
                raise RuntimeError(f"generation worker failed: {self.worker.error}") from self.worker.error
            self._restart_worker()
        return self._script_over() and self._in_flight == 0 and len(self.buffer) == 0

    def _shown_s(self) -> float:
        """Seconds of video shown: presented (content) frames; frame locked with a display, displayed
        frames (in real time content keeps its rate however fast the display draws)."""
        if self.display is not None and self.frame_locked:
            return self.displayed / self.display_hz
        return self.frames_presented / self.fps

    def _script_over(self) -> bool:
        return self.script is not None and not self.script.loop and self._script_pos >= len(self.script)

    def _restart_worker(self) -> None:
        """Watchdog (kiosk): replace a crashed worker, drop what it had in flight, start a fresh context."""
        log.warning("generation worker crashed (%s); restarting it", self.worker.error)
        self.worker = self.worker.replacement().start()
        self._in_flight, self._restart, self._hint = 0, True, None
        self._submitted.clear()
        self.worker_restarts += 1

    def _iterate(self) -> None:
        self._pump_events()
        if self.first_present_s is None:               # nothing on screen yet
            self._show_waiting()
        due, self._alpha = self.ticker.advance()
        for _ in range(due):
            self._tick()
        self._collect(wait=False)
        if self.display is not None and not self.frame_locked:
            self._display_realtime()                   # a due frame first: planning waits, the screen does not
            self._plan()
            self.timing.rest(self.ticker.time_to_next_tick(), self._next_display_s)
            return
        self._plan()
        if self.display is not None:
            self._display_locked()
            return
        item = self.timing.take_frame(self._wait_for_block, draining=self._draining())
        if item is not None:
            self._present(*item)
            self.timing.presented(self.frames_presented)
        self.timing.rest(self.ticker.time_to_next_tick())

    def _await_worker(self) -> None:
        """While the worker's set-up (warm-up) runs: keep the window's events flowing and show how
        long it has been, but no ticks, so neither input nor time moves before a block can show it."""
        t0 = time.perf_counter()
        note = [self.refiner.warm_up_note] if self.refiner.warm_up_note else []
        while not self.worker.ready.wait(0.1) and not self.quit:
            self._pump_events()
            self.presenter.show_status([f"warming up the {self.refiner.name} refiner "
                                        f"({time.perf_counter() - t0:.0f} s)", *note])

    def _show_waiting(self) -> None:
        """Until the first frame is on screen (its block can take seconds): say so, four times a second."""
        now = time.perf_counter()
        if now >= self._status_due_s:
            self._status_due_s = now + 0.25
            self.presenter.show_status([f"making the first frames ({now - self._waiting_since:.0f} s)"])

    def _awaiting(self) -> bool:
        """Frames are requested and not yet here."""
        return self._in_flight > 0 or self.worker.mailbox.pending

    def _wait_for_block(self) -> bool:
        """Wait for the next generated block; False when none can come (nothing requested, the worker
        failed, or quit: _finished() then restarts it, raises or stops)."""
        if not self._awaiting() or self.worker.error is not None or self.quit:
            return False
        self._collect(wait=True)
        return True

    # ---- display (reprojection) ----------------------------------------------------------------
    def _display_realtime(self) -> None:
        """Content from the pacer at loop.fps; a displayed frame if one is due at display_hz."""
        now = time.perf_counter()
        item = self.pacer.poll(now, draining=self._draining())
        if item is not None:
            self._take_content(*item)
        period = 1.0 / self.display_hz
        if self.content is not None and (self._next_display_s is None or now >= self._next_display_s - 0.002):
            self._show()
            after = time.perf_counter()
            self._next_display_s = next_display_due(self._next_display_s, after, period)

    def _display_locked(self) -> None:
        """Displayed frame k at virtual time k / display_hz showing content frame m from m / fps on,
        or, replaying displayed frames, the content frame it showed then (waiting for it to be made)."""
        k = self.displayed
        if self.shown is not None and k >= len(self.shown):
            self.quit = True
            return
        last = int(self.shown.content[k]) if self.shown is not None else math.floor(k / self.display_hz * self.fps + 1e-9)
        while self.frames_presented <= last:                         # content due by now
            while len(self.buffer) == 0 and self._wait_for_block():
                pass
            if len(self.buffer) == 0 and self._awaiting():                # the worker failed, or quit
                return
            if len(self.buffer) == 0:
                if self._draining() or self.content is None:
                    return
                break                                                   # nothing more will come
            self._take_content(*self.buffer.pop())
        if self.content is None:
            return
        self._show()
        self.timing.t = self.displayed / self.display_hz

    def _stamp(self) -> float:
        """Now for the display's telemetry: virtual time when frame locked (what the video shows)."""
        return self.timing.now() if self.frame_locked else time.perf_counter()

    def _take_content(self, frame: torch.Tensor | None, info: FrameInfo) -> None:
        """The next content frame: its source frame (and generated frame) is what the display shows."""
        self.content = info
        if frame is not None and info.depth is not None:
            self.generated = GeneratedView(key=(info.block_id, self.frames_presented), frame=frame.cpu().numpy(),
                                           depth=info.depth.cpu().numpy(), K=self.scene.K[info.source_index].double().numpy(),
                                           c2w=info.c2w)
        self.telemetry.present(info.block_id, self._stamp())
        if self.first_present_s is None:
            self.first_present_s = time.perf_counter()
        self.frames_presented += 1

    def _show(self) -> None:
        """Draw and present one displayed frame from the rig's pose at (expected) present time; a
        replay shows the recorded pose, a script the content frame's."""
        from_rig = self.shown is None and self.script is None     # else no user's camera to miss
        if self.shown is not None:
            c2w = self.shown.c2w[min(self.displayed, len(self.shown) - 1)]
        elif self.script is not None:
            c2w = self.content.c2w
        else:
            c2w = self._pose_at(0.0 if self.frame_locked else self._alpha / self.cfg.runtime.loop.tick_hz + self._render_s)
        pose_tick = self.tick
        hud = self.hud.update(self._hud_view(self.content, self._seen_shown))
        t0 = time.perf_counter()
        at_s = None if self.frame_locked else t0       # real time: videos keep the times frames were shown
        record = None if self.recorder is None else partial(log_displayed, self.recorder, self.content.source_index,
                                                             c2w, self.frames_presented - 1, at_s)
        self.display.show(c2w, self.content.source_index, self.generated, hud, at_s=at_s, on_read=record)
        self._render_s += 0.2 * ((time.perf_counter() - t0) - self._render_s)
        presented = self._stamp()
        # what the video saw of this frame: the display's own coverage, or with a generated frame
        # (which covers what the model invented too) the coverage of the render it was made from
        self._seen_shown = self.display.seen if self.generated is None else self.content.seen
        self.telemetry.displayed(presented, pose_tick, seen=self._seen_shown)
        if from_rig:
            self.pose_trace.displayed(presented, c2w)
        self.displayed += 1

    def _pose_at(self, ahead_s: float) -> np.ndarray:
        """The rig's pose ahead_s seconds after its last tick, if the held input stays held."""
        source = self.source_c2w[[self.clock.index]]                  # [1, 4, 4]: ride-along and goals follow it
        if ahead_s <= 0.0:
            return self.rig.c2w(source[0])
        return self.rig.predict(1, ahead_s, source)[0]

    def _draining(self) -> bool:
        return self._script_over() and self._in_flight == 0

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
        self.tick += 1
        t = self.tick / self.cfg.runtime.loop.tick_hz if self.frame_locked else time.perf_counter()
        self.telemetry.camera_command(self.tick - 1, cmds.camera, t if self.display is not None else None)
        self.pose_trace.tick(t, self.rig.c2w(self.source_c2w[self.clock.index]))

    def _apply_app(self, cmds: Commands) -> None:
        app = cmds.app
        if app.quit:
            self.quit = True
        if app.toggle_hud:
            self.hud.toggle()
        if app.toggle_help:
            self.hud.toggle_help()
        if app.toggle_hud or app.toggle_help:
            self.presenter.refresh()                 # at once, also while paused or between slow frames
        if app.toggle_fullscreen:
            self.presenter.toggle_fullscreen()
        if app.screenshot and (path := self.presenter.save_screenshot()) is not None:
            print(f"roam: screenshot {path}", file=sys.stderr)
        if app.toggle_record and self.new_recorder is not None:
            if self.recorder is None:
                self.recorder = self.new_recorder()
            else:
                self.presenter.flush_reads()           # its last displayed frame is still being read
                self.recorder.close()
                self.recorder = None

    # ---- planning and generation ------------------------------------------------------------
    def _plan_due(self) -> bool:
        if self.live_content:                            # keep the jitter buffer at its target
            return len(self.buffer) + self._in_flight < self.cfg.runtime.pacing.target_buffer_frames
        return self.timing.plan_due(self._plan_state())

    def _plan_state(self) -> PlanState:
        prepared = self._hint is not None and not self._restart    # hinted for this block
        return PlanState(worker_busy=self.worker.mailbox.pending or not self.worker.ready.is_set(),
                         buffered=len(self.buffer), in_flight=self._in_flight, lead_s=self._buffer_lead_s(),
                         make_s=self._make_times.slowest(prepared))

    def _buffer_lead_s(self) -> float:
        """Until the buffered frames run out, counted from the next frame's slot."""
        lead_s = len(self.buffer) / self.fps
        if (next_due_s := self.timing.next_due_s()) is not None:
            lead_s += max(0.0, next_due_s - time.perf_counter())
        return lead_s

    def _plan(self) -> None:
        while self._plan_due() and not self._script_over():
            if self.script is not None and self._script_pos in self.script.restarts:
                self._restart = True                     # the recorded run restarted here
            n = 1 if self.live_content else self.refiner.frames_for_block(self._restart)
            lead_s = self._display_lead_s() if self.display is not None else 0.0
            poses, indices, discontinuity = self._next_frames(n, lead_s)
            if len(indices) == 0:
                return
            request = BlockRequest(block_id=self._next_block, source_indices=tuple(int(i) for i in indices),
                                   target_c2w=poses, restart=self._restart or discontinuity,
                                   input_sampled_s=time.perf_counter(), command_tick=self.tick,
                                   issued_s=time.perf_counter())
            self.telemetry.mark(request.block_id, "input", request.input_sampled_s, tick=self.tick)
            self.telemetry.mark(request.block_id, "request", request.issued_s)
            if self.recorder is not None:
                self.recorder.log_block(request.block_id, request.restart, request.source_indices, request.target_c2w)
            self._submitted[request.block_id] = time.perf_counter()
            self._next_block += 1
            self._planned_frames += len(indices)
            self._in_flight += len(indices)
            self._restart = False
            if self.live_content:                        # the source frames are the content: nothing to make
                self._accept(GeneratedBlock(request=request, frames=[None] * len(indices)))
                continue
            self.worker.submit(request)
            self._send_hint()
            return

    def _display_lead_s(self) -> float:
        """Seconds from now until the next planned frame will be on screen: frame-locked exactly
        (content frame m shows from m / fps), real time from the buffer and how long blocks take."""
        if self.frame_locked:
            return max(0.0, self._planned_frames / self.fps - self.timing.now())
        slowest = self._make_times.slowest_any()
        return max(self._buffer_lead_s(), slowest if slowest is not None and not self.live_content else 0.0)

    def _send_hint(self) -> None:
        """Tell the worker which source frames the next block will show if nothing changes, so it runs
        the block's camera-independent work while it waits (real time only: a frame-locked session
        keeps a request waiting, so its worker never idles)."""
        if not (self.timing.sends_hints and self.refiner.prepares_ahead):
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

    def _next_frames(self, n: int, lead_s: float = 0.0) -> tuple[np.ndarray, np.ndarray, bool]:
        """Poses [n, 4, 4] and source indices [n] of the next n frames, and whether source time jumps.
        lead_s: when the first of them will be on screen; the rig predicts the poses for then, one
        frame period apart (0: from one period after now, as without a display)."""
        if self.script is not None:          # a script is one continuous take, as in the reference
            poses, indices = self.script.window(self._script_pos, n)
            self._script_pos += len(indices)
            return poses, indices, False
        frames = [self.clock.advance() for _ in range(n)]
        indices = np.array([f.index for f in frames])
        ride = self.source_c2w[indices] if self.cfg.runtime.rig.ride_along else None
        if self.live_content:                # nothing is made for these poses: the display draws the rig's own
            poses = np.stack([self.rig.c2w(None if ride is None else ride[i]) for i in range(n)])
            return poses, indices, any(f.discontinuity for f in frames)
        period = 1.0 / self.fps
        poses = self.rig.predict(n, period, self.source_c2w[indices], start_s=max(0.0, lead_s - period))
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
        self._make_times.add(block.prepared, time.perf_counter() - self._submitted.pop(req.block_id))
        self.prepared_blocks += block.prepared
        offset = len(req.source_indices) - len(block.frames)      # a short block keeps its last frames
        for i, frame in enumerate(block.frames):
            j = offset + i
            depth = block.depth[i] if block.depth is not None else None
            seen = float(block.seen[j]) if block.seen is not None else None
            self.buffer.push(frame, FrameInfo(req.block_id, req.source_indices[j], req.target_c2w[j], depth, seen))

    # ---- presentation -----------------------------------------------------------------------
    def _present(self, frame: torch.Tensor, info: FrameInfo) -> None:
        self.presenter.present(frame, self.hud.update(self._hud_view(info, info.seen)))
        now = time.perf_counter()
        self.telemetry.present(info.block_id, now, seen=info.seen)
        self.pose_trace.displayed(self.timing.now() if self.frame_locked else now, info.c2w)
        if self.first_present_s is None:
            self.first_present_s = now
        if self.recorder is not None:
            self.recorder.log_frame(frame, info.source_index, info.c2w)
        self.frames_presented += 1

    def _hud_view(self, info: FrameInfo, seen: float | None) -> HudView:
        return HudView(refiner=self.refiner.name, camera_mode=self.rig.mode, source_index=info.source_index,
                       source_frames=self.scene.num_frames, paused=self.clock.paused, speed=self.clock.speed,
                       reverse=self.clock.direction < 0, buffered=len(self.buffer), block_id=info.block_id,
                       statuses=tuple(str(source.status) for source in self.status),
                       recording_frames=self.recorder.frames if self.recorder is not None else None, seen=seen)


def log_displayed(recorder, source_index: int, c2w: np.ndarray, content: int, at_s: float | None,
                  frame: np.ndarray) -> None:
    """A displayed frame, once read back (uint8 [H, W, 3]), into the recording with what it showed."""
    recorder.log_frame(torch.from_numpy(frame), source_index, c2w, content=content, at_s=at_s)


def peak_gpu_memory_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def scene_scale(scene) -> float:
    """How far the near scene is from its cameras: the 20th percentile of the first frame's depth
    (the median is dominated by sky and far walls, which would make walking far too fast)."""
    depth = scene.depth[0].flatten()
    valid = depth[torch.isfinite(depth) & (depth > 0)]
    return float(torch.quantile(valid[:: max(1, valid.numel() // 100_000)], 0.2)) if valid.numel() else 1.0
