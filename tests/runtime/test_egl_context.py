"""The headless display's EGL context: made surfaceless on the first EGL device, with the priority
the driver granted, and it draws."""
import numpy as np
import pytest

from runtime.egl_context import EglContextError, HighPriorityContext


def test_the_context_draws_and_says_its_priority():
    try:
        context = HighPriorityContext()
    except EglContextError as err:
        pytest.skip(f"no EGL device context here: {err}")
    try:
        ctx = context.ctx
        assert ctx.version_code >= 430
        assert context.priority in ("high", "medium", "low", "default")
        target = ctx.framebuffer([ctx.texture((8, 4), 4)])
        target.use()
        ctx.clear(1.0, 0.5, 0.0, 1.0)
        pixels = np.frombuffer(target.read(components=4), np.uint8).reshape(4, 8, 4)
        assert (pixels == [255, 128, 0, 255]).all() or (pixels == [255, 127, 0, 255]).all()
    finally:
        context.release()


def test_a_headless_presenter_draws_in_it(tmp_path):
    from runtime.present import HeadlessPresenter
    presenter = HeadlessPresenter(tmp_path, 24, 16, 8)
    try:
        ctx = presenter.ctx
        assert presenter.gl_priority in ("high", "medium", "low", "default")
        texture = ctx.texture((16, 8), 4, data=np.full((8, 16, 4), 200, np.uint8).tobytes())
        frame = presenter.present_texture(texture, None)
        assert frame.shape == (8, 16, 3) and (frame == 200).all()
    finally:
        presenter.close()
    assert (tmp_path / "video.mp4").stat().st_size > 0
