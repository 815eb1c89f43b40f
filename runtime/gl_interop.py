"""Frame upload into a moderngl texture: `TextureUploader` copies host frames through a ring of pixel
buffer objects; `CudaTextureUploader` copies CUDA frames device to device into PBOs registered with
CUDA (CUDA-OpenGL interop), so frames made on the GPU never round-trip through host memory.
`make_uploader` picks the CUDA one when the device is CUDA and interop works, else the plain one.
"""
from __future__ import annotations

import logging

import numpy as np
import torch

log = logging.getLogger(__name__)


class TextureUploader:
    """Streams uint8 RGB frames into a texture through a ring of pixel buffer objects: each frame is
    copied into a freshly orphaned PBO and the texture update reads from it, so the driver copies to
    the GPU asynchronously instead of stalling the presenter on a synchronous upload."""

    def __init__(self, ctx, size: tuple[int, int], ring: int = 3):
        w, h = size
        self.ctx, self.size = ctx, size
        self.texture = ctx.texture(size, 3)
        self.pbos = [ctx.buffer(reserve=w * h * 3, dynamic=True) for _ in range(ring)]
        self._next = 0

    def upload(self, frame: np.ndarray | torch.Tensor) -> None:
        """frame: uint8 [H, W, 3], rows top to bottom (the quad's uv flips y); a tensor on any device."""
        if isinstance(frame, torch.Tensor):
            frame = frame.cpu().numpy()
        pbo = self.pbos[self._next]
        self._next = (self._next + 1) % len(self.pbos)
        pbo.orphan()
        pbo.write(np.ascontiguousarray(frame).tobytes())
        self.texture.write(pbo, alignment=1)

    def release(self) -> None:
        for obj in (*self.pbos, self.texture):
            obj.release()


def load_cudart():
    """The CUDA runtime bindings of cuda-python (new and old module layouts)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            raise ImportError("CUDA-OpenGL interop needs the cuda-python package (pip install cuda-python)") from None
    return cudart


def check(cudart, call: str, result) -> list:
    """A cudart call's return tuple (error, *outputs) -> outputs; a clear error naming the call otherwise."""
    err, *outputs = result
    if err != cudart.cudaError_t.cudaSuccess:
        raise RuntimeError(f"CUDA-OpenGL interop: {call} failed: {getattr(err, 'name', err)}")
    return outputs


class CudaTextureUploader:
    """Same interface as TextureUploader for CUDA frames: each frame is copied device to device into
    the next PBO of a ring (registered with CUDA once, write-discard), then the texture reads the PBO
    on the GPU. The copy runs on the uploader's own high-priority stream: on the default stream it
    would queue behind the generation worker's kernels. The GL context must be current and on the
    same GPU as `device`."""

    def __init__(self, ctx, size: tuple[int, int], device: torch.device, ring: int = 3):
        self.cudart = cudart = load_cudart()
        w, h = size
        self.ctx, self.size, self.device, self.nbytes = ctx, size, torch.device(device), w * h * 3
        self.stream = torch.cuda.Stream(self.device, priority=-1)
        self.texture = ctx.texture(size, 3)
        self.pbos = [ctx.buffer(reserve=self.nbytes, dynamic=True) for _ in range(ring)]
        self.resources: list = []
        self._next = 0
        flags = cudart.cudaGraphicsRegisterFlags.cudaGraphicsRegisterFlagsWriteDiscard
        try:
            with torch.cuda.device(self.device):
                for pbo in self.pbos:
                    self.resources += check(cudart, "cudaGraphicsGLRegisterBuffer",
                                            cudart.cudaGraphicsGLRegisterBuffer(pbo.glo, flags))
        except BaseException:
            self.release()
            raise

    def upload(self, frame: torch.Tensor) -> None:
        """frame: uint8 [H, W, 3] on the GPU, finished (the worker waits for its block before handing it
        over; a host tensor is copied up first), rows top to bottom."""
        w, h = self.size
        if frame.dtype != torch.uint8 or tuple(frame.shape) != (h, w, 3):
            raise ValueError(f"expected a uint8 [{h}, {w}, 3] frame, got {frame.dtype} {list(frame.shape)}")
        cudart, i = self.cudart, self._next
        self._next = (i + 1) % len(self.pbos)
        resource, stream = self.resources[i], self.stream.cuda_stream
        with torch.cuda.device(self.device), torch.cuda.stream(self.stream):
            frame = frame.to(self.device).contiguous()      # no-op for a finished frame of the worker
            check(cudart, "cudaGraphicsMapResources", cudart.cudaGraphicsMapResources(1, resource, stream))
            try:
                ptr, size = check(cudart, "cudaGraphicsResourceGetMappedPointer",
                                  cudart.cudaGraphicsResourceGetMappedPointer(resource))
                if size < self.nbytes:
                    raise RuntimeError(f"CUDA-OpenGL interop: mapped PBO has {size} bytes, need {self.nbytes}")
                check(cudart, "cudaMemcpyAsync", cudart.cudaMemcpyAsync(
                    ptr, frame.data_ptr(), self.nbytes, cudart.cudaMemcpyKind.cudaMemcpyDeviceToDevice, stream))
            finally:          # unmap orders the copy before the GL commands issued after it
                check(cudart, "cudaGraphicsUnmapResources", cudart.cudaGraphicsUnmapResources(1, resource, stream))
        frame.record_stream(self.stream)      # the allocator keeps the frame's memory until the copy is done
        self.texture.write(self.pbos[i], alignment=1)

    def release(self) -> None:
        while self.resources:
            check(self.cudart, "cudaGraphicsUnregisterResource",
                  self.cudart.cudaGraphicsUnregisterResource(self.resources.pop()))
        for obj in (*self.pbos, self.texture):
            obj.release()


def make_uploader(ctx, size: tuple[int, int], device) -> TextureUploader | CudaTextureUploader:
    """The CUDA-interop uploader when `device` is CUDA and interop works here (tried with one frame),
    else the plain one; a failed try logs one warning with the reason."""
    device = torch.device(device)
    if device.type != "cuda":
        return TextureUploader(ctx, size)
    uploader = None
    try:
        uploader = CudaTextureUploader(ctx, size, device)
        uploader.upload(torch.zeros(size[1], size[0], 3, dtype=torch.uint8, device=device))
        return uploader
    except Exception as err:
        log.warning("CUDA-OpenGL interop unavailable, frames go through host memory: %s", err)
        if uploader is not None:
            try:
                uploader.release()
            except Exception as release_err:
                log.debug("releasing the failed CUDA uploader: %s", release_err)
        clear_cuda_error()
        return TextureUploader(ctx, size)


def clear_cuda_error() -> None:
    """Reset the runtime's last error after a failed try, so it is not reported by a later CUDA call."""
    try:
        load_cudart().cudaGetLastError()
    except ImportError:
        pass
