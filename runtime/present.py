"""Presenters: the only windowing/GL code. `WindowPresenter` shows frames in a pygame window through a
moderngl texture with a HUD; `HeadlessPresenter` writes them to an MP4 and a contact sheet."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from runtime.gl_interop import CudaTextureUploader, make_uploader
from runtime.hud import HudState
from scenes.atomic import close_all
from scenes.video import BackgroundVideoWriter, write_contact_sheet

QUAD_VS = """
#version 330
in vec2 in_pos;
out vec2 uv;
void main() { uv = vec2(in_pos.x * 0.5 + 0.5, 0.5 - in_pos.y * 0.5); gl_Position = vec4(in_pos, 0.0, 1.0); }
"""
QUAD_FS = """
#version 330
uniform sampler2D tex;
in vec2 uv;
out vec4 color;
void main() { color = texture(tex, uv); }
"""


class LateReader:
    """Reads drawn frames back one frame late: each frame is copied into a pixel buffer, which the GPU
    fills when it gets there, and handed over (as uint8 [H, W, 3], read as RGB by the driver) at the
    next read or `flush`, by then long done. So the display's thread never waits for the GPU to finish
    a frame to read it; on a software rasteriser it costs what a direct read does."""

    def __init__(self, ctx):
        self.ctx = ctx
        self._free: list = []                 # pixel buffers not in use
        self._pending = None                  # (buffer, (h, w), deliver) of the frame read last

    def read(self, texture, deliver: Callable[[np.ndarray], None]) -> None:
        """Start reading an RGBA8 texture of `ctx` (rows as stored); `deliver(frame)` gets it later."""
        w, h = texture.size
        buffer = self._free.pop() if self._free else None
        if buffer is not None and buffer.size != w * h * 3:     # a texture of another size
            buffer.release()
            buffer = None
        if buffer is None:
            buffer = self.ctx.buffer(reserve=w * h * 3)
        fbo = self.ctx.framebuffer([texture])
        try:
            fbo.read_into(buffer, components=3, alignment=1)
        finally:
            fbo.release()
        self.flush()
        self._pending = (buffer, (h, w), deliver)

    def flush(self) -> None:
        """Hand over the frame read last, if any (waits for the GPU only if it is not done yet)."""
        if self._pending is None:
            return
        buffer, (h, w), deliver = self._pending
        self._pending = None
        frame = np.empty((h, w, 3), np.uint8)
        buffer.read_into(frame)
        self._free.append(buffer)
        deliver(frame)

    def release(self) -> None:
        self.flush()
        for buffer in self._free:
            buffer.release()
        self._free = []


def has_display() -> bool:
    """True when a window can be opened (an X11/Wayland display, or a non-dummy SDL driver)."""
    if os.environ.get("SDL_VIDEODRIVER", "") in ("dummy", "offscreen"):
        return False
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class Presenter:
    """What the session asks of a presenter. A presenter implements `present`; everything else has a
    default that does nothing, so the session calls it all on every presenter."""
    accepts_device_frames = False     # frames may stay on the GPU (uploaded by CUDA-OpenGL interop)

    def present(self, frame: torch.Tensor, hud: HudState) -> None:
        """Show (or write) one frame, uint8 [H, W, 3]."""
        raise NotImplementedError

    def present_texture(self, texture, hud: HudState, at_s: float | None = None,
                        on_read: Callable[[np.ndarray], None] | None = None) -> None:
        """Show (or write) a frame a Display drew on the GPU: an RGBA8 texture of this presenter's
        OpenGL context `ctx`, rows top first; at_s: when it is shown (wall seconds, real time; None:
        one display period after the last); on_read(frame uint8 [H, W, 3]) gets its pixels, one frame
        later (LateReader) or at `flush_reads`. Only presenters a Display draws through
        (runtime/display.py) implement it."""
        raise NotImplementedError

    def flush_reads(self) -> None:
        """Hand over the frame still being read (see present_texture), before its receiver closes."""

    def events(self) -> list:
        """Pending window events for the controllers."""
        return []

    def show_status(self, lines: list[str]) -> None:
        """Start-up status while no frame is ready yet."""

    def refresh(self) -> None:
        """Draw the last frame again with the HUD as it is now, where there is a window."""

    def toggle_fullscreen(self) -> None:
        """Switch between window and fullscreen, where there is a window."""

    def save_screenshot(self) -> Path | None:
        """What the window shows now as a PNG, where there is a window: its path, else None."""
        return None

    def close(self) -> None:
        """Finish the outputs; the session is over."""


class HeadlessPresenter(Presenter):
    """Writes every presented frame to OUT/video.mp4 (H.264 at x264 `preset`, durable: it plays up to
    about a second before a crash or SIGKILL) and keeps a few for the contact sheet
    (OUT/contact_sheet.png, a grid of frames with their timestamps)."""
    accepts_device_frames = False     # encodes from host memory: the worker copies frames to the host

    def __init__(self, out_dir: Path, fps: float, width: int, height: int, sheet_tiles: int = 12,
                 preset: str = "medium"):
        self.out_dir, self.fps, self.sheet_tiles = Path(out_dir), fps, sheet_tiles
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.writer = BackgroundVideoWriter(self.out_dir / "video.mp4", fps=fps, width=width, height=height,
                                            preset=preset, durable=True)
        self._sheet: list[tuple[float, np.ndarray]] = []   # every `_stride`-th frame, at most 2 x tiles
        self._stride = 1
        self.frames_presented = 0
        self._t0: float | None = None               # the first timed frame's time (at_s)
        self._ctx = None
        self._reader: LateReader | None = None

    @property
    def ctx(self):
        """An offscreen OpenGL context (EGL) for drawing the world, made on first use."""
        if self._ctx is None:
            import moderngl
            self._ctx = moderngl.create_standalone_context(backend="egl", require=430)
        return self._ctx

    def events(self) -> list:
        """Events of an initialised pygame display (kiosk pads, tests on the dummy driver); none otherwise."""
        import pygame
        return pygame.event.get() if pygame.display.get_init() else []

    def present_texture(self, texture, hud: HudState, at_s: float | None = None,
                        on_read: Callable[[np.ndarray], None] | None = None) -> None:
        """A frame drawn on the GPU (RGBA8 texture, rows top first): read back one frame late and
        written at its time `at_s` (see VideoWriter.write), then handed to `on_read`."""
        def deliver(frame: np.ndarray) -> None:
            self._write(frame, at_s)
            if on_read is not None:
                on_read(frame)
        if self._reader is None:
            self._reader = LateReader(self.ctx)
        self._reader.read(texture, deliver)

    def flush_reads(self) -> None:
        if self._reader is not None:
            with self._ctx:
                self._reader.flush()

    def present(self, frame: torch.Tensor, hud: HudState) -> None:
        """frame: uint8 [H, W, 3]."""
        self._write(frame.cpu().numpy())

    def _write(self, array: np.ndarray, at_s: float | None = None) -> None:
        self.writer.write(array, at_s)
        self._t0 = at_s if self._t0 is None else self._t0
        if self.frames_presented % self._stride == 0:
            shown_s = self.frames_presented / self.fps if at_s is None else at_s - self._t0
            self._sheet.append((shown_s, array.copy()))
            if len(self._sheet) >= 2 * self.sheet_tiles:     # bounded however long the session runs
                self._sheet, self._stride = self._sheet[::2], self._stride * 2
        self.frames_presented += 1

    def show_status(self, lines: list[str]) -> None:
        """Start-up status: a headless run has nowhere to show it (play prints it)."""

    def _close_gl(self) -> None:
        """The last frame still being read goes out first, then the context."""
        if self._ctx is None:
            return
        try:
            if self._reader is not None:
                with self._ctx:
                    self._reader.release()
        finally:
            self._ctx.release()

    def close(self) -> None:
        close_all(self._close_gl, self.writer.finalize)
        if self._sheet:
            keep = np.unique(np.linspace(0, len(self._sheet) - 1, self.sheet_tiles).round().astype(int))
            picked = [self._sheet[i] for i in keep]          # evenly over the whole session, last frame included
            write_contact_sheet(np.stack([f for _, f in picked]), [t for t, _ in picked],
                                self.out_dir / "contact_sheet.png", tile_width=416)


class WindowPresenter(Presenter):
    """A pygame window with a moderngl context: the frame goes to a texture drawn on a quad that keeps
    its aspect ratio (black bars around it), and the HUD, the help overlay and the start-up status are
    text rendered by pygame into a window-sized, blended texture. Fullscreen takes the screen's own
    resolution. With a CUDA `device` the frames reach the texture through CUDA-OpenGL interop when it
    works here (see `accepts_device_frames`)."""

    def __init__(self, width: int, height: int, title: str = "roam", out_dir: Path | None = None,
                 fullscreen: bool = False, device: torch.device | str = "cpu"):
        import moderngl
        import pygame
        # SDL makes the window's GL context through EGL, as the offscreen contexts are made (the sample
        # scene's, the headless display's): an EGL context made before a GLX window breaks the GLX
        # context on Mesa (X error BadAccess in glXMakeCurrent, e.g. `play` building the sample first)
        os.environ.setdefault("SDL_VIDEO_X11_FORCE_EGL", "1")
        pygame.display.init()             # not pygame.init(): no audio, so no ALSA errors on machines without sound
        pygame.font.init()
        pygame.display.set_caption(title)
        self.pygame, self.moderngl, self.size, self.fullscreen = pygame, moderngl, (width, height), fullscreen
        # fullscreen at (0, 0): the desktop's resolution, not a mode change to the frame's
        size, flags = ((0, 0), pygame.FULLSCREEN) if fullscreen else (self.size, pygame.RESIZABLE)
        try:                                  # swap with the display's refresh where the driver can
            self.surface = pygame.display.set_mode(size, pygame.OPENGL | pygame.DOUBLEBUF | flags, vsync=1)
        except pygame.error:
            self.surface = pygame.display.set_mode(size, pygame.OPENGL | pygame.DOUBLEBUF | flags)
        if fullscreen:
            pygame.mouse.set_visible(False)
        self.ctx = moderngl.create_context()
        self.ctx.enable(moderngl.BLEND)
        self.ctx.blend_func = moderngl.SRC_ALPHA, moderngl.ONE_MINUS_SRC_ALPHA
        self.program = self.ctx.program(vertex_shader=QUAD_VS, fragment_shader=QUAD_FS)
        quad = np.array([-1, -1, 1, -1, -1, 1, 1, 1], dtype="f4")
        self.vao = self.ctx.vertex_array(self.program, [(self.ctx.buffer(quad.tobytes()), "2f", "in_pos")])
        self.frames = make_uploader(self.ctx, self.size, device)
        self.overlay_tex = None                        # window-sized RGBA text layer, made on first draw
        self.font = pygame.font.SysFont("monospace", 16, bold=True)
        self.title_font = pygame.font.SysFont("monospace", 40, bold=True)
        self.frames_presented = 0
        self.out_dir = Path(out_dir) if out_dir is not None else Path(".")
        self.screenshots: list[Path] = []
        self._hud: HudState | None = None              # the session's HUD, as last presented
        self._texture = None                           # the frame texture last presented
        self.reader = LateReader(self.ctx)             # a recording's frames

    @property
    def accepts_device_frames(self) -> bool:
        """True when frames can stay on the GPU: they are uploaded by CUDA-OpenGL interop."""
        return isinstance(self.frames, CudaTextureUploader)

    @property
    def window_size(self) -> tuple[int, int]:
        return self.pygame.display.get_window_size()

    def events(self) -> list:
        """Pending window events (keyboard, mouse, pads, close), for the controllers."""
        return self.pygame.event.get()

    def present(self, frame: torch.Tensor, hud: HudState) -> None:
        """frame: uint8 [H, W, 3] on the host or the GPU. Uploads, draws the frame and the HUD, swaps."""
        h, w = frame.shape[:2]
        if (w, h) != self.frames.size:
            device = self.frames.device if self.accepts_device_frames else "cpu"
            self.frames.release()
            self.frames = make_uploader(self.ctx, (w, h), device)
        self.frames.upload(frame)
        self._show(self.frames.texture, hud)
        self.pygame.display.flip()
        self.frames_presented += 1

    def present_texture(self, texture, hud: HudState, at_s: float | None = None,
                        on_read: Callable[[np.ndarray], None] | None = None) -> None:
        """A frame drawn on the GPU (texture of this context, rows top first): drawn with the HUD,
        swapped (at once: `at_s` is for presenters that write files); read back one frame late for
        `on_read` (a recording) when given."""
        self._show(texture, hud)
        if on_read is not None:
            self.reader.read(texture, on_read)
        self.pygame.display.flip()
        self.frames_presented += 1

    def flush_reads(self) -> None:
        self.reader.flush()

    def _show(self, texture, hud: HudState) -> None:
        self._texture, self._hud = texture, hud
        self._draw(self.ctx.screen)

    def refresh(self) -> None:
        """Draw the last frame again with the HUD as it is now (a toggled HUD or help shows at once)."""
        if self._hud is not None:
            self._draw(self.ctx.screen)
            self.pygame.display.flip()

    def save_screenshot(self) -> Path | None:
        """What the window shows now (frame, HUD, help) as OUT/screenshot-N.png, written at once;
        None before the first frame."""
        if self._hud is None:
            return None
        size = self.window_size
        fbo = self.ctx.simple_framebuffer(size, components=4)
        try:
            self._draw(fbo)
            data = fbo.read(components=3)
        finally:
            fbo.release()
            self.ctx.screen.use()
        image = np.frombuffer(data, dtype=np.uint8).reshape(size[1], size[0], 3)[::-1]     # [H, W, 3] top row first
        path = self.out_dir / f"screenshot-{len(self.screenshots)}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        surface = self.pygame.image.frombuffer(np.ascontiguousarray(image).tobytes(), size, "RGB")
        self.pygame.image.save(surface, str(path))
        self.screenshots.append(path)
        return path

    def show_status(self, lines: list[str]) -> None:
        """Before the first frame (loading, warm-up): the name and the lines in the middle of a dark
        window, so it is visibly alive and says what it waits for."""
        self.ctx.screen.use()
        self.ctx.viewport = (0, 0, *self.window_size)
        self.ctx.clear(0.08, 0.08, 0.1)
        self._draw_overlay(lambda surface: self._paint_status(surface, lines))
        self.pygame.display.flip()

    def toggle_fullscreen(self) -> None:
        self.pygame.display.toggle_fullscreen()
        self.fullscreen = not self.fullscreen

    def close(self) -> None:
        try:
            self.reader.release()
        finally:
            self.pygame.display.quit()

    # ---- drawing -----------------------------------------------------------------------------
    def _draw(self, target) -> None:
        """The frame (aspect kept, black bars) and the text layer into `target` (screen or fbo)."""
        target.use()
        W, H = self.window_size
        self.ctx.viewport = (0, 0, W, H)
        self.ctx.clear(0.0, 0.0, 0.0)
        self.ctx.enable(self.moderngl.BLEND)  # the display's world drawing may have turned it off
        self.ctx.viewport = letterbox(self._texture.size, (W, H))
        self._texture.use(0)
        self.vao.render(mode=4 + 1)          # TRIANGLE_STRIP
        self.ctx.viewport = (0, 0, W, H)
        hud = self._hud
        if (hud.visible and hud.lines) or (hud.show_help and hud.help_rows):
            self._draw_overlay(lambda surface: self._paint_hud(surface, hud))

    def _draw_overlay(self, paint) -> None:
        """Paint a transparent window-sized pygame surface with `paint(surface)` and blend it on top."""
        pg, size = self.pygame, self.window_size
        if self.overlay_tex is None or self.overlay_tex.size != size:
            if self.overlay_tex is not None:
                self.overlay_tex.release()
            self.overlay_tex = self.ctx.texture(size, 4)
        surface = pg.Surface(size, pg.SRCALPHA)
        paint(surface)
        self.overlay_tex.write(pg.image.tobytes(surface, "RGBA"))
        self.overlay_tex.use(0)
        self.vao.render(mode=4 + 1)

    def _paint_hud(self, surface, hud: HudState) -> None:
        if hud.show_help and hud.help_rows:          # the help covers the HUD while it shows
            self._paint_help(surface, hud.help_rows)
        elif hud.visible and hud.lines:
            self._paint_box(surface, hud.lines, (0, 0))

    def _paint_box(self, surface, lines: list[str], at: tuple[int, int]) -> None:
        pg, pad, line_h = self.pygame, 8, self.font.get_linesize()
        box_w = max(self.font.size(line)[0] for line in lines) + 2 * pad
        surface.fill((0, 0, 0, 150), pg.Rect(*at, box_w, line_h * len(lines) + 2 * pad))
        for i, line in enumerate(lines):
            surface.blit(self.font.render(line, True, (255, 255, 255)), (at[0] + pad, at[1] + pad + i * line_h))

    def _paint_help(self, surface, rows: list[tuple[str, str, str]]) -> None:
        """The help overlay: a centred table of keys, gamepad and action, scaled down to fit."""
        pg, pad = self.pygame, 12
        header = [("keys", "gamepad", "does")]
        cells = [[self.font.render(text, True, colour) for text, colour in
                  zip(row, ((255, 220, 120), (150, 200, 255), (255, 255, 255)))] for row in header + rows]
        widths = [max(c[i].get_width() for c in cells) for i in range(3)]
        line_h = self.font.get_linesize()
        table = pg.Surface((sum(widths) + 4 * pad, line_h * len(cells) + 2 * pad), pg.SRCALPHA)
        table.fill((0, 0, 0, 200))
        for r, row in enumerate(cells):
            x = pad
            for i, cell in enumerate(row):
                table.blit(cell, (x, pad + r * line_h))
                x += widths[i] + pad
        W, H = surface.get_size()
        scale = min(1.0, 0.95 * W / table.get_width(), 0.95 * H / table.get_height())
        if scale < 1.0:
            table = pg.transform.smoothscale(table, (int(table.get_width() * scale), int(table.get_height() * scale)))
        surface.blit(table, ((W - table.get_width()) // 2, (H - table.get_height()) // 2))

    def _wrap(self, lines: list[str], width: int) -> list[str]:
        """Lines broken at spaces so that each fits `width` pixels."""
        out = []
        for line in lines:
            words, current = line.split(" "), ""
            for word in words:
                trial = f"{current} {word}" if current else word
                if current and self.font.size(trial)[0] > width:
                    out.append(current)
                    trial = word
                current = trial
            out.append(current)
        return out

    def _paint_status(self, surface, lines: list[str]) -> None:
        W, H = surface.get_size()
        title = self.title_font.render("roam", True, (255, 255, 255))
        rendered = [self.font.render(line, True, (210, 210, 220)) for line in self._wrap(lines, W - 16)]
        line_h = self.font.get_linesize()
        top = (H - title.get_height() - line_h * (len(rendered) + 1)) // 2
        surface.blit(title, ((W - title.get_width()) // 2, top))
        for i, text in enumerate(rendered):
            surface.blit(text, (max(8, (W - text.get_width()) // 2), top + title.get_height() + line_h * (i + 1)))


def letterbox(frame_size: tuple[int, int], window_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The viewport (x, y, w, h) that shows a frame of frame_size (W, H) as large as the window
    allows without changing its shape, centred."""
    (fw, fh), (ww, wh) = frame_size, window_size
    scale = min(ww / fw, wh / fh)
    w, h = max(1, round(fw * scale)), max(1, round(fh * scale))
    return (ww - w) // 2, (wh - h) // 2, w, h
