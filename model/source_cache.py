"""SourceLatentCache: exact reuse of the DiT's source latents across pauses and replays.

The source stream (a CodecStream) carries encoder memory from block to block, so a block's latents
depend on every source frame encoded since the stream's last reset, not only on the block's own
frames. An entry is therefore keyed by (history, indices): `indices` are the block's source frame
indices and `history` is an id standing for the exact encoder state before the block. ROOT is the
state after a reset; a miss gives its entry a fresh id as the state after it; a hit restores the
entry's stored encoder state and moves to the entry's id, so a replay from a reset (loop wrap,
scrub back, recorded run) walks the same ids and hits. A pause repeats one frozen tuple: once
encoding it leaves the encoder state bitwise unchanged (a fixed point, checked by comparison), the
entry keeps the current id and every later block of the pause hits.

Indices must always mean the same frames for one cache: DiTRefiner owns one, and one DiTRefiner
serves one scene (cli/play.py and cli/render/job.py make one per scene); call clear() if the
frames behind the indices ever change. Latents returned on a hit are the stored tensors: callers must
not write into them (the sampler copies them into its own buffers).
"""
from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import Tensor

ROOT = 0              # history id of a freshly reset stream


@dataclass(frozen=True)
class _Entry:
    latent: Tensor            # [1, F, 16, h, w], what the stream's encode returned
    state: dict               # the stream's encoder state after the block (encoder_state())
    history_after: int


class SourceLatentCache:
    """LRU cache of source latents and their stored encoder states, at most `max_bytes` of them
    (0: off, every block is encoded)."""

    def __init__(self, max_bytes: int):
        if max_bytes < 0:
            raise ValueError(f"source latent cache: {max_bytes} bytes < 0; use 0 to switch it off")
        self.max_bytes, self.bytes = max_bytes, 0
        self._entries: OrderedDict[tuple[int, tuple[int, ...]], _Entry] = OrderedDict()
        self._ids = itertools.count(ROOT + 1)
        self.hits = self.misses = 0
        self.reset()

    def __len__(self) -> int:
        return len(self._entries)

    def reset(self) -> None:
        """The stream was reset: back to ROOT. Entries stay (a replay from a reset hits them)."""
        self._history, self._last = ROOT, None

    def position(self) -> tuple[int, tuple[int, ...] | None]:
        """Where the cache stands in the stream's history; rewind(position) goes back there (with
        the stream's encoder state restored by the caller, e.g. after a speculative encode)."""
        return self._history, self._last

    def rewind(self, position: tuple[int, tuple[int, ...] | None]) -> None:
        self._history, self._last = position

    def clear(self) -> None:
        """Forget every entry (the frames behind the indices changed)."""
        self._entries.clear()
        self.bytes = 0
        self.reset()

    def encode(self, stream, frames: Tensor, indices: tuple[int, ...] | None) -> Tensor:
        """stream.encode(frames) for frames [1, T, 3, H, W] = the source frames `indices` (len T),
        or the stored latents and encoder state of an identical earlier block. indices None: encode,
        uncached, and leave the history unknown (a fresh id nothing is stored under yet)."""
        if indices is None or self.max_bytes == 0:
            self._history, self._last = next(self._ids), None
            return stream.encode(frames)
        key = (self._history, tuple(int(i) for i in indices))
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            stream.set_encoder_state(entry.state)
            self.hits += 1
        else:
            before = stream.encoder_state()
            latent = stream.encode(frames)
            after = stream.encoder_state()
            fixed = key[1] == self._last and len(set(key[1])) == 1 and same_state(before, after)
            entry = _Entry(latent, after, self._history if fixed else next(self._ids))
            self._store(key, entry)
            self.misses += 1
        self._history, self._last = entry.history_after, key[1]
        return entry.latent

    def _store(self, key, entry: _Entry) -> None:
        """Keep `entry` unless it alone exceeds the byte budget; evict the least recently used to fit."""
        size = entry_bytes(entry)
        if size > self.max_bytes:
            return
        self._entries[key] = entry
        self.bytes += size
        while self.bytes > self.max_bytes:
            self.bytes -= entry_bytes(self._entries.popitem(last=False)[1])

    def stats(self) -> dict:
        return {"hits": self.hits, "misses": self.misses, "entries": len(self), "mib": round(self.bytes / 2**20, 1)}


def entry_bytes(entry: _Entry) -> int:
    """Device memory an entry holds: its latents and its encoder state tensors."""
    return entry.latent.nbytes + sum(t.nbytes for t in entry.state.values())


def same_state(a: dict, b: dict) -> bool:
    """Bitwise equality of two encoder states (waits for the device). Bits, not values: -0.0 and
    0.0 compare equal as numbers but need not compute the same."""
    return a.keys() == b.keys() and all(a[k] is b[k] or torch.equal(_bits(a[k]), _bits(b[k])) for k in a)


def _bits(t: Tensor) -> Tensor:
    return t.view({1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()]) \
        if t.is_floating_point() else t
