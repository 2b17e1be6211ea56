"""The lifecycle node driven through the lifecycle_msgs services over DDS, and how it ends on signals."""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from ros_harness import Harness, NodeProcess, Topics

from ai4mars_perception.ros.messages import image_msg


def _call(h: Harness, srv_type, name: str, request, tries: int = 1):
    """Call a service; an idempotent one (``tries`` > 1) is asked again when no answer came within 10 s: a request
    sent right after discovery can be lost before the server's reply writer has matched this client (seen on a
    loaded machine). A transition is asked once and waited for longer: it must not run twice."""
    client = h.node.create_client(srv_type, name)
    try:
        assert client.wait_for_service(timeout_sec=20), f"no service {name}"
        for _ in range(tries):
            future = client.call_async(request)
            if h.spin_until(future.done, 10 if tries > 1 else 60):
                return future.result()
        raise AssertionError(f"{name} did not answer")
    finally:
        h.node.destroy_client(client)


def _state(h: Harness, node: str) -> int:
    return _call(h, GetState, f"/{node}/get_state", GetState.Request(), tries=4).current_state.id


def _transition(h: Harness, node: str, transition: int) -> bool:
    request = ChangeState.Request(transition=Transition(id=transition))
    return _call(h, ChangeState, f"/{node}/change_state", request).success


def test_configure_activate_deactivate_cleanup(tmp_path, harness, tiny_model):
    name = "lc_seg"
    p = NodeProcess(tmp_path, {"model_path": tiny_model, "autostart": False}, {"image": "/lc/image", "__node": name})
    try:
        assert _state(harness, name) == State.PRIMARY_STATE_UNCONFIGURED
        assert harness.node.count_publishers(f"/{name}/mask") == 0  # nothing before configure
        assert _transition(harness, name, Transition.TRANSITION_CONFIGURE)
        assert _state(harness, name) == State.PRIMARY_STATE_INACTIVE
        assert harness.node.count_subscribers("/lc/image") == 0  # inactive: not subscribed
        assert _transition(harness, name, Transition.TRANSITION_ACTIVATE)
        assert _state(harness, name) == State.PRIMARY_STATE_ACTIVE
        t = Topics(harness, "/lc/image", node=name)
        t.wait_connected()
        frame = image_msg(np.full((40, 40), 224, np.uint8), "mono8")
        t.send(frame, 100)
        assert t.answer_for(100) is not None
        assert _transition(harness, name, Transition.TRANSITION_DEACTIVATE)
        assert harness.spin_until(lambda: t.pub.get_subscription_count() == 0, 10)  # stopped subscribing
        t.send(frame, 101)
        assert t.answer_for(101, timeout=2.0) is None
        assert _transition(harness, name, Transition.TRANSITION_CLEANUP)
        assert _state(harness, name) == State.PRIMARY_STATE_UNCONFIGURED
        # and back up again: configure reloads the model
        assert _transition(harness, name, Transition.TRANSITION_CONFIGURE)
        assert _transition(harness, name, Transition.TRANSITION_ACTIVATE)
        assert harness.spin_until(lambda: t.pub.get_subscription_count() > 0, 10)
        time.sleep(0.5)
        t.send(frame, 102)
        assert t.answer_for(102) is not None
        harness.node.destroy_publisher(t.pub)
    finally:
        assert p.stop() == 0, p.output()


def test_failed_configure_keeps_the_node_unconfigured_and_alive(tmp_path, harness):
    bad = tmp_path / "junk.onnx"
    bad.write_bytes(b"not a model")
    name = "lc_bad"
    p = NodeProcess(tmp_path, {"model_path": bad, "autostart": False}, {"__node": name}, "bad")
    try:
        assert _state(harness, name) == State.PRIMARY_STATE_UNCONFIGURED
        assert not _transition(harness, name, Transition.TRANSITION_CONFIGURE)
        assert p.alive()
        assert _state(harness, name) == State.PRIMARY_STATE_UNCONFIGURED
        assert harness.spin_until(lambda: "is not a loadable ONNX model" in p.output(), 5), p.output()
    finally:
        assert p.stop() == 0, p.output()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_ends_the_node_cleanly_within_2s(tmp_path, harness, tiny_model, sig):
    name = f"sig_seg_{sig.name.lower()}"
    p = NodeProcess(tmp_path, {"model_path": tiny_model}, {"image": f"/{name}/image", "__node": name}, name)
    t = Topics(harness, f"/{name}/image", node=name)
    t.wait_connected()
    t.send(image_msg(np.full((40, 40), 96, np.uint8), "mono8"), 1)
    assert t.answer_for(1) is not None  # the worker thread is running
    harness.node.destroy_publisher(t.pub)
    start = time.monotonic()
    p.proc.send_signal(sig)
    code = p.proc.wait(timeout=5)
    took = time.monotonic() - start
    assert code == 0 and took < 2.0, (code, took, p.output())
    assert "Traceback" not in p.output()


# tf2_ros is not on PyPI: a stand-in with the real one's shape (a listener that subscribes /tf and /tf_static on
# the node it is given and unsubscribes in unregister()). What is tested is the node's own subscriptions, seen in
# the DDS graph from this process.
TF2_STANDIN = """
from std_msgs.msg import String

class LookupException(Exception): pass
class ConnectivityException(Exception): pass
class ExtrapolationException(Exception): pass

class Buffer:
    def lookup_transform(self, target, source, time):
        raise LookupException(f"{target} <- {source}")

class TransformListener:
    def __init__(self, buffer, node):
        self.node = node
        self.subs = [node.create_subscription(String, t, lambda m: None, 10) for t in ("/tf", "/tf_static")]

    def unregister(self):
        for sub in self.subs:
            self.node.destroy_subscription(sub)
"""


def test_the_tf2_listener_is_released_on_deactivate(tmp_path, harness, tiny_model):
    """Each activation creates a tf2 listener (where tf2_ros is installed); deactivate must release it, or the
    /tf subscriptions pile up with every re-activation."""
    standin = tmp_path / "site" / "tf2_ros"
    standin.mkdir(parents=True)
    (standin / "__init__.py").write_text(TF2_STANDIN)
    name = "tf_seg"
    p = NodeProcess(tmp_path, {"model_path": tiny_model, "use_tf": True}, {"image": "/tfc/image", "__node": name},
                    name, env={"PYTHONPATH": str(standin.parent)})  # fmt: skip

    def tf_readers() -> int:
        return harness.node.count_subscribers("/tf") + harness.node.count_subscribers("/tf_static")

    try:
        assert harness.spin_until(lambda: tf_readers() == 2, 30), p.output()
        for _ in range(2):
            assert _transition(harness, name, Transition.TRANSITION_DEACTIVATE)
            assert harness.spin_until(lambda: tf_readers() == 0, 10), "the tf2 listener outlived deactivate"
            assert _transition(harness, name, Transition.TRANSITION_ACTIVATE)
            assert harness.spin_until(lambda: tf_readers() == 2, 10)
        harness.spin_until(lambda: False, 1.0)
        assert tf_readers() == 2  # one listener, not one per activation
    finally:
        assert p.stop() == 0, p.output()
