"""What `main.py render` writes, and the engine parts it plugs in.

- `PredictionPresenter`: the session's presenter; writes every presented frame to the prediction
  video. The file appears under its real name only after `finish()` (a failed run leaves nothing).
- `ReferenceRender`: stands in for the worker's SceneTensors with the reference renderer's rules
  (frame-0 intrinsics with the principal point centred, the whole video's depth-weight normaliser,
  or the `ply` backend) and hands every rendered block to a tap (the conditioning videos).
- `ConditioningWriters`: the source, render and mask videos, written as blocks are rendered.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from scenes.atomic import write_atomic
from scenes.pointcloud import render_points
from scenes.render import reference_K, render_views, video_log_depth_max
from scenes.video import VideoWriter

OUTPUT_FPS = 24.0           # the reference writes everything at 24 fps
REFERENCE_CRF = 23          # torchvision.io.write_video: libx264 defaults
MASK_CRF = 18               # the reference's render stage encodes its mask video at crf 18
BACKENDS = ("warper", "ply", "gpu")


def reference_video_u8(frames_u8: torch.Tensor) -> torch.Tensor:
    """The reference's source/render output path: [0, 1] -> [-1, 1] -> bf16 -> x0.5+0.5 -> x255,
    truncated. uint8 [T, H, W, 3] -> uint8 [T, H, W, 3] (about one code value of quantisation)."""
    signed = (frames_u8.float() / 255.0 * 2 - 1).to(torch.bfloat16).float()      # [T, H, W, 3]
    return ((signed * 0.5 + 0.5) * 255).clamp(0, 255).to(torch.uint8)


def mask_video_u8(mask: torch.Tensor) -> torch.Tensor:
    """bool [T, H, W] -> uint8 [T, H, W, 3], 255 where the render is valid (the reference's mask video)."""
    return (mask.to(torch.uint8) * 255)[..., None].expand(*mask.shape, 3)


def save_tensor_atomic(path: Path, tensor: torch.Tensor) -> Path:
    """torch.save to a temporary name, then rename."""
    buf = io.BytesIO()
    torch.save(tensor.contiguous(), buf)
    return write_atomic(path, buf.getvalue())


class PredictionPresenter:
    """Writes presented frames (uint8 [H, W, 3]) to `path` at 24 fps, libx264 crf 23 (the reference's
    write_video defaults); `progress` (a tqdm bar or None) advances one per frame."""

    def __init__(self, path: Path, width: int, height: int, progress=None):
        self.writer = VideoWriter(path, fps=OUTPUT_FPS, width=width, height=height, crf=REFERENCE_CRF)
        self.progress, self.frames_presented = progress, 0

    def events(self) -> list:
        return []

    def show_status(self, lines: list[str]) -> None:
        """Waiting for the first frame: the progress bar says it."""

    def present(self, frame: torch.Tensor, hud) -> None:
        self.writer.write(frame)
        self.frames_presented += 1
        if self.progress is not None:
            self.progress.update(1)

    def close(self) -> None:
        """The session is over; the video is kept only by finish()."""
        if self.progress is not None:
            self.progress.close()

    def finish(self) -> Path | None:
        return self.writer.finalize()

    def abort(self) -> None:
        self.writer.abort()


class ConditioningWriters:
    """The source, render and mask videos of one output, fed block by block (first `limit` frames)."""

    def __init__(self, paths: dict[str, Path], width: int, height: int, limit: int):
        self.limit, self.written, self.writers = limit, 0, {}
        try:
            for name, path in paths.items():
                self.writers[name] = VideoWriter(path, fps=OUTPUT_FPS, width=width, height=height,
                                                 crf=MASK_CRF if name == "mask" else REFERENCE_CRF)
        except BaseException:
            self.abort()
            raise

    def __call__(self, render: torch.Tensor, mask: torch.Tensor, source: torch.Tensor) -> None:
        """render, source uint8 [t, H, W, 3]; mask bool [t, H, W] (any device)."""
        take = min(len(render), self.limit - self.written)
        if take <= 0:
            return
        frames = {"source": reference_video_u8(source[:take].cpu()), "render": reference_video_u8(render[:take].cpu()),
                  "mask": mask_video_u8(mask[:take].cpu())}
        for name, writer in self.writers.items():
            writer.write_frames(frames[name].numpy())
        self.written += take

    def finish(self) -> list[Path]:
        return [w.finalize() for w in self.writers.values()]

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.abort()


class ReferenceRender:
    """The worker's scene (SceneTensors interface: `device`, `render(indices, target_c2w)`) with the
    reference renderer's rules. backend: `warper` (reference default: frame-0 K with the principal
    point centred, the depth-weight normaliser of the whole native-length video), `ply` (per-frame
    point clouds, hard z-buffer) or `gpu` (the engine's own real-time render: per-frame K,
    per-block normaliser). `tap(render, mask, source)` sees every rendered block."""

    def __init__(self, tensors, backend: str, tap=None):
        if backend not in BACKENDS:
            raise ValueError(f"--render_backend {backend!r}: expected one of {', '.join(BACKENDS)}")
        self.inner, self.backend, self.tap, self.device = tensors, backend, tap, tensors.device
        H, W = tensors.frames.shape[1:3]
        self.K = reference_K(tensors.K[0].cpu(), W, H).to(self.device)            # [3, 3]
        self.log_depth_max: torch.Tensor | None = None

    def set_video(self, source_index, target_c2w: torch.Tensor) -> None:
        """Fix the warper's normaliser to the one of the whole native render (indices [T_r],
        target_c2w [T_r, 4, 4]), as the reference renders the video as one batch."""
        idx = torch.as_tensor(list(source_index), device=self.device, dtype=torch.long)
        self.log_depth_max = video_log_depth_max(self.inner.depth, self.K, self.inner.c2w,
                                                 target_c2w.to(self.device, torch.float32), index=idx)

    def render(self, indices, target_c2w: np.ndarray):
        """-> render uint8 [T, H, W, 3], mask bool [T, H, W], source uint8 [T, H, W, 3]."""
        if self.backend == "gpu":
            render, mask, source = self.inner.render(indices, target_c2w)
        else:
            idx = torch.as_tensor(list(indices), device=self.device, dtype=torch.long)
            tgt = torch.as_tensor(np.asarray(target_c2w), device=self.device, dtype=torch.float32)  # [T, 4, 4]
            source = self.inner.frames[idx]
            render_fn = self._warper if self.backend == "warper" else self._ply
            render, mask = render_fn(idx, source, tgt)
        if self.tap is not None:
            self.tap(render, mask, source)
        return render, mask, source

    def _warper(self, idx, source, tgt):
        return render_views(source, self.inner.depth[idx], self.K, self.inner.c2w[idx], tgt,
                            log_depth_max=self.log_depth_max)

    def _ply(self, idx, source, tgt):
        H, W = source.shape[1:3]
        out = [render_points(*self._points(int(i)), tgt[t], self.K, W, H) for t, i in enumerate(idx)]
        return torch.stack([rgb for rgb, _ in out]), torch.stack([m > 0 for _, m in out])

    def _points(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Source frame i as a world point cloud: points [P, 3], colours [P, 3] in [0, 1]."""
        depth, K, c2w = self.inner.depth[i], self.inner.K[i], self.inner.c2w[i]
        H, W = depth.shape
        v, u = torch.meshgrid(torch.arange(H, device=self.device), torch.arange(W, device=self.device), indexing="ij")
        x = (u - K[0, 2]) * depth / K[0, 0]
        y = (v - K[1, 2]) * depth / K[1, 1]
        cam = torch.stack([x, y, depth], -1).reshape(-1, 3)                       # [P, 3]
        world = cam @ c2w[:3, :3].T + c2w[:3, 3]                                  # [P, 3]
        return world, self.inner.frames[i].reshape(-1, 3).float() / 255.0
