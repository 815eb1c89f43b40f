"""The one line `build` and `play` print for a scene whose depth is the weight-free estimate."""
from __future__ import annotations

DA3_DOWNLOAD = "python main.py download --only depth"
DA3_SIZE = "about 6.8 GB"          # DA3NESTED-GIANT-LARGE, float32 safetensors (1.69 B parameters)


def depth_notice(scene) -> str | None:
    """What a person should know about the scene's depth, or None when it was measured or given."""
    if scene.meta.get("depth_provider") != "estimate":
        return None
    trust = float(scene.meta.get("depth_trust", 0.0))
    how = (f"structure from motion over a flat guess (trust {trust:.2f})" if trust > 0 else
           "a flat guess (a ground plane and a backdrop)")
    return (f"roam: no depth model, so this scene's depth is {how}: parallax will be wrong (near things slide "
            f"like a flat picture), and walking is slowed and kept near the source camera. For real depth get "
            f"Depth-Anything-3 ({DA3_SIZE}): {DA3_DOWNLOAD}, then build again")
