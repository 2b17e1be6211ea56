"""``ai4mars-perception bench --profile``: where an ONNX model's forward time goes, from ONNX Runtime's own
profiler (kernel time per operator type and the slowest nodes), on the same session settings the node uses."""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np


def op_profile(model: str, x: np.ndarray, runs: int = 8, top: int = 8) -> dict:
    """Mean ms per run of each operator type and of the ``top`` slowest nodes (with their output shapes)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_profiling = True
    options.log_severity_level = 3
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = os.path.join(tmp, "ort")
        session = ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: x.astype(np.float32)}
        session.run(None, feed)
        for _ in range(runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    by_type, by_node, shapes = Counter(), Counter(), {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            by_type[e["args"]["op_name"]] += e["dur"]
            name = e["name"].removesuffix("_kernel_time")
            by_node[name] += e["dur"]
            shapes[name] = (e["args"]["op_name"], e["args"].get("output_type_shape"))
    total = sum(by_type.values())
    per_run = runs + 1  # the profile also holds the first run
    return {
        "runs": per_run, "total_ms": round(total / per_run / 1000, 1),
        "op_types": [{"op": k, "ms": round(v / per_run / 1000, 2), "share": round(v / total, 3), }
                     for k, v in by_type.most_common()],
        "slowest_nodes": [{"node": k, "op": shapes[k][0], "output": shapes[k][1], "ms": round(v / per_run / 1000, 2)}
                          for k, v in by_node.most_common(top)],
    }  # fmt: skip


def format_profile(p: dict) -> str:
    """The profile as text: operator types, then the slowest nodes."""
    lines = [f"ONNX Runtime kernel time, mean of {p['runs']} runs: {p['total_ms']:.1f} ms"]
    lines += [f"  {r['op']:<24} {r['ms']:8.2f} ms  {100 * r['share']:5.1f} %" for r in p["op_types"]]
    lines.append("slowest nodes:")
    lines += [f"  {r['ms']:8.2f} ms  {r['op']:<16} {r['node']}  -> {r['output']}" for r in p["slowest_nodes"]]
    return "\n".join(lines)
