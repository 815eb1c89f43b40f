"""Stop signals: Ctrl-C (SIGINT), `kill` / a container stop (SIGTERM) and a closed terminal (SIGHUP)
end every command the same way.

The first one asks the command to stop: a running session ends at its next loop step and finishes
its files (`graceful`); anywhere else the command unwinds as on Ctrl-C, removing what it had half
made. A second one stops at once. The exit code is 128 + the signal's number (130, 143, 129), as a
shell reports it.

Python's handlers are installed before anything starts SDL, so SDL (pygame) keeps its hands off
SIGINT and SIGTERM (it only takes a signal whose handler is the default one); otherwise it turns
them into a quit event that a headless run never reads, and SIGHUP would kill the process outright.
"""
from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Callable, Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """A stop signal, raised in the main thread (a KeyboardInterrupt, so code that cleans up on
    Ctrl-C cleans up on it too)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopSignals:
    """The process's handler of the stop signals, installed for the duration of a `with` block by
    the composition root."""

    def __init__(self):
        self.received: int | None = None        # the first stop signal, once one came
        self._on_first: Callable[[], None] | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopSignals":
        """Install the handlers (the previous ones come back on exit, for callers such as tests)."""
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    @property
    def exit_code(self) -> int | None:
        """128 + the first signal's number, or None when none came."""
        return None if self.received is None else 128 + self.received

    def _handle(self, signum: int, frame) -> None:
        first = self.received is None
        if first:
            self.received = signum
        if first and self._on_first is not None:
            self._on_first()
            return
        raise Interrupted(signum)

    @contextmanager
    def graceful(self, stop: Callable[[], None]) -> Iterator[None]:
        """Inside the block the first stop signal calls `stop()` (which must only set a flag) instead
        of raising; a second raises Interrupted."""
        if self.received is not None:           # it came while the command was being set up
            stop()
        self._on_first = stop
        try:
            yield
        finally:
            self._on_first = None
