"""`main.py doctor`: which checkpoints are missing, present or verified, and what they enable."""
from __future__ import annotations


def run(cfg, args) -> int:
    """Each checkpoint: missing / present / verified / invalid, and the feature it enables."""
    from model.checkpoint import doctor_report
    rows = doctor_report(cfg.model.checkpoint_dir)
    width = max(len(r.name) for r in rows)
    for r in rows:
        print(f"{r.name:<{width}}  {r.status:<8}  {r.path}\n{'':<{width}}  enables: {r.enables}\n{'':<{width}}  {r.detail}")
    print("\nDiT refiner:", "ready" if all(r.status == "verified" for r in rows if r.enables.startswith("DiT")) else
          "not available (the geometry refiner runs without weights)")
    print("FP8 attention (model.fp8):", fp8_attention_status())
    return 1 if any(r.status == "invalid" for r in rows) else 0


def fp8_attention_status() -> str:
    """Whether the FP8 mode's attention kernel can run on this machine's first GPU, or why not."""
    import torch
    from model.fp8_attention import fp8_attention_unavailable
    reason = fp8_attention_unavailable(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    return f"not available: {reason} (the FP8 mode keeps bf16 attention)" if reason else "available"
