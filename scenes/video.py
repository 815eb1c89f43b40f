"""Video I/O with PyAV: probe and decode any common video into working-size frames, write H.264 MP4s
atomically, and draw contact sheets.

Decoding streams in chunks (never the whole clip at source resolution in memory), honours rotation
metadata, and resizes like the reference: bilinear with antialias (torchvision's Resize on float
frames == torch.nn.functional.interpolate(mode="bilinear", antialias=True)); the reference stretches,
scenes/frame_fit.py can also crop or pad to keep the picture's shape.
"""
from __future__ import annotations

import io
import math
import os
import queue
import threading
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from scenes.atomic import FILE_SYSTEM_PROBLEMS, temporary_path, write_atomic
from scenes.errors import SceneInputError
from scenes.frame_fit import FrameFit, resize_frames

CHUNK_PIXELS = 16_000_000          # source pixels resized per chunk (~190 MB of float32 RGB)
FRAGMENT_S = 0.5                   # durable videos: longest stretch of frames not yet on disk as a whole fragment
DURABLE_LOOKAHEAD = 6              # durable videos: x264 frames of look-ahead (its default 40 holds frames back ~2 s)
MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}


class VideoError(SceneInputError):
    """A video that cannot be read or written: the message names the file and what to do."""


class VideoDecodeWarning(UserWarning):
    """Part of a video could not be decoded; the frames before and after it were kept."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about its first video stream. width/height are as displayed (after
    rotation); num_frames is the container's count (0 when it does not know)."""
    path: str
    width: int
    height: int
    fps: float
    num_frames: int
    duration_s: float
    rotation_deg: int
    codec: str
    has_audio: bool


# ---------------------------------------------------------------- reading

def _open(path: Path | str):
    """Open `path` and return (container, its first video stream), or raise VideoError."""
    path = Path(path)
    if not path.exists():
        raise VideoError(f"{path}: no such file; check the path")
    if not path.is_file():
        raise VideoError(f"{path}: not a file; pass a video file such as clip.mp4")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as err:
        raise VideoError(f"{path}: not a video FFmpeg can read ({err.strerror or err}); "
                         "pass an MP4/MOV/MKV file") from err
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams})
        container.close()
        if "audio" in kinds:
            raise VideoError(f"{path}: audio only, it has no video stream; pass a file with video")
        raise VideoError(f"{path}: holds no video frames (an empty container with streams {kinds}); "
                         "record or export the video again")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return container, stream


def _fps(stream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and float(rate) > 0 and math.isfinite(float(rate)):
            return float(rate)
    return 0.0


def _stream_rotation(container, stream) -> int:
    """Rotation from the display matrix, read off the first decoded frame (PyAV >= 13)."""
    try:
        frame = next(container.decode(stream))
    except (StopIteration, av.error.FFmpegError):
        return 0
    return _quarter_turns(getattr(frame, "rotation", 0) or 0) * 90


def _quarter_turns(rotation_deg: float) -> int:
    """Counter-clockwise display rotation in degrees (PyAV's VideoFrame.rotation) -> turns for rot90."""
    return int(round(rotation_deg / 90.0)) % 4


def probe_video(path: Path | str) -> VideoInfo:
    """Container facts about `path` without decoding the whole stream. Raises VideoError."""
    container, stream = _open(path)
    try:
        rotation = _stream_rotation(container, stream)
        w, h = stream.codec_context.width, stream.codec_context.height
        if rotation % 180:
            w, h = h, w
        duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else \
            (container.duration / av.time_base if container.duration else 0.0)
        return VideoInfo(path=str(path), width=w, height=h, fps=_fps(stream), num_frames=int(stream.frames or 0),
                         duration_s=duration, rotation_deg=rotation, codec=stream.codec_context.name,
                         has_audio=bool(container.streams.audio))
    finally:
        container.close()


def _flush(pending: list[np.ndarray], turns: int, fit: str, width: int, height: int, out: list[torch.Tensor]) -> None:
    if pending:
        chunk = torch.from_numpy(np.stack(pending))                                  # [T, h, w, 3]
        if turns:
            chunk = torch.rot90(chunk, turns, dims=(1, 2))                          # counter-clockwise
        out.append(FrameFit(fit, (chunk.shape[2], chunk.shape[1]), (width, height)).frames(chunk))
        pending.clear()


def _frames_of(container, stream, path, decoded: list[int]):
    """Yield decoded frames; an undecodable packet or a broken tail is skipped with a warning.
    decoded[0] counts the frames taken so far, for the messages."""
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError as err:
                warnings.warn(f"{path}: undecodable data after frame {decoded[0]} ({err.strerror or err}); "
                              "skipped it", VideoDecodeWarning, stacklevel=3)
                continue
            yield from frames
    except av.error.FFmpegError as err:           # a demuxer error: keep what decoded so far
        warnings.warn(f"{path}: the stream breaks after frame {decoded[0]} ({err.strerror or err}); "
                      "kept the frames before it", VideoDecodeWarning, stacklevel=3)


def decode_video(path: Path | str, width: int = 832, height: int = 480,
                 max_frames: int | None = None, fit: str = "stretch") -> tuple[torch.Tensor, float]:
    """Decode a video into working-size RGB frames, streamed in chunks.

    Rotation metadata is applied, then every frame is brought to width x height by `fit` (stretch |
    crop | pad, scenes/frame_fit.py). Broken data in the
    middle is skipped with a VideoDecodeWarning that names the frame index; what decodes is kept.
    -> frames uint8 [N, height, width, 3], fps (the stream's average rate; 24.0 when it has none)"""
    if width < 1 or height < 1:
        raise VideoError(f"{path}: bad output size {width}x{height}")
    container, stream = _open(path)
    fps, expected = _fps(stream), int(stream.frames or 0)
    out, pending, gaps = [], [], []
    decoded, turns, per_chunk, last_time = [0], 0, 1, None
    try:
        for frame in _frames_of(container, stream, path, decoded):
            if decoded[0] == 0:
                turns = _quarter_turns(getattr(frame, "rotation", 0) or 0)
                per_chunk = max(1, CHUNK_PIXELS // (frame.width * frame.height))
            if frame.time is not None and last_time is not None and fps and frame.time - last_time > 1.5 / fps:
                gaps.append(decoded[0])                # timestamps jump: frames before this one are missing
            last_time = frame.time
            pending.append(frame.to_ndarray(format="rgb24"))
            decoded[0] += 1
            if len(pending) >= per_chunk:
                _flush(pending, turns, fit, width, height, out)
            if max_frames is not None and decoded[0] >= max_frames:
                break
    finally:
        container.close()
    _flush(pending, turns, fit, width, height, out)
    if decoded[0] == 0:
        raise VideoError(f"{path}: zero decodable video frames; the file is empty or broken, export it again")
    if max_frames is None and expected > decoded[0]:
        where = f"missing before frame(s) {gaps[:5]}" if gaps else f"missing from frame {decoded[0]} on"
        warnings.warn(f"{path}: decoded {decoded[0]} of the {expected} frames the container lists ({where})",
                      VideoDecodeWarning, stacklevel=2)
    return torch.cat(out), fps if fps > 0 else 24.0                                     # [N, H, W, 3]


# ---------------------------------------------------------------- writing

def error_text(err: Exception) -> str:
    """What an OS or FFmpeg error says, without its Python decoration ("No space left on device"),
    and for a file-system error what to do about it."""
    text = getattr(err, "strerror", None) or str(err)
    hint = FILE_SYSTEM_PROBLEMS.get(getattr(err, "errno", None))
    return f"{text}; {hint}" if hint else text


def checked_frame(frame, path: Path, height: int, width: int) -> np.ndarray:
    """A frame to encode (numpy or torch, any device) as a uint8 [height, width, 3] array, or a
    VideoError naming the file and the shape it got."""
    arr = frame.detach().cpu().numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)  # [H, W, 3]
    if arr.dtype != np.uint8 or arr.shape != (height, width, 3):
        raise VideoError(f"{path}: expected a uint8 frame of shape {[height, width, 3]}, "
                         f"got {arr.dtype} {list(arr.shape)}")
    return arr


class VideoWriter:
    """H.264 (libx264, yuv420p) writer in one of two forms.

    Atomic (the default): frames go to a hidden temporary file beside `path`; `finalize()` flushes
    the encoder, closes the container and renames it, so the result plays and a failed run leaves
    nothing under the real name. As a context manager it finalizes on success and removes the
    temporary file on an exception.

    Durable (`durable=True`, for sessions and recordings that must survive SIGKILL, a crash or a
    full disk): a fragmented MP4 written under the real name from the first frame (no file before
    it), with a keyframe every second, a fragment at least every FRAGMENT_S and a short encoder
    look-ahead, so whatever happens the file plays up to about a second before the end.
    `finalize()` closes it; nothing is renamed.

    A recorder that must survive Ctrl-C calls finalize() from its `finally:` (or from another thread:
    write and finalize share a lock). Odd sizes are padded to even ones by repeating the last
    column/row, as yuv420p requires."""

    def __init__(self, path: Path | str, fps: float = 24.0, width: int = 832, height: int = 480,
                 crf: int = 18, preset: str = "medium", durable: bool = False):
        self.path = Path(path)
        if width < 1 or height < 1 or not (fps > 0 and math.isfinite(fps)):
            raise VideoError(f"{self.path}: bad video settings {width}x{height} at {fps} fps")
        muxer = MUXERS.get(self.path.suffix.lower(), "mp4")
        if durable and muxer not in ("mp4", "mov"):
            raise VideoError(f"{self.path}: a durable video is a fragmented MP4; name it .mp4 or .mov")
        self.width, self.height, self.num_frames, self.durable = int(width), int(height), 0, durable
        self._next_pts = 0                # the next free frame slot (frame periods from the start)
        self._t0: float | None = None     # the first timed frame's time
        self.tmp_path = self.path if durable else temporary_path(self.path)
        self._rate = Fraction(fps).limit_denominator(1001)
        self._options = {"crf": str(int(crf)), "preset": preset}
        self._muxer_options = {}
        if durable:
            self._options.update(g=str(max(1, round(fps))), **{"rc-lookahead": str(DURABLE_LOOKAHEAD)})
            self._muxer_options = {"movflags": "frag_keyframe+empty_moov+default_base_moof",
                                   "frag_duration": str(int(FRAGMENT_S * 1e6)), "flush_packets": "1"}
        self._lock = threading.RLock()
        self._container = None
        self._open = True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise VideoError(f"{self.path.parent}: cannot make the output folder ({err.strerror})") from err
        if not durable:                 # a durable file appears with its first frame
            self._start()

    def _start(self) -> None:
        try:
            self._container = av.open(str(self.tmp_path), "w", format=MUXERS.get(self.path.suffix.lower(), "mp4"),
                                      options=self._muxer_options)
            self._stream = self._container.add_stream("libx264", rate=self._rate)
            self._stream.width, self._stream.height = self.width + self.width % 2, self.height + self.height % 2
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = self._options
            self._stream.codec_context.time_base = 1 / self._rate
        except (av.error.FFmpegError, OSError, ValueError) as err:
            self._container, self._open = None, False
            self.tmp_path.unlink(missing_ok=True)
            raise VideoError(f"{self.path}: cannot start an H.264 encoder ({error_text(err)})") from err

    @property
    def closed(self) -> bool:
        return not self._open

    def write(self, frame, at_s: float | None = None) -> None:
        """Append one frame: uint8 [H, W, 3] RGB (numpy or torch, H x W as constructed). at_s: when
        it was shown, in seconds on any clock (the first timed frame starts the video): it is placed
        at that time, so a display slower than `fps` still plays at the speed it was seen (the
        frames between stay on screen longer); None: one period after the previous frame."""
        arr = checked_frame(frame, self.path, self.height, self.width)
        if self.width % 2 or self.height % 2:
            arr = np.pad(arr, ((0, self.height % 2), (0, self.width % 2), (0, 0)), mode="edge")  # [H + H % 2, W + W % 2, 3]
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
        with self._lock:
            if not self._open:
                raise VideoError(f"{self.path}: write after the writer was finalized or aborted")
            if self._container is None:
                self._start()
            pts = self._next_pts
            if at_s is not None:
                self._t0 = at_s if self._t0 is None else self._t0
                pts = max(pts, round((at_s - self._t0) * float(self._rate)))
            video_frame.pts = pts
            try:
                self._container.mux(self._stream.encode(video_frame))
            except (av.error.FFmpegError, OSError) as err:
                raise VideoError(f"{self.path}: cannot write the video ({error_text(err)})") from err
            self.num_frames, self._next_pts = self.num_frames + 1, pts + 1

    def write_frames(self, frames) -> None:
        """Append uint8 [T, H, W, 3] frames."""
        for frame in frames:
            self.write(frame)

    def finalize(self) -> Path | None:
        """Flush, close and (atomic form) rename to `path`; idempotent. -> the final path, or None when
        no frame was written (then nothing is left behind)."""
        with self._lock:
            if not self._open:
                return self.path if self.path.exists() and self.num_frames else None
            self._open = False
            container, self._container = self._container, None
            if container is None:
                return None
            try:
                container.mux(self._stream.encode())            # drain the encoder's delayed frames
                container.close()
            except (av.error.FFmpegError, OSError) as err:
                if not self.durable:                           # a durable file keeps its finished fragments
                    self.tmp_path.unlink(missing_ok=True)
                raise VideoError(f"{self.path}: could not finish the video ({error_text(err)})") from err
            if self.num_frames == 0:
                self.tmp_path.unlink(missing_ok=True)
                return None
            if not self.durable:
                os.replace(self.tmp_path, self.path)
            return self.path

    def abort(self) -> None:
        """Stop writing. The atomic form drops everything (the final path is left untouched); a durable
        file keeps the frames already in it, which play as they are."""
        with self._lock:
            self._open = False
            container, self._container = self._container, None
            if container is not None:
                try:
                    container.close()
                except (av.error.FFmpegError, OSError):
                    pass                                       # deleted below, or kept as far as it got
            if not self.durable or self.num_frames == 0:
                self.tmp_path.unlink(missing_ok=True)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finalize()
        else:
            self.abort()


class BackgroundVideoWriter:
    """A VideoWriter whose H.264 encoding runs on its own thread, so a real-time loop never waits for
    the encoder (on a small CPU one write can take longer than a frame period). `write` checks and
    copies the frame into a queue of at most `max_queued` frames, blocking only when the encoder falls
    that far behind; `finalize` drains the queue, then finalizes as VideoWriter does. An encoder error
    (a full disk) surfaces at the next write or at finalize; a durable video keeps the frames written
    before it."""

    def __init__(self, path: Path | str, fps: float = 24.0, width: int = 832, height: int = 480,
                 max_queued: int = 48, **options):
        self._writer = VideoWriter(path, fps, width, height, **options)
        self.path, self.width, self.height = self._writer.path, self._writer.width, self._writer.height
        self.num_frames = 0
        self._queue: queue.Queue = queue.Queue(max_queued)
        self._error: Exception | None = None
        self._lock = threading.Lock()
        self._done = False
        self._thread = threading.Thread(target=self._encode, name=f"video-writer {self.path.name}", daemon=True)
        self._thread.start()

    @property
    def closed(self) -> bool:
        return self._done

    def _encode(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._writer.write(*item)
                except Exception as err:            # kept for the caller's next write or finalize
                    self._error = err

    def write(self, frame, at_s: float | None = None) -> None:
        """Queue one frame: uint8 [H, W, 3] RGB (numpy or torch, H x W as constructed); at_s as
        VideoWriter.write."""
        if self._error is not None:
            raise self._error
        arr = checked_frame(frame, self.path, self.height, self.width)
        if self._done:
            raise VideoError(f"{self.path}: write after the writer was finalized")
        self._queue.put((arr.copy(), at_s))         # the caller may reuse its buffer
        self.num_frames += 1

    def finalize(self) -> Path | None:
        """Encode what is queued, then VideoWriter.finalize; idempotent."""
        with self._lock:
            if not self._done:
                self._done = True
                self._queue.put(None)
                self._thread.join()
            if self._error is not None:
                self._writer.abort()
                if isinstance(self._error, VideoError):
                    raise self._error
                raise VideoError(f"{self.path}: encoding failed ({error_text(self._error)})") from self._error
            return self._writer.finalize()


# ---------------------------------------------------------------- contact sheets

def write_contact_sheet(frames, timestamps_s, path: Path | str, cols: int = 4, tile_width: int | None = None) -> Path:
    """A PNG grid of `frames` with each tile's timestamp drawn in its corner (pygame, headless).

    frames: uint8 [N, H, W, 3] (numpy or torch); timestamps_s: N seconds; tile_width: downscale
    tiles to this width (default: full size). -> path"""
    frames = torch.as_tensor(np.asarray(frames)) if not isinstance(frames, torch.Tensor) else frames.detach().cpu()  # [N, H, W, 3]
    times = [float(t) for t in timestamps_s]
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8 or len(frames) == 0:
        raise VideoError(f"{path}: contact sheet needs uint8 frames [N, H, W, 3], "
                         f"got {frames.dtype} {list(frames.shape)}")
    if len(times) != len(frames) or cols < 1:
        raise VideoError(f"{path}: {len(frames)} frames but {len(times)} timestamps (cols={cols})")
    if tile_width and tile_width != frames.shape[2]:
        frames = resize_frames(frames, tile_width, max(1, round(frames.shape[1] * tile_width / frames.shape[2])))
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame
    pygame.font.init()
    n, h, w = frames.shape[:3]
    rows = -(-n // cols)
    sheet = pygame.Surface((min(n, cols) * w, rows * h))
    sheet.fill((16, 16, 16))
    font = pygame.font.Font(None, max(12, h // 10))
    for i, (frame, t) in enumerate(zip(frames.numpy(), times)):
        x, y = (i % cols) * w, (i // cols) * h
        sheet.blit(pygame.surfarray.make_surface(frame.transpose(1, 0, 2)), (x, y))   # surfarray is [W, H]
        label = font.render(f"{t:.2f} s", True, (255, 255, 255))
        box = pygame.Surface((label.get_width() + 6, label.get_height() + 4))
        box.set_alpha(160)
        sheet.blit(box, (x + 2, y + 2))
        sheet.blit(label, (x + 5, y + 4))
    buf = io.BytesIO()
    pygame.image.save(sheet, buf, "sheet.png")
    return write_atomic(path, buf.getvalue())
