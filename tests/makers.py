"""Things several tests make: real media files and stand-ins for parts that cannot run here."""
import av
import numpy as np


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
