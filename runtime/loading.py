"""The loading screen: slow start-up work (a scene to build, a world to fuse, a model to load) runs on
a thread while the main thread keeps the window alive and says what it waits for: the step, the
progress bars running now and the seconds so far; the keys keep working, so a person can quit."""
from __future__ import annotations

import threading
import time
from typing import Callable, TypeVar

T = TypeVar("T")


class LoadingCancelled(Exception):
    """Quit was asked (the window closed, a quit key) while loading."""


def progress_lines() -> list[str]:
    """The tqdm progress bars running now, e.g. "fusing the scene: 3/15 chunk"."""
    from tqdm import tqdm
    lines = []
    for bar in list(getattr(tqdm, "_instances", ())):
        try:
            d = bar.format_dict
        except AttributeError:            # a bar that another thread is still constructing
            continue
        done = f"{d['n']}/{d['total']}" if d.get("total") else f"{d['n']}"
        lines.append(f"{d.get('prefix') or 'working'}: {done} {d.get('unit', '')}".rstrip())
    return lines


def run_with_loading_screen(presenter, work: Callable[[Callable[[str], None]], T], *,
                            handle: Callable[[object], object] = lambda event: None,
                            quit_asked: Callable[[], bool] = lambda: False, poll_s: float = 0.1) -> T:
    """Run `work(report)` on a thread, showing `report(step)`'s last step and the progress on the
    window until it is done; returns its result or raises its exception. Meanwhile every window
    event goes to `handle` (the keyboard), and LoadingCancelled is raised once `quit_asked()`."""
    step, outcome = ["starting"], {}

    def target() -> None:
        try:
            outcome["value"] = work(lambda text: step.__setitem__(0, text))
        except BaseException as err:      # handed to the main thread, which raises it
            outcome["error"] = err
    thread = threading.Thread(target=target, name="loading", daemon=True)
    thread.start()
    t0 = time.perf_counter()
    while thread.is_alive():
        for event in presenter.events():
            handle(event)
        if quit_asked():
            raise LoadingCancelled
        presenter.show_status([f"{step[0]} ({time.perf_counter() - t0:.0f} s)", *progress_lines()])
        thread.join(poll_s)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
