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


def test_the_window_shows_the_start_up_status_and_then_frames(tmp_path, monkeypatch):
    """A real pygame + moderngl window on SDL's offscreen driver (EGL): the status screen draws text
    on a dark background without counting as a frame; a frame then fills the window."""
    import pygame
    import torch
    from runtime.present import HudState, WindowPresenter
    monkeypatch.setenv("SDL_VIDEODRIVER", "offscreen")
    pygame.display.quit()                             # an earlier test may hold the dummy driver
    try:
        window = WindowPresenter(160, 96, out_dir=tmp_path)
    except (pygame.error, moderngl.Error) as err:   # no EGL / OpenGL here
        pytest.skip(f"no offscreen OpenGL window: {err}")
    try:
        window.show_status(["roam: warming up"])
        status = pygame.image.load(str(window.screenshot(tmp_path / "status.png")))
        pixels = pygame.surfarray.array3d(status)                    # [W, H, 3]
        assert window.frames_presented == 0
        assert pixels[:, 60:].max() < 40 and pixels[:, :24].max() > 200    # dark, with white text at the top
        window.present(torch.full((96, 160, 3), 120, dtype=torch.uint8), HudState(visible=False))
        frame = pygame.surfarray.array3d(pygame.image.load(str(window.screenshot(tmp_path / "frame.png"))))
        assert window.frames_presented == 1 and np.abs(frame.astype(int) - 120).max() <= 1
    finally:
        window.close()
