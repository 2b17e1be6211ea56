"""Latest-frame-only processing on a thread of its own, so that a slow model never queues frames behind it."""

from __future__ import annotations

import threading
from collections.abc import Callable


class LatestFrameWorker:
    """Holds at most one pending frame; :meth:`offer` replaces it (the older one is dropped and counted by the
    caller), a worker thread takes it and calls ``process(msg, arrived)``.

    Waits: the thread sleeps on a condition and is woken by :meth:`offer` or :meth:`stop`; it also wakes every
    ``poll`` seconds (0.5) only to notice a stop that raced with its wait. :meth:`stop` joins the thread for at most
    ``join_timeout`` seconds (5): a frame being processed when the node deactivates finishes (a CPU forward takes
    well under that), and a hung model cannot hold the lifecycle transition forever.
    """

    def __init__(self, process: Callable[[object, float], None], poll: float = 0.5, join_timeout: float = 5.0):
        self._process, self._poll, self._join_timeout = process, poll, join_timeout
        self._cond = threading.Condition()
        self._slot: tuple[object, float] | None = None
        self._running = False
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        with self._cond:
            self._running, self._slot = True, None
        self._thread = threading.Thread(target=self._loop, name="segmentation", daemon=True)
        self._thread.start()

    def offer(self, msg, arrived: float) -> bool:
        """Make ``msg`` the next frame; returns whether a pending (older, unprocessed) frame was dropped."""
        with self._cond:
            dropped = self._slot is not None
            self._slot = (msg, arrived)
            self._cond.notify()
        return dropped

    def stop(self) -> None:
        """Drop the pending frame, let the current one finish, end the thread."""
        with self._cond:
            self._running, self._slot = False, None
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=self._join_timeout)
            self._thread = None

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._slot is None and self._running:
                    self._cond.wait(self._poll)
                if not self._running:
                    return
                msg, arrived = self._slot
                self._slot = None
            self._process(msg, arrived)
