"""``ai4mars-perception bag process``: run the frame pipeline over every image message of a bag, no ROS graph,
and write an output bag with the inputs plus the node's outputs (same topics, types, stamps and messages)."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ai4mars_perception.core.pipeline import Pipeline
from ai4mars_perception.core.stamps import stamp_ns
from ai4mars_perception.ros.side_inputs import side_inputs
from ai4mars_perception.tools.bag_io import (
    CAMERA_INFO,
    IMAGE,
    POINTCLOUD2,
    BagError,
    image_connections,
    iter_messages,
    open_reader,
    serialize,
    staged_output,
    storage_plugin,
    typestore,
)
from ai4mars_perception.tools.side_files import side_topics
from ai4mars_perception.tools.writers import TraversabilityCsv, write_pngs

OUTPUT_TYPES = {"mask": IMAGE, "overlay": IMAGE, "traversability": POINTCLOUD2, "confidence": IMAGE,
                "costmap": "nav_msgs/msg/OccupancyGrid", "ground_cloud": POINTCLOUD2}  # fmt: skip


@dataclass
class ProcessResult:
    """Counts of a ``bag process`` run."""

    frames: int = 0
    processed: int = 0
    failed: int = 0
    seconds: float = 0.0


def process_bag(
    path: Path,
    out: Path,
    pipeline: Pipeline,
    topics: list[str] | None = None,
    node_name: str = "terrain_segmentation",
    overlay: bool = True,
    storage: str = "mcap",
    csv_path: Path | None = None,
    png_dir: Path | None = None,
    overwrite: bool = False,
) -> ProcessResult:
    """Segment every image message of ``path`` into a new bag ``out``: inputs copied, plus the node's outputs
    ``<node>/mask``, ``overlay``, ``traversability``, ``confidence`` and ``costmap`` with the input stamps (the
    costmap uses the bag's ``<image namespace>/camera_info`` when it has one, else the camera_* parameters).

    Frames that cannot be decoded are counted, reported and recorded in the CSV; the run goes on.
    The bag and the CSV appear only when the run completes (a killed run leaves neither).
    """
    from rosbags.rosbag2 import Writer

    if out.exists() and not overwrite:
        raise BagError(f"{out} already exists; pass --overwrite to replace it")
    reader = open_reader(path)
    try:
        conns = image_connections(reader, topics)
        if sum(c.msgcount for c in conns) == 0:
            raise BagError(f"{path} has no image messages")
        result = ProcessResult()
        t_start = time.perf_counter()
        with staged_output(out, overwrite) as tmp:
            csv_tmp = tmp.parent / "summary.csv"
            with (
                Writer(tmp, version=9, storage_plugin=storage_plugin(storage)) as writer,
                open(csv_tmp, "w", newline="") as f,
            ):
                frames = _FrameWriter(writer, reader, pipeline, node_name, overlay, TraversabilityCsv(f), png_dir)
                frames.index_side_inputs(reader, conns)
                image_ids = {c.id for c in conns}
                total = sum(c.msgcount for c in reader.connections)
                for conn, stamp, data in tqdm(
                    iter_messages(reader, reader.connections), total=total, desc="bag process", unit="msg"
                ):
                    frames.copy(conn, stamp, data)
                    if conn.id in image_ids:
                        frames.process(conn, stamp, data, result)
            if csv_path is not None:
                shutil.move(csv_tmp, csv_path)
    finally:
        reader.close()
    result.seconds = time.perf_counter() - t_start
    return result


class _FrameWriter:
    """Writes the copied inputs and the node's outputs for one ``bag process`` run."""

    def __init__(self, writer, reader, pipeline: Pipeline, node_name: str, overlay: bool, rows, png_dir) -> None:
        self.ts = typestore()
        self.writer, self.pipeline, self.rows, self.png_dir = writer, pipeline, rows, png_dir
        self.copies = {c.id: writer.add_connection(c.topic, c.msgtype, typestore=self.ts) for c in reader.connections}
        prefix = f"/{node_name.strip('/')}"
        self.outputs = tuple(n for n in OUTPUT_TYPES if overlay or n != "overlay")
        self.conns = {
            n: writer.add_connection(f"{prefix}/{n}", OUTPUT_TYPES[n], typestore=self.ts) for n in self.outputs
        }
        self.cameras: dict[str, object] = {}  # latest intrinsics per camera namespace
        self.side: dict[tuple[str, int], tuple[str, bytes]] = {}  # (topic, stamp) -> (msgtype, CDR) of side inputs

    def index_side_inputs(self, reader, image_conns) -> None:
        """Read the exclusion masks and depth images next to the image topics (tools/side_files.py), by stamp."""
        wanted = {t for c in image_conns for t in side_topics(c.topic).values()}
        conns = [c for c in reader.connections if c.topic in wanted]
        for conn, _, data in iter_messages(reader, conns):
            msg = self.ts.deserialize_cdr(data, conn.msgtype)
            self.side[(conn.topic, stamp_ns(msg.header))] = (conn.msgtype, bytes(data))

    def _side_for(self, topic: str, stamp: int, shape: tuple[int, int], index: int):
        found = {}
        for name, side_topic in side_topics(topic).items():
            entry = self.side.pop((side_topic, stamp), None)
            found[name] = None if entry is None else self.ts.deserialize_cdr(entry[1], entry[0])
        if not any(found.values()):
            return None
        side, problems = side_inputs(shape, found["exclusion_mask"], found["depth"])
        for problem in problems:
            tqdm.write(f"frame {index} on {topic}: {problem}")
        return side

    def copy(self, conn, stamp: int, data) -> None:
        self.writer.write(self.copies[conn.id], stamp, data)
        if conn.msgtype == CAMERA_INFO:
            from ai4mars_perception.ros.messages import camera_model

            self.cameras[conn.topic.rsplit("/", 1)[0]] = camera_model(self.ts.deserialize_cdr(data, CAMERA_INFO))

    def process(self, conn, stamp: int, data, result: ProcessResult) -> None:
        from ai4mars_perception.ros.messages import header_msg, result_messages

        index = result.frames
        result.frames += 1
        try:
            msg = self.ts.deserialize_cdr(data, conn.msgtype)
            base = conn.topic.removesuffix("/compressed").rsplit("/", 1)[0]
            gray = self.pipeline.decode(msg)
            side = self._side_for(conn.topic, stamp_ns(msg.header), gray.shape[:2], index)
            frame = self.pipeline.process(gray, side, self.cameras.get(base))
        except Exception as e:  # decode errors, malformed CDR, bad model output alike: count, record, go on
            result.failed += 1
            tqdm.write(f"frame {index} on {conn.topic}: skipped: {e}")
            self.rows.failure(index, conn.topic, stamp, str(e))
            return
        header = header_msg(stamp_ns(msg.header), msg.header.frame_id)
        projector = self.pipeline.projector(frame.mask.shape, self.cameras.get(base))
        for name, out in result_messages(frame, header, self.outputs, projector):
            self.writer.write(self.conns[name], stamp, serialize(out))
        self.rows.frame(index, conn.topic, stamp, frame.table, frame.timings.inference * 1000)
        if self.png_dir is not None:
            write_pngs(
                self.png_dir, f"{index:06d}", frame, outputs=("mask", "overlay")[: 1 + ("overlay" in self.outputs)]
            )
        result.processed += 1
