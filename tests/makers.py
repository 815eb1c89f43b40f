"""Things several tests make: real media files and stand-ins for parts that cannot run here."""
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_test_video(path, frames, fps=24, *, codec="libx264", pix_fmt="yuv420p", rotation=None, fmt=None,
                     container_options=None, stream_options=None, pts=None, mutate=None) -> Path:
    """Frames uint8 [n, h, w, 3] written with PyAV directly (not through roam's VideoWriter), so tests
    can make the files roam must cope with: pts per frame in 1/1000 s (variable frame rate), a display
    rotation, another container, and `mutate(packet) -> packet | None` to corrupt or drop packets."""
    container = av.open(str(path), "w", format=fmt, options=container_options or {})
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
    stream.options = {"g": "4", "preset": "ultrafast", **(stream_options or {})}
    if rotation is not None:
        stream.set_display_rotation(rotation)
    if pts is not None:
        stream.codec_context.time_base = Fraction(1, 1000)
    packets = []
    for i, f in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(f, format="rgb24")
        frame.pts = i if pts is None else pts[i]
        if pts is not None:
            frame.time_base = Fraction(1, 1000)
        packets += stream.encode(frame)
    packets += stream.encode()
    if not len(frames):
        container.start_encoding()
    for p in packets:
        p = mutate(p) if mutate else p
        if p is not None:
            container.mux(p)
    container.close()
    return Path(path)


def write_audio_only_mp4(path, frames: int = 10) -> None:
    """A real MP4 holding one AAC stream and no video."""
    container = av.open(str(path), "w")
    stream = container.add_stream("aac", rate=44100)
    for i in range(frames):
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 44100, i * 1024
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()


class FakeDA3:
    """Stands in for DepthAnything3.inference (its weights cannot be downloaded here): depth 2 + the
    frame's mean brightness, K with the principal point at the centre, a camera sliding along +x by
    0.1 per frame (w2c), and a record of the batch sizes it saw."""

    def __init__(self):
        self.batches = []

    def inference(self, images, use_ray_pose=False):
        n, (h, w) = len(images), images[0].shape[:2]
        self.batches.append((n, h, w))
        w2c = np.tile(np.eye(4)[:3], (n, 1, 1))
        w2c[:, 0, 3] = -0.1 * np.arange(n)
        K = np.tile(np.array([[300.0, 0, w / 2], [0, 300.0, h / 2], [0, 0, 1]]), (n, 1, 1))
        depth = np.stack([np.full((h, w), 2.0 + im.mean() / 255) for im in images]).astype(np.float32)
        return type("Prediction", (), {"depth": depth, "intrinsics": K, "extrinsics": w2c})

