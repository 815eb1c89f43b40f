"""One change to torch.compile's kernel heuristics for the DiT: keep whole rows in registers.

Inductor writes a reduction over a row (LayerNorm, RMSNorm) as a "persistent" kernel, which loads
the row once, only up to 1024 elements; wider rows loop over 512- or 1024-element chunks and read
the row again to normalise it. The DiT's rows are 1536 wide (its hidden size), so every LayerNorm
and the fused q/k RMSNorm + RoPE kernel looped. Persistent up to 2048 makes the block faster with the
same outputs (`dit_bench --profile`; docs/performance.md, "DiT alone") and compiles faster (fewer
launch configurations to tune).

Imported only where torch.compile runs (it imports Inductor).
"""
import functools
import logging

from torch._inductor import config
from torch._inductor.choices import InductorChoices
from torch._inductor.virtualized import V

log = logging.getLogger(__name__)


class PersistentRows(InductorChoices):
    """PyTorch's heuristics, except that reductions over at most `limit` elements (known when
    compiling) are persistent, whatever their memory-access hint."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def should_use_persistent_reduction(self, features, cooperative_reduction: bool) -> bool:
        if config.triton.persistent_reductions and not cooperative_reduction and \
                V.graph.sizevars.statically_known_leq(features.reduction_numel, self.limit):
            return True
        return InductorChoices.should_use_persistent_reduction(features, cooperative_reduction)

    def uuid(self) -> str:                           # part of torch.compile's cache key
        return f"roam-persistent-rows-{self.limit}"


def persistent_row_reductions(limit: int) -> bool:
    """From now on, torch.compile on the calling thread keeps reductions over at most `limit`
    elements in registers; 0 keeps PyTorch's heuristic. Call it on the thread that compiles, before
    it compiles: newer PyTorch keeps Inductor's configuration per thread, and Inductor keeps its
    heuristics object per thread from the first compilation on.
    -> whether it is in effect."""
    if not limit:
        return False
    if not hasattr(config, "inductor_choices_class"):
        log.info("this PyTorch has no inductor_choices_class; model.compile_row_limit has no effect")
        return False
    config.inductor_choices_class = functools.partial(PersistentRows, limit)   # in the cache key
    V.set_choices_handler(PersistentRows(limit))                                # what codegen asks
    return True
