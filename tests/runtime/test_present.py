"""The presenter's frame upload path (pixel buffer objects) on a real EGL context."""
import moderngl
import numpy as np
import pytest

from runtime.gl_interop import TextureUploader


@pytest.mark.parametrize("size", [(80, 48), (17, 9)])       # odd widths need byte alignment
def test_frames_reach_the_texture_through_the_pbo_ring(size):
    ctx = moderngl.create_standalone_context(backend="egl")
    try:
        up = TextureUploader(ctx, size)
        rng = np.random.default_rng(0)
        for _ in range(5):                                      # more frames than PBOs in the ring
            frame = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            up.upload(frame)
            back = np.frombuffer(up.texture.read(alignment=1), dtype=np.uint8).reshape(size[1], size[0], 3)
            assert np.array_equal(back, frame)
        up.release()
    finally:
        ctx.release()
