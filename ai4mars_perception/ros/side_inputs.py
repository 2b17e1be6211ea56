"""Side inputs of a frame (exclusion mask, depth) matched to it by stamp, with a bounded wait."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from ai4mars_perception.core.stamps import stamp_ns
from ai4mars_perception.core.validity import SideInputError, SideInputs, depth_from_array, exclusion_from_array
from ai4mars_perception.ros.messages import image_array_any


class StampMatcher:
    """Keeps the last ``keep`` messages of one side topic by stamp; :meth:`take` returns the one with a frame's
    stamp, waiting at most ``timeout`` seconds for it (the worker thread waits, the executor keeps delivering).

    The wait is bounded because a side input may never come (a stalled depth pipeline): the frame is then
    processed without it, and the caller counts that in /diagnostics.
    """

    def __init__(self, keep: int = 8) -> None:
        self._msgs: OrderedDict[int, object] = OrderedDict()
        self._keep = keep
        self._cond = threading.Condition()

    def put(self, msg) -> None:
        with self._cond:
            self._msgs[stamp_ns(msg.header)] = msg
            while len(self._msgs) > self._keep:
                self._msgs.popitem(last=False)
            self._cond.notify_all()

    def take(self, stamp: int, timeout: float):
        """The message with ``stamp``, or None when it did not come within ``timeout`` seconds."""
        end = time.monotonic() + timeout
        with self._cond:
            while stamp not in self._msgs:
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return self._msgs.pop(stamp)


def side_inputs(shape: tuple[int, int], exclusion_msg=None, depth_msg=None) -> tuple[SideInputs, list[str]]:
    """The usable side inputs of a frame of ``shape`` and, for each one that is not usable, a sentence why (the
    frame is processed without it)."""
    side, errors = SideInputs(), []
    if exclusion_msg is not None:
        try:
            side.exclusion = exclusion_from_array(image_array_any(exclusion_msg), shape, exclusion_msg.encoding)
        except (SideInputError, ValueError) as e:
            errors.append(f"exclusion mask ignored: {e}")
    if depth_msg is not None:
        try:
            side.depth = depth_from_array(image_array_any(depth_msg), shape, depth_msg.encoding)
        except (SideInputError, ValueError) as e:
            errors.append(f"depth ignored: {e}")
    return side, errors
