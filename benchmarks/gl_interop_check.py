"""CUDA-OpenGL interop check on a headless NVIDIA machine (EGL and CUDA on the same GPU): random CUDA
frames must reach a texture bit-exact by both uploaders, then one upload is timed by the host path
(tensor.cpu() + PBO upload) and by the interop path (device-to-device copy into a registered PBO).

    python -m benchmarks.gl_interop_check [--frames 200] [--width 832 --height 480]

Prints PASS/FAIL lines and a table of median ms per frame (upload + ctx.finish() + CUDA sync). The
"GPU busy" row times the interop upload while ~20 ms of matmuls are queued on the default stream
(the generation worker's stream): it stays small only if the copy does not wait behind them.
Exits 1 on any FAIL.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import moderngl
import numpy as np
import torch

from runtime.gl_interop import CudaTextureUploader, TextureUploader, make_uploader


def nvidia_egl_context():
    """A standalone EGL context on an NVIDIA GPU (the EGL device list may also hold Mesa's software
    renderer), else the default EGL device."""
    for i in range(8):
        try:
            ctx = moderngl.create_standalone_context(backend="egl", device_index=i)
        except Exception:           # no device i (or a glcontext without device_index)
            break
        if "NVIDIA" in ctx.info["GL_VENDOR"] + ctx.info["GL_RENDERER"]:
            return ctx
        ctx.release()
    return moderngl.create_standalone_context(backend="egl")


def texture_array(uploader) -> np.ndarray:
    w, h = uploader.size
    return np.frombuffer(uploader.texture.read(alignment=1), dtype=np.uint8).reshape(h, w, 3)


def exact(name: str, uploader, frames: list[torch.Tensor]) -> bool:
    ok = True
    for frame in frames:
        uploader.upload(frame)
        ok &= np.array_equal(texture_array(uploader), frame.cpu().numpy())
    print(f"{'PASS' if ok else 'FAIL'} {name}: texture equals the frame ({len(frames)} frames)")
    return ok


def median_ms(upload, frames, finish, before=lambda: None, after=lambda: None) -> float:
    times = []
    for i, frame in enumerate(frames):
        before()
        t0 = time.perf_counter()
        upload(frame)
        finish()
        times.append((time.perf_counter() - t0) * 1000)
        after()
    return statistics.median(times[10:] if len(times) > 20 else times)    # the first frames warm up


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--width", type=int, default=832)
    p.add_argument("--height", type=int, default=480)
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("FAIL no CUDA device")
        return 1
    device, size = torch.device("cuda"), (args.width, args.height)
    ctx = nvidia_egl_context()
    print(f"GL: {ctx.info['GL_RENDERER']} ({ctx.info['GL_VENDOR']}); CUDA: {torch.cuda.get_device_name(device)}")
    frames = [torch.randint(0, 256, (args.height, args.width, 3), dtype=torch.uint8, device=device)
              for _ in range(args.frames)]
    plain, interop = TextureUploader(ctx, size), make_uploader(ctx, size, device)
    ok = isinstance(interop, CudaTextureUploader)
    print(f"{'PASS' if ok else 'FAIL'} make_uploader picked {type(interop).__name__} (see the warning above if not)")
    ok &= exact("host path, CUDA frames", plain, frames[:5])
    ok &= exact("interop path, CUDA frames", interop, frames[:5])
    ok &= exact("interop path, host frames", interop, [f.cpu() for f in frames[5:8]])

    def sync():
        ctx.finish()
        torch.cuda.synchronize()
    a = torch.randn(4096, 4096, device=device)

    def busy():
        return [a @ a for _ in range(8)]                                # ~20 ms queued on the default stream
    busy()                                                              # warm-up (cuBLAS)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    busy()
    torch.cuda.synchronize()
    busy_ms = (time.perf_counter() - t0) * 1000
    rows = [("host: .cpu() + PBO", median_ms(plain.upload, frames, sync)),
            ("interop: CUDA -> PBO", median_ms(interop.upload, frames, sync)),
            (f"interop, GPU busy {busy_ms:.0f} ms", median_ms(interop.upload, frames[:50], ctx.finish,
                                                           before=busy, after=torch.cuda.synchronize))]
    print(f"\n{'path (' + str(args.width) + 'x' + str(args.height) + ')':32s} median ms/frame")
    for name, ms in rows:
        print(f"{name:32s} {ms:8.3f}")
    interop.release()
    plain.release()
    print("PASS all" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
