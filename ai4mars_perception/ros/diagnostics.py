"""Frame counters and rolling timings of the node, reported on ``/diagnostics`` (diagnostic_msgs)."""

from __future__ import annotations

import threading
from collections import deque

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue


def _rate(times: deque[float], now: float, window: float = 5.0) -> float:
    recent = [t for t in times if now - t <= window]
    return 0.0 if len(recent) < 2 else (len(recent) - 1) / max(recent[-1] - recent[0], 1e-6)


class FrameStats:
    """Counters touched from the subscription callback, the worker thread and the timer (under a lock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received = self.processed = self.dropped = self.errors = self.overlays = 0
        self.qos_incompatible = self.stale_episodes = self.lost = 0
        self.last_error = ""
        self.last_input = 0.0
        self.stale = True
        self.arrivals: deque[float] = deque(maxlen=200)
        self.completions: deque[float] = deque(maxlen=200)
        self.inference: deque[float] = deque(maxlen=50)
        self.latency: deque[float] = deque(maxlen=50)
        # per side input (exclusion_mask, depth): frames it came with, frames it did not come for, unusable ones
        self.side: dict[str, dict[str, int]] = {}

    def arrived(self, now: float, dropped: bool) -> None:
        with self.lock:
            self.received += 1
            self.dropped += int(dropped)
            self.last_input = now
            self.arrivals.append(now)

    def done(self, now: float, arrived: float, inference_s: float, overlay: bool) -> None:
        with self.lock:
            self.processed += 1
            self.overlays += int(overlay)
            self.completions.append(now)
            self.inference.append(inference_s)
            self.latency.append(now - arrived)

    def side_input(self, name: str, outcome: str) -> None:
        """Count a side input's ``outcome`` for one frame: ``matched``, ``missing`` or ``unusable``."""
        with self.lock:
            counts = self.side.setdefault(name, {"matched": 0, "missing": 0, "unusable": 0})
            counts[outcome] += 1

    def error(self, text: str) -> None:
        with self.lock:
            self.errors += 1
            self.last_error = text

    def status(self, name: str, now: float, stale_timeout: float, extra: dict[str, str]) -> DiagnosticStatus:
        """The node's DiagnosticStatus: WARN while no frame arrived for ``stale_timeout`` seconds."""
        with self.lock:
            stale = self.last_input == 0.0 or now - self.last_input > stale_timeout
            if stale and not self.stale and self.last_input:
                self.stale_episodes += 1
            self.stale = stale

            def mean(d):
                return 1000.0 * sum(d) / len(d) if d else 0.0

            values = {
                "input_rate_hz": f"{_rate(self.arrivals, now):.2f}",
                "processed_rate_hz": f"{_rate(self.completions, now):.2f}",
                "frames_received": str(self.received),
                "frames_processed": str(self.processed),
                "frames_dropped": str(self.dropped),
                "overlays_published": str(self.overlays),
                "errors": str(self.errors),
                "last_error": self.last_error,
                "qos_incompatible": str(self.qos_incompatible),
                "messages_lost": str(self.lost),
                "stale_episodes": str(self.stale_episodes),
                "inference_ms": f"{mean(self.inference):.1f}",
                "latency_ms": f"{mean(self.latency):.1f}",
                "seconds_since_input": "never" if self.last_input == 0.0 else f"{now - self.last_input:.1f}",
                **{f"{name}_{k}": str(v) for name, counts in self.side.items() for k, v in counts.items()},
                **extra,
            }
        return DiagnosticStatus(
            level=DiagnosticStatus.WARN if stale else DiagnosticStatus.OK,
            name=f"{name}: terrain segmentation",
            message="no input frames (stale)" if stale else "running",
            hardware_id=extra.get("provider", ""),
            values=[KeyValue(key=k, value=v) for k, v in values.items()],
        )
