"""Data parallelism of `main.py render` over processes with torch.distributed.

Under torchrun (or any launcher that sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT)
each process is one rank. `--step3_nproc N` without such a launcher starts the N ranks itself
(torch.multiprocessing, spawn) with the same environment torchrun would give them. Rank r takes
the sorted videos i with i % world == r: every video exactly once (the reference's
DistributedSampler repeats videos to pad the shards; roam does not).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Rank:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def rank_from_env() -> Rank:
    """RANK / WORLD_SIZE / LOCAL_RANK as torchrun sets them; a single process without them."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as err:
        raise ValueError(f"RANK/WORLD_SIZE/LOCAL_RANK must be integers ({err}); launch with torchrun") from None
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK={rank} outside WORLD_SIZE={world}; launch with torchrun")
    return Rank(rank, world, local)


def shard(items: list, rank: Rank) -> list[tuple[int, object]]:
    """(global index, item) pairs of this rank: i % world == rank, in sorted order."""
    return [(i, item) for i, item in enumerate(items) if i % rank.world == rank.rank]


def init(rank: Rank, device: torch.device, master_port: int) -> None:
    """Join the process group (gloo on CPU, nccl on CUDA) when there is more than one rank."""
    if not rank.distributed or dist.is_initialized():
        return
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(master_port))
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, rank=rank.rank, world_size=rank.world)


def gather(obj, rank: Rank) -> list:
    """Every rank's `obj`, in rank order (all ranks get the list)."""
    if not rank.distributed:
        return [obj]
    out = [None] * rank.world
    dist.all_gather_object(out, obj)
    return out


def finish(rank: Rank) -> None:
    if rank.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def spawn(entry, nproc: int, master_port: int, args: tuple) -> list[int]:
    """Run entry(rank, *args) in nproc fresh processes with torchrun's environment.
    -> exit codes per rank (entry's return value)."""
    import torch.multiprocessing as mp
    ctx = mp.get_context("spawn")
    codes = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(entry, r, nproc, master_port, codes, args)) for r in range(nproc)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    results = dict(codes.get() for _ in range(codes.qsize())) if not codes.empty() else {}
    return [results.get(r, p.exitcode or 1) for r, p in enumerate(procs)]


def _child(entry, rank: int, world: int, port: int, codes, args: tuple) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    code = entry(*args)
    codes.put((rank, int(code)))
