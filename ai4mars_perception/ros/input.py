"""The image subscription: follows the publishers' reliability without losing a frame to the switch."""

from __future__ import annotations

from collections.abc import Callable

from rclpy.event_handler import SubscriptionEventCallbacks

from ai4mars_perception.ros.qos import choose_reliability, input_qos


class FollowingSubscription:
    """Subscribes ``topic`` with the reliability ``setting`` (``auto``, ``reliable``, ``best_effort``).

    ``auto`` starts **reliable**: a reliable publisher (REP-2003 camera drivers are) matches at once, and the first
    frame it publishes, even at the moment of the match, arrives with retransmissions (a 1 MiB frame needs them
    over a transport without our shared-memory profile). When a best-effort publisher appears, the reliable
    reader cannot match it: its incompatible-QoS event, and a graph check every ``period`` seconds (0.25), switch
    to best effort at once; when every publisher is reliable again, back to reliable.

    A switch creates the new subscription first and keeps the old one delivering until the new one has matched
    as many publishers as the old one had, or ``retire_after`` seconds (3) passed (a publisher that never matches
    the new QoS must not keep the old reader forever). A frame that arrives through both is passed on once:
    ``on_frame`` sees each (stamp, frame_id) once while two subscriptions are open.
    """

    def __init__(self, node, msg_type, topic: str, setting: str, depth: int, on_frame: Callable[[object], None],
                 on_incompatible: Callable[[], None], on_lost: Callable[[int], None], period: float = 0.25,
                 retire_after: float = 3.0) -> None:  # fmt: skip
        self.node, self.msg_type, self.topic, self.setting, self.depth = node, msg_type, topic, setting, depth
        self._on_frame, self._on_incompatible, self._on_lost = on_frame, on_incompatible, on_lost
        self._retire_after = retire_after
        self._sub = None
        self._retiring: list[tuple[object, int, float]] = []  # (subscription, its publisher count, switched at)
        self._last_key: tuple | None = None
        self.reliability: str | None = None
        self._subscribe(choose_reliability(setting, [], "reliable"))
        self._timer = node.create_timer(period, self.follow, clock=node.steady_clock)

    @property
    def topic_name(self) -> str:
        return self._sub.topic_name if self._sub is not None else self.topic

    def _subscribe(self, reliability: str) -> None:
        if self._sub is not None:
            self._retiring.append((self._sub, self._sub.get_publisher_count(), self._now()))
        events = SubscriptionEventCallbacks(incompatible_qos=self._incompatible, message_lost=self._lost)
        qos = input_qos(reliability, self.depth)
        self._sub = self.node.create_subscription(self.msg_type, self.topic, self._frame, qos, event_callbacks=events)
        self.reliability = reliability
        self.node.get_logger().info(f"subscribed {self._sub.topic_name} with {reliability} QoS")

    def _now(self) -> float:
        return self.node.steady_clock.now().nanoseconds / 1e9

    def follow(self) -> None:
        """Retire replaced subscriptions that are no longer needed; switch reliability when the publishers ask."""
        if self._sub is None:
            return
        matched, now = self._sub.get_publisher_count(), self._now()
        for entry in list(self._retiring):
            sub, had, since = entry
            if matched >= had or now - since > self._retire_after:
                self.node.destroy_subscription(sub)
                self._retiring.remove(entry)
        publishers = self.node.get_publishers_info_by_topic(self._sub.topic_name)
        wanted = choose_reliability(self.setting, publishers, self.reliability)
        if wanted != self.reliability:
            self._subscribe(wanted)

    def _incompatible(self, event) -> None:
        if self.setting == "auto":
            self.follow()  # a best-effort publisher our reliable reader cannot match: switch now
        else:
            self._on_incompatible()

    def _lost(self, event) -> None:
        self._on_lost(int(event.total_count_change))

    def _frame(self, msg) -> None:
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id)
        if self._retiring and key == self._last_key:
            return  # the same frame through the old and the new subscription during a switch
        self._last_key = key
        self._on_frame(msg)

    def destroy(self) -> None:
        """Stop following and drop every subscription."""
        if self._timer is not None:
            self.node.destroy_timer(self._timer)
            self._timer = None
        for sub in [*(s for s, _, _ in self._retiring), *([self._sub] if self._sub is not None else [])]:
            self.node.destroy_subscription(sub)
        self._retiring, self._sub, self.reliability = [], None, None
