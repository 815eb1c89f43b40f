"""Depth providers: depth float32 [N, H, W] (camera z), K [N, 3, 3] and source c2w [N, 4, 4] (OpenCV)
for a decoded video. `plan_depth` picks the provider, `run_depth` runs it (scenes/depth/choose.py)."""
from scenes.depth.base import DepthError, DepthRequest, DepthResult
from scenes.depth.choose import PROVIDERS, DepthPlan, plan_depth, run_depth

__all__ = ["DepthError", "DepthRequest", "DepthResult", "PROVIDERS", "DepthPlan", "plan_depth", "run_depth"]
