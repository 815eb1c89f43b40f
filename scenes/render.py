"""The renderer everybody calls: source frames + depth + cameras -> novel-view render and mask.

`render_views` is the reference's default (`warper`) backend, frame by frame: target frame t
warps only source frame t (no fusion across frames). Its inputs and outputs are the uint8 frames
the reference writes to and reads from its render videos, so the model sees exactly what the
reference's encoder sees (before video compression). Keep this signature stable.
"""
from __future__ import annotations

import torch
from torch import Tensor

from scenes.warper import forward_warp, max_log_depth, to_encoder_u8

DEPTH_CLIP = (1e-4, 1e4)      # the reference clips depth to this range when it loads it


def reference_K(K0: Tensor, width: int, height: int) -> Tensor:
    """The reference's `scale_intrinsic`: [3, 3] -> [3, 3] float32 with the principal point forced
    to the centre: fx *= W / (2 cx), fy *= H / (2 cy), cx = W / 2, cy = H / 2. It assumes the
    input principal point was at the centre of the image K0 belongs to (true for DA3 output)."""
    K = torch.as_tensor(K0, dtype=torch.float32).clone()
    cx, cy = float(K[0, 2]), float(K[1, 2])
    if not (cx > 0 and cy > 0):
        raise ValueError(f"reference_K: principal point must be positive, got ({cx}, {cy})")
    K[0, 0] *= width / (cx * 2)            # float32 tensor times a Python float, as the reference
    K[1, 1] *= height / (cy * 2)
    K[0, 2] = width / 2.0
    K[1, 2] = height / 2.0
    return K


def render_views(frames_u8: Tensor, depth: Tensor, K: Tensor, src_c2w: Tensor, tgt_c2w: Tensor, *,
                 log_depth_max: Tensor | float | None = None) -> tuple[Tensor, Tensor]:
    """Warp each source frame t to its target camera t.

    frames_u8 [T, H, W, 3] uint8 RGB        depth [T, H, W] float32 camera z (clipped to [1e-4, 1e4])
    K [3, 3] or [T, 3, 3] pixels            src_c2w, tgt_c2w [T, 4, 4] (OpenCV axes; cast to float32)
    log_depth_max: the depth weight's normaliser; None = the max over these T frames, which is
      the reference when T is the whole video. For a video rendered in blocks, pass
      video_log_depth_max(...) of the whole video to every block.
    -> render_u8 [T, H, W, 3] uint8 (trunc((x + 1) * 127.5); holes are 0),
       mask [T, H, W] bool (True where any splat weight landed).
    Everything runs on frames_u8's device; nothing is synchronised to the host."""
    T, H, W = _check_shapes(frames_u8, depth, K, src_c2w, tgt_c2w)
    colour = (frames_u8.to(torch.float32) / 127.5 - 1.0).permute(0, 3, 1, 2)      # [T, 3, H, W] view, [-1, 1]
    render, mask = forward_warp(colour, *_warp_inputs(depth, K, src_c2w, tgt_c2w, frames_u8.device),
                                log_depth_max=log_depth_max)
    return to_encoder_u8(render), mask[:, 0] > 0


def video_log_depth_max(depth: Tensor, K: Tensor, src_c2w: Tensor, tgt_c2w: Tensor, *, index: Tensor | None = None,
                        chunk: int = 24) -> Tensor:
    """The normaliser render_views would use if given all T frames at once (0-dim float32 tensor on
    depth's device), computed `chunk` frames at a time. Same shapes as render_views' arguments; with
    `index` [T], depth [N, H, W] and src_c2w [N, 4, 4] hold the source frames and frame t uses
    index[t] (picked per chunk, so a long freeze never holds T depth maps)."""
    T = len(tgt_c2w)
    K = K.expand(T, 3, 3)
    pick = (lambda x, i: x[index[i:i + chunk]]) if index is not None else (lambda x, i: x[i:i + chunk])
    return torch.stack([max_log_depth(*_warp_inputs(pick(depth, i), K[i:i + chunk], pick(src_c2w, i),
                                                    tgt_c2w[i:i + chunk], depth.device))
                        for i in range(0, T, chunk)]).max()


def _warp_inputs(depth, K, src_c2w, tgt_c2w, device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """render_views' conventions -> forward_warp's: clipped [T, 1, H, W] depth, w2c, [T, 3, 3] K."""
    f32, T = torch.float32, depth.shape[0]
    d = depth.to(device=device, dtype=f32).clamp(*DEPTH_CLIP).unsqueeze(1)        # [T, 1, H, W]
    src_w2c = torch.linalg.inv(src_c2w.to(device=device, dtype=f32))              # [T, 4, 4]
    tgt_w2c = torch.linalg.inv(tgt_c2w.to(device=device, dtype=f32))              # [T, 4, 4]
    return d, src_w2c, tgt_w2c, K.to(device=device, dtype=f32).expand(T, 3, 3)


def _check_shapes(frames_u8, depth, K, src_c2w, tgt_c2w) -> tuple[int, int, int, int]:
    if frames_u8.dtype != torch.uint8 or frames_u8.ndim != 4 or frames_u8.shape[-1] != 3:
        raise ValueError(f"render_views: frames must be uint8 [T, H, W, 3], got {frames_u8.dtype} {tuple(frames_u8.shape)}")
    T, H, W, _ = frames_u8.shape
    expected = {"depth": (depth, (T, H, W)), "src_c2w": (src_c2w, (T, 4, 4)), "tgt_c2w": (tgt_c2w, (T, 4, 4))}
    for name, (tensor, shape) in expected.items():
        if tuple(tensor.shape) != shape:
            raise ValueError(f"render_views: {name} must be {list(shape)}, got {list(tensor.shape)}")
    if tuple(K.shape) not in ((3, 3), (T, 3, 3)):
        raise ValueError(f"render_views: K must be [3, 3] or [{T}, 3, 3], got {list(K.shape)}")
    return T, H, W
