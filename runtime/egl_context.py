"""The headless display's OpenGL context, made through EGL at high GPU priority where the driver
grants it (EGL_IMG_context_priority).

On a GPU that also runs the generation worker's CUDA kernels, the display's few GL commands per
frame otherwise queue behind them and a displayed frame comes late. A high-priority context asks
the GPU's scheduler to run them first. Drivers without the extension, or that refuse the priority,
give the default one; the context is made either way. `priority` says what the driver granted.
"""
from __future__ import annotations

import ctypes
import ctypes.util

EGL_NONE, EGL_TRUE = 0x3038, 1
EGL_EXTENSIONS = 0x3055
EGL_OPENGL_API = 0x30A2
EGL_PLATFORM_DEVICE_EXT = 0x313F
EGL_CONTEXT_MAJOR_VERSION, EGL_CONTEXT_MINOR_VERSION = 0x3098, 0x30FB
EGL_CONTEXT_OPENGL_PROFILE_MASK, EGL_CONTEXT_OPENGL_CORE_PROFILE_BIT = 0x30FD, 0x1
EGL_CONTEXT_PRIORITY_LEVEL_IMG = 0x3100
PRIORITIES = {0x3101: "high", 0x3102: "medium", 0x3103: "low"}
EGL_CONTEXT_PRIORITY_HIGH_IMG = 0x3101


class EglContextError(RuntimeError):
    """The context could not be made this way (the caller falls back to moderngl's own)."""


def _egl():
    name = ctypes.util.find_library("EGL") or "libEGL.so.1"
    try:
        lib = ctypes.CDLL(name)
    except OSError as err:
        raise EglContextError(f"no EGL library ({err})") from None
    p, i, u = ctypes.c_void_p, ctypes.c_int32, ctypes.c_uint32
    for fn, res, args in (("eglGetProcAddress", p, [ctypes.c_char_p]), ("eglInitialize", u, [p, p, p]),
                          ("eglBindAPI", u, [u]), ("eglQueryString", ctypes.c_char_p, [p, i]),
                          ("eglCreateContext", p, [p, p, p, ctypes.POINTER(i)]),
                          ("eglMakeCurrent", u, [p, p, p, p]), ("eglQueryContext", u, [p, p, i, ctypes.POINTER(i)]),
                          ("eglDestroyContext", u, [p, p]), ("eglTerminate", u, [p]), ("eglGetError", i, [])):
        getattr(lib, fn).restype, getattr(lib, fn).argtypes = res, args
    return lib


def _extension(egl, name: str, restype, argtypes):
    address = egl.eglGetProcAddress(name.encode())
    if not address:
        raise EglContextError(f"EGL has no {name}")
    return ctypes.CFUNCTYPE(restype, *argtypes)(address)


class HighPriorityContext:
    """A surfaceless OpenGL 4.3 core context on the first EGL device, current on this thread, asked
    for at high priority. `ctx`: the moderngl context on it; `priority`: what the driver granted
    ("high", "medium", "low"; "default" without the extension)."""

    def __init__(self):
        import moderngl
        p, i = ctypes.c_void_p, ctypes.c_int32
        egl = self.egl = _egl()
        query_devices = _extension(egl, "eglQueryDevicesEXT", ctypes.c_uint32, [i, ctypes.POINTER(p), ctypes.POINTER(i)])
        platform_display = _extension(egl, "eglGetPlatformDisplayEXT", p, [ctypes.c_uint32, p, ctypes.POINTER(i)])
        devices, count = (p * 1)(), i(0)
        if not query_devices(1, devices, ctypes.byref(count)) or count.value < 1:
            raise EglContextError("no EGL device")
        self.display = platform_display(EGL_PLATFORM_DEVICE_EXT, devices[0], None)
        if not self.display or not egl.eglInitialize(self.display, None, None):
            raise EglContextError(f"eglInitialize failed (0x{egl.eglGetError():x})")
        extensions = (egl.eglQueryString(self.display, EGL_EXTENSIONS) or b"").decode().split()
        if "EGL_KHR_surfaceless_context" not in extensions or "EGL_KHR_no_config_context" not in extensions:
            self._terminate()
            raise EglContextError("EGL lacks surfaceless or config-less contexts")
        ask_priority = "EGL_IMG_context_priority" in extensions
        attributes = [EGL_CONTEXT_MAJOR_VERSION, 4, EGL_CONTEXT_MINOR_VERSION, 3,
                      EGL_CONTEXT_OPENGL_PROFILE_MASK, EGL_CONTEXT_OPENGL_CORE_PROFILE_BIT]
        if ask_priority:
            attributes += [EGL_CONTEXT_PRIORITY_LEVEL_IMG, EGL_CONTEXT_PRIORITY_HIGH_IMG]
        egl.eglBindAPI(EGL_OPENGL_API)
        self.context = egl.eglCreateContext(self.display, None, None, (i * (len(attributes) + 1))(*attributes, EGL_NONE))
        if not self.context or not egl.eglMakeCurrent(self.display, None, None, self.context):
            error = egl.eglGetError()
            self._terminate()
            raise EglContextError(f"eglCreateContext failed (0x{error:x})")
        self.priority = "default"
        if ask_priority:
            granted = i(0)
            egl.eglQueryContext(self.display, self.context, EGL_CONTEXT_PRIORITY_LEVEL_IMG, ctypes.byref(granted))
            self.priority = PRIORITIES.get(granted.value, "default")
        self.ctx = moderngl.create_context(require=430)

    def release(self) -> None:
        self.ctx.release()
        self.egl.eglMakeCurrent(self.display, None, None, None)
        self.egl.eglDestroyContext(self.display, self.context)
        self._terminate()

    def _terminate(self) -> None:
        self.egl.eglTerminate(self.display)
