"""The generation worker: one thread that owns all model state (and, on a GPU, all CUDA state).

The tick thread hands it `BlockRequest`s through a latest-wins mailbox of depth 1 (a newer request
replaces one not yet started, which is counted as dropped); it answers with finished `GeneratedBlock`s.
The worker renders the point cloud for the block's camera poses, asks the refiner for frames and
records a timestamp for every stage.

While no request waits, the worker runs a `PrepareHint`: the source frames the next block will
most likely show. A refiner with `prepare(source, indices)` and `is_prepared(indices)` (the DiT)
does the block's camera-independent work then, so the request, which comes as late as possible to
carry the freshest camera input, finds less to do.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from model.refiners import RefineInput, Refiner, push_pull_fill
from scenes.fusion import current_depth, render_fused
from scenes.render import render_views

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BlockRequest:
    """What the worker needs for the next block of output frames.
    source_indices: one source frame index per output frame; target_c2w: float64 [T, 4, 4] (OpenCV)."""
    block_id: int
    source_indices: tuple[int, ...]
    target_c2w: np.ndarray
    restart: bool                      # discontinuity: the refiner forgets its context first
    input_sampled_s: float             # monotonic time of the input state the poses came from
    command_tick: int                  # last tick whose commands shaped these poses
    issued_s: float = 0.0


@dataclass(frozen=True)
class PrepareHint:
    """The source frames block `block_id` will show if no time command comes first."""
    block_id: int
    source_indices: tuple[int, ...]


@dataclass
class GeneratedBlock:
    """A finished block: frames uint8 [T', H, W, 3] on the CPU, or finished on the worker's device when
    the worker keeps them there. The frames are the LAST T' of the request's frames (a refiner may
    return fewer, e.g. the DiT's first block). prepared: its camera-independent work was done ahead.
    depth: float32 [T', H, W] camera z of the point-cloud render at each frame's pose, holes filled
    (for warping the frames to another camera), when the worker makes it.
    seen: float32 [T] on the CPU, the share of each requested frame's pixels that the point-cloud
    render covered (1: the source cameras saw everything in view; the rest the refiner invents)."""
    request: BlockRequest
    frames: torch.Tensor
    prepared: bool = False
    depth: torch.Tensor | None = None
    seen: torch.Tensor | None = None


class LatestMailbox:
    """Queue of depth 1 where the newest request wins; `dropped` counts replaced requests. It also
    holds the newest PrepareHint, handed out only when no request waits."""

    def __init__(self):
        self._cond = threading.Condition()
        self._item: BlockRequest | None = None
        self._hint: PrepareHint | None = None
        self._closed = False
        self.dropped = 0

    def put(self, item: BlockRequest) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify()

    def hint(self, hint: PrepareHint) -> None:
        with self._cond:
            self._hint = hint
            self._cond.notify()

    def take(self, timeout: float | None = None) -> BlockRequest | PrepareHint | None:
        """The pending request, else the pending hint, waiting up to `timeout`; None when closed or
        timed out."""
        with self._cond:
            self._cond.wait_for(lambda: self._item is not None or self._hint is not None or self._closed, timeout)
            if self._closed:
                return None
            if self._item is not None:
                item, self._item = self._item, None
            else:
                item, self._hint = self._hint, None
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def pending(self) -> bool:
        with self._cond:
            return self._item is not None


class SceneTensors:
    """The scene's source frames, depth and cameras, moved once to the worker's device, and
    optionally the fused world state (scenes/fusion.py) that fills the per-frame render's holes."""

    def __init__(self, scene, device: torch.device, world=None):
        self.frames = scene.frames.to(device)                           # [N, H, W, 3] uint8
        self.depth = scene.depth.to(device)                             # [N, H, W] float32
        self.K = scene.K.to(device)                                     # [N, 3, 3]
        self.c2w = scene.c2w.to(device)                                 # [N, 4, 4]
        self.world = world.to(device) if world is not None else None
        self.device = device

    def warm_up(self, frames: int = 12) -> None:
        """On CUDA, render one block of frames from their own cameras and wait: the first render loads
        kernels and libraries (e.g. the batched matrix inverse), which would otherwise delay the first
        block. On the CPU there is nothing to load, so nothing is done."""
        if self.device.type != "cuda":
            return
        indices = tuple(i % len(self.frames) for i in range(frames))
        render, _, _ = self.render(indices, self.c2w[list(indices)].double().cpu().numpy())
        render.cpu()

    def render(self, indices: tuple[int, ...], target_c2w: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Point-cloud render of the given source frames from the target cameras.
        Returns render uint8 [T, H, W, 3], mask bool [T, H, W], source uint8 [T, H, W, 3]."""
        idx = torch.as_tensor(indices, device=self.device, dtype=torch.long)
        tgt = torch.as_tensor(target_c2w, device=self.device, dtype=torch.float32)   # [T, 4, 4]
        source = self.frames[idx]                                       # [T, H, W, 3]
        if self.world is not None:
            render, mask = render_fused(self.world, source, self.depth[idx], self.K[idx], self.c2w[idx], tgt,
                                        indices=idx)
        else:
            render, mask = render_views(source, self.depth[idx], self.K[idx], self.c2w[idx], tgt)
        return render, mask, source

    def target_depth(self, indices: tuple[int, ...], target_c2w: np.ndarray) -> torch.Tensor:
        """Camera z of the given source frames' points seen from the target cameras (the nearest on
        each pixel, as the render's z-buffer), holes filled by push-pull in inverse depth.
        -> float32 [T, H, W]"""
        idx = torch.as_tensor(indices, device=self.device, dtype=torch.long)
        tgt = torch.as_tensor(target_c2w, device=self.device, dtype=torch.float32)   # [T, 4, 4]
        z = current_depth(self.depth[idx], self.K[idx], self.c2w[idx], tgt)          # [T, H, W], inf = none
        seen = torch.isfinite(z)
        inv = torch.where(seen, 1.0 / z, 0.0).unsqueeze(1)                           # [T, 1, H, W]
        filled = push_pull_fill(inv, seen.unsqueeze(1).to(inv.dtype))[:, 0]          # [T, H, W]
        return 1.0 / filled.clamp_min(1e-6)


class GenerationWorker:
    """Owns the refiner; turns requests into blocks on its own thread.

    `setup`, if given, runs first on the worker's thread (warm-up): per-thread state such as PyTorch's
    cuDNN execution plans is then made by the thread that uses it. `ready` is set once it is done.
    `on_block` is called from the worker thread with each finished GeneratedBlock; it must only enqueue.
    `mark(block_id, stage, t)` receives each stage's time (telemetry) once the block is done.
    A failure inside a block is logged and reported through `error` (the watchdog restarts).
    `keep_on_device`: hand out frames where the refiner made them (the presenter uploads CUDA frames
    by CUDA-OpenGL interop) instead of copying them to the CPU. `with_depth`: each block also
    carries the depth of its frames' render (GeneratedBlock.depth), for warping them to another camera."""

    def __init__(self, scene_tensors: SceneTensors, refiner: Refiner, on_block: Callable[[GeneratedBlock], None],
                 mark: Callable[[int, str, float], None] = lambda block, stage, t: None,
                 keep_on_device: bool = False, setup: Callable[[], None] | None = None, with_depth: bool = False):
        self.scene, self.refiner, self.on_block, self._mark = scene_tensors, refiner, on_block, mark
        self.keep_on_device, self.setup, self.with_depth = keep_on_device, setup, with_depth
        self.ready = threading.Event()
        self.mailbox = LatestMailbox()
        self.error: BaseException | None = None
        self.blocks_done = 0
        self.can_prepare = hasattr(refiner, "prepare")
        self._next_block = 0               # hints for blocks already requested are stale
        self._thread = threading.Thread(target=self._run, name="generation", daemon=True)

    def start(self) -> "GenerationWorker":
        self._thread.start()
        return self

    def submit(self, request: BlockRequest) -> None:
        self.mailbox.put(request)

    def prepare(self, hint: PrepareHint) -> None:
        """Ask for the camera-independent work of a coming block (no-op for refiners without it)."""
        if self.can_prepare:
            self.mailbox.hint(hint)

    def stop(self, timeout: float = 10.0) -> None:
        self.mailbox.close()
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            if self.setup is not None:
                self.setup()
        except Exception as err:
            log.exception("generation worker set-up failed")
            self.error = err
            return
        finally:
            self.ready.set()
        while (item := self.mailbox.take()) is not None:
            try:
                if isinstance(item, PrepareHint):
                    self.run_hint(item)
                else:
                    self.on_block(self.run_block(item))
            except Exception as err:           # reported to the session, which decides what to do
                log.exception("generation worker failed on block %d", item.block_id)
                self.error = err
                return

    def run_hint(self, hint: PrepareHint) -> None:
        """Prepare the hinted block unless it was already requested; synchronous."""
        if hint.block_id >= self._next_block:
            idx = torch.as_tensor(hint.source_indices, device=self.scene.device, dtype=torch.long)
            self.refiner.prepare(self.scene.frames[idx], hint.source_indices)
            if self.scene.device.type == "cuda":     # a block starts on an idle device (StageClock)
                torch.cuda.synchronize(self.scene.device)

    def run_block(self, request: BlockRequest) -> Block:
        """Render, refine and copy one block to the CPU (or keep it on the device, finished);
        synchronous (also used by tests)."""
        clock = StageClock(self.scene.device)
        self._next_block = request.block_id + 1
        if request.restart:
            self.refiner.reset()
        prepared = self.can_prepare and self.refiner.is_prepared(request.source_indices)
        render, mask, source = self.scene.render(request.source_indices, request.target_c2w)
        seen = to_host(mask.flatten(1).float().mean(1))                 # [T], valid after the wait
        clock.mark("render")
        frames = self.refiner.refine(RefineInput(render=render, mask=mask, source=source, mark=clock.mark,
                                                 source_indices=tuple(request.source_indices)))
        depth = None
        if self.with_depth:                     # the last frames, as the refiner returns them
            depth = self.scene.target_depth(request.source_indices, request.target_c2w)[-len(frames):]
        if not self.keep_on_device:
            frames = to_host(frames)
            depth = to_host(depth) if depth is not None else None
        clock.mark("decode")
        clock.wait()                            # the block's one wait: its frames are finished
        for stage, t in clock.times():
            self._mark(request.block_id, stage, t)
        self.blocks_done += 1
        return GeneratedBlock(request=request, frames=frames, prepared=prepared, depth=depth, seen=seen)


def to_host(frames: torch.Tensor) -> torch.Tensor:
    """Start copying a CUDA tensor into page-locked host memory (a fast DMA, unlike a copy to pageable
    memory) and return the host tensor: valid once the copy is waited for. CPU tensors pass through.
    The caching host allocator recycles the memory once the tensor is freed and its copy is done."""
    if frames.device.type != "cuda":
        return frames
    host = torch.empty(frames.shape, dtype=frames.dtype, pin_memory=True)
    return host.copy_(frames, non_blocking=True)


class StageClock:
    """Stage times of one block without stalling the device: on CUDA each stage records an event,
    turned into host time once the block's work has finished (the block starts on an idle device,
    since the previous one ended with its copy to the host or `wait`); on the CPU the host clock is
    read directly."""

    def __init__(self, device: torch.device):
        self.cuda, self.t0 = device.type == "cuda", time.perf_counter()
        self.marks: list[tuple[str, object]] = [("start", self.t0)]
        if self.cuda:
            self.origin = torch.cuda.Event(enable_timing=True)
            self.origin.record()

    def mark(self, stage: str) -> None:
        if not self.cuda:
            self.marks.append((stage, time.perf_counter()))
            return
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        self.marks.append((stage, event))

    def wait(self) -> None:
        """Wait until the device has finished everything up to the last mark."""
        if self.cuda:
            self.marks[-1][1].synchronize()

    def times(self) -> list[tuple[str, float]]:
        """(stage, host seconds) for every mark; on CUDA only after the block's work has finished."""
        return [(stage, t if isinstance(t, float) else self.t0 + self.origin.elapsed_time(t) / 1000)
                for stage, t in self.marks]
