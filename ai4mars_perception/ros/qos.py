"""Input QoS: follow the camera driver's reliability (REP-2003 drivers publish reliable) or a fixed choice."""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

RELIABILITY = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}


def input_qos(reliability: str, depth: int) -> QoSProfile:
    """Keep-last ``depth``, volatile, best effort or reliable."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=RELIABILITY[reliability],
        durability=DurabilityPolicy.VOLATILE,
    )


def choose_reliability(setting: str, publishers: list, current: str | None) -> str:
    """The reliability to subscribe with.

    ``auto``: reliable when every discovered publisher of the topic is reliable (a reliable subscription then
    gets retransmissions, which 1 MiB frames over UDP need), best effort when any is best effort (a reliable
    subscription would not match it); with no publisher, keep ``current`` (reliable at first: see
    :class:`~ai4mars_perception.ros.input.FollowingSubscription`).
    """
    if setting != "auto":
        return setting
    kinds = {p.qos_profile.reliability for p in publishers}
    if not kinds:
        return current or "reliable"
    return "reliable" if kinds == {ReliabilityPolicy.RELIABLE} else "best_effort"


def output_qos() -> QoSProfile:
    """Outputs: reliable, keep last 2 (REP-2003 for publishers)."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2, reliability=ReliabilityPolicy.RELIABLE)
