"""``ai4mars-perception bag make | play | process``: rosbag2 (mcap or sqlite3) tools built on ``rosbags``.

- make: image files → bag of sensor_msgs/Image (mono8) or CompressedImage (the file bytes as they are).
- play: publish a bag's image topics over DDS with the recorded timing, sending the stored CDR bytes.
- process: run the segmentation core over every image message, no ROS graph, and write an output bag
  with the inputs plus the node's outputs (same topics, types and stamps as the live node).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ai4mars_perception.image_codec import ImageDecodeError, decode_compressed, decode_raw, read_image_file, to_gray8
from ai4mars_perception.traversability import (
    TABLE_DTYPE,
    TABLE_FIELDS,
    TraversabilityConfig,
    summarize,
    summary_to_array,
)

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"
IMAGE_TYPES = (IMAGE, COMPRESSED)


class BagError(Exception):
    """A bag cannot be read or written as asked; the message says why."""


def typestore():
    """The ROS 2 Kilted type store of ``rosbags``."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


def _storage(name: str):
    from rosbags.rosbag2 import StoragePlugin

    try:
        return {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[name]
    except KeyError:
        raise BagError(f"storage must be mcap or sqlite3, got {name!r}") from None


def _header(ts, stamp_ns: int, frame_id: str):
    Header, Time = ts.types["std_msgs/msg/Header"], ts.types["builtin_interfaces/msg/Time"]
    return Header(stamp=Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000), frame_id=frame_id)


def image_message(ts, array: np.ndarray, encoding: str, header):
    """A rosbags sensor_msgs/Image from a uint8 array."""
    array = np.ascontiguousarray(array)
    return ts.types[IMAGE](
        header=header,
        height=array.shape[0],
        width=array.shape[1],
        encoding=encoding,
        is_bigendian=0,
        step=array.strides[0],
        data=array.reshape(-1),
    )


def table_message(ts, rows: np.ndarray, header):
    """A rosbags sensor_msgs/PointCloud2 traversability table (layout: traversability.TABLE_DTYPE)."""
    PointField = ts.types["sensor_msgs/msg/PointField"]
    fields = [
        PointField(name=n, offset=TABLE_DTYPE.fields[n][1], datatype=6 if TABLE_DTYPE[n].kind == "u" else 7, count=1)
        for n in TABLE_FIELDS
    ]
    return ts.types[POINTCLOUD2](
        header=header,
        height=1,
        width=len(rows),
        fields=fields,
        is_bigendian=False,
        point_step=TABLE_DTYPE.itemsize,
        row_step=TABLE_DTYPE.itemsize * len(rows),
        data=np.frombuffer(rows.tobytes(), np.uint8),
        is_dense=True,
    )


def camera_info_message(ts, header, width: int, height: int, fov_deg: float):
    """A pinhole CameraInfo with the given horizontal field of view and no distortion."""
    f = (width / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    k = np.array([f, 0, cx, 0, f, cy, 0, 0, 1], np.float64)
    p = np.array([f, 0, cx, 0, 0, f, cy, 0, 0, 0, 1, 0], np.float64)
    roi = ts.types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return ts.types[CAMERA_INFO](
        header=header,
        height=height,
        width=width,
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=k,
        r=np.eye(3).reshape(-1),
        p=p,
        binning_x=0,
        binning_y=0,
        roi=roi,
    )


@contextlib.contextmanager
def staged_output(out: Path, overwrite: bool = False) -> Iterator[Path]:
    """Write a bag under a hidden staging folder and move it to ``out`` only when complete.

    An interrupted run leaves no ``out`` (and the next run clears the stale staging folder).
    """
    staging = out.parent / f".{out.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging / out.name
        if out.exists() and overwrite:
            shutil.rmtree(out)
        (staging / out.name).rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# -- make ---------------------------------------------------------------------------------------
def make_bag(
    inputs: list[str],
    out: Path,
    topic: str = "/navcam/left/image_raw",
    frame_id: str = "navcam_left",
    compressed: bool = False,
    rate: float = 1.0,
    start: float | None = None,
    storage: str = "mcap",
    camera_info: bool = False,
    fov_deg: float = 45.0,
) -> int:
    """Write image files into a new bag; returns the number of frames written (unreadable files skipped)."""
    from rosbags.rosbag2 import Writer

    from ai4mars_perception.segment_files import collect_images

    if out.exists():
        raise BagError(f"{out} already exists; choose another output name")
    missing = [p for p in inputs if not Path(p).exists()]
    if missing:
        raise BagError(f"input {missing[0]} does not exist")
    files = collect_images(inputs)
    if not files:
        raise BagError("no image files found in the given inputs")
    if rate <= 0:
        raise BagError("rate must be positive")
    ts = typestore()
    t0 = int((time.time() if start is None else start) * 1e9)
    dt = int(1e9 / rate)
    written = 0
    with staged_output(out) as tmp:
        with Writer(tmp, version=9, storage_plugin=_storage(storage)) as writer:
            conn = writer.add_connection(
                topic if not compressed else f"{topic}/compressed", COMPRESSED if compressed else IMAGE, typestore=ts
            )
            info_topic = topic.rsplit("/", 1)[0] + "/camera_info"
            info_conn = writer.add_connection(info_topic, CAMERA_INFO, typestore=ts) if camera_info else None
            for path in tqdm(files, desc="bag make", unit="frame"):
                stamp = t0 + written * dt
                header = _header(ts, stamp, frame_id)
                try:
                    if compressed:
                        data = path.read_bytes()
                        fmt = "png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "jpeg"
                        gray = decode_compressed(data)
                        msg = ts.types[COMPRESSED](header=header, format=fmt, data=np.frombuffer(data, np.uint8))
                        serial = ts.serialize_cdr(msg, COMPRESSED)
                    else:
                        gray = read_image_file(path)
                        serial = ts.serialize_cdr(image_message(ts, gray, "mono8", header), IMAGE)
                except (ImageDecodeError, OSError) as e:
                    tqdm.write(f"skipped {path}: {e}")
                    continue
                writer.write(conn, stamp, serial)
                if info_conn is not None:
                    info = camera_info_message(ts, header, gray.shape[1], gray.shape[0], fov_deg)
                    writer.write(info_conn, stamp, ts.serialize_cdr(info, CAMERA_INFO))
                written += 1
        if written == 0:
            raise BagError("none of the input files could be read as an image")
    return written


# -- reading ------------------------------------------------------------------------------------
def open_reader(path: Path):
    """Open a bag for reading, turning every failure into one :class:`BagError` sentence."""
    from rosbags.rosbag2 import Reader

    if not path.exists():
        raise BagError(f"{path} does not exist")
    reader = Reader(path)
    try:
        reader.open()
    except Exception as e:  # rosbags raises ReaderError and storage-specific errors
        raise BagError(f"{path} is not a readable rosbag2 bag: {e}") from None
    return reader


def image_connections(reader, topics: list[str] | None = None) -> list:
    """The bag's image connections (all of them, or the named topics, which must be image topics)."""
    by_topic = {c.topic: c for c in reader.connections}
    if topics:
        missing = [t for t in topics if t not in by_topic]
        if missing:
            raise BagError(
                f"topic(s) {', '.join(missing)} not in the bag; it has {', '.join(sorted(by_topic)) or 'none'}"
            )
        wrong = [f"{t} ({by_topic[t].msgtype})" for t in topics if by_topic[t].msgtype not in IMAGE_TYPES]
        if wrong:
            raise BagError(f"topic(s) {', '.join(wrong)} are not sensor_msgs Image or CompressedImage")
        return [by_topic[t] for t in topics]
    conns = [c for c in reader.connections if c.msgtype in IMAGE_TYPES]
    if not conns:
        raise BagError("the bag has no sensor_msgs/Image or CompressedImage topic")
    return conns


def iter_messages(reader, conns) -> Iterator[tuple]:
    """(connection, timestamp_ns, raw bytes), failing with :class:`BagError` on a corrupt bag."""
    try:
        yield from reader.messages(connections=conns)
    except BagError:
        raise
    except Exception as e:
        raise BagError(f"the bag is corrupt or truncated: {type(e).__name__}: {e}") from None


# -- play ---------------------------------------------------------------------------------------
class BagPlayer:
    """Publishes a bag's image topics (and camera_info) from an existing rclpy node, with the recorded
    timing, sending the stored CDR bytes as they are (no deserialisation per frame)."""

    def __init__(self, node, path: Path, topics: list[str] | None = None, clock: bool = False, reliable: bool = True):
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image

        self.reader = open_reader(path)
        self.conns = image_connections(self.reader, topics)
        if topics is None:
            self.conns += [c for c in self.reader.connections if c.msgtype == CAMERA_INFO]
        classes = {IMAGE: Image, COMPRESSED: CompressedImage, CAMERA_INFO: CameraInfo}
        reliability = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=reliability)
        self.pubs = {c.id: node.create_publisher(classes[c.msgtype], c.topic, qos) for c in self.conns}
        self._clock_type = Clock
        self.clock_pub = node.create_publisher(Clock, "/clock", 10) if clock else None

    def wait_for_subscribers(self, timeout: float) -> bool:
        """Wait until every image topic has a subscriber (or the timeout passes)."""
        deadline = time.monotonic() + timeout
        images = [self.pubs[c.id] for c in self.conns if c.msgtype in IMAGE_TYPES]
        while time.monotonic() < deadline:
            if all(p.get_subscription_count() for p in images):
                return True
            time.sleep(0.05)
        return False

    def play(self, rate: float = 1.0, on_publish: Callable[[object, int], None] | None = None) -> int:
        """One pass over the bag; ``on_publish(connection, stamp_ns)`` after each message. Returns the count."""
        if rate <= 0:
            raise BagError("rate must be positive")
        sent, wall0, bag0 = 0, time.monotonic(), None
        total = sum(c.msgcount for c in self.conns)
        for conn, stamp, data in tqdm(iter_messages(self.reader, self.conns), desc="bag play", unit="msg", total=total):
            bag0 = stamp if bag0 is None else bag0
            due = wall0 + (stamp - bag0) / 1e9 / rate
            while (wait := due - time.monotonic()) > 0:
                if self.clock_pub is not None:
                    self._clock(bag0 + int((time.monotonic() - wall0) * rate * 1e9))
                time.sleep(min(wait, 0.01))
            if self.clock_pub is not None:
                self._clock(stamp)
            self.pubs[conn.id].publish(bytes(data))
            sent += 1
            if on_publish is not None:
                on_publish(conn, stamp)
        return sent

    def _clock(self, stamp_ns: int) -> None:
        msg = self._clock_type()
        msg.clock.sec, msg.clock.nanosec = stamp_ns // 1_000_000_000, stamp_ns % 1_000_000_000
        self.clock_pub.publish(msg)

    def close(self) -> None:
        self.reader.close()


def play_bag(
    path: Path,
    rate: float = 1.0,
    loop: bool = False,
    topics: list[str] | None = None,
    clock: bool = False,
    reliable: bool = True,
    wait_for_subscribers: float = 5.0,
) -> int:
    """``bag play``: publish the bag's image topics with the recorded timing; returns the messages sent."""
    from ai4mars_perception.runtime_env import prepare_ros_environment

    prepare_ros_environment()
    from ai4mars_perception.processes import RosSession

    if rate <= 0:
        raise BagError("rate must be positive")
    open_reader(path).close()  # fail before starting DDS
    sent = 0
    with RosSession("ai4mars_bag_player") as ros:
        player = BagPlayer(ros.node, path, topics, clock, reliable)
        try:
            player.wait_for_subscribers(wait_for_subscribers)
            while True:
                sent += player.play(rate)
                if not loop:
                    break
            time.sleep(0.2)  # let the last reliable samples leave
        finally:
            player.close()
    return sent


# -- process ------------------------------------------------------------------------------------
@dataclass
class ProcessResult:
    """Counts of a ``bag process`` run."""

    frames: int = 0
    processed: int = 0
    failed: int = 0
    seconds: float = 0.0


def decode_bag_image(ts, msgtype: str, data: bytes, max_pixels: int = 4096 * 4096):
    """Deserialize an Image/CompressedImage from CDR; returns (header, uint8 gray frame)."""
    msg = ts.deserialize_cdr(data, msgtype)
    if msgtype == COMPRESSED:
        return msg.header, to_gray8(decode_compressed(msg.data, max_pixels), "rgb8")
    frame = decode_raw(msg.height, msg.width, msg.encoding, msg.step, msg.is_bigendian, msg.data, max_pixels)
    return msg.header, to_gray8(frame, msg.encoding)


def process_bag(
    path: Path,
    out: Path,
    segmenter,
    topics: list[str] | None = None,
    node_name: str = "terrain_segmentation",
    overlay_alpha: float | None = 0.5,
    storage: str = "mcap",
    csv_path: Path | None = None,
    png_dir: Path | None = None,
    config: TraversabilityConfig | None = None,
    overwrite: bool = False,
) -> ProcessResult:
    """Segment every image message of ``path`` into a new bag ``out``: inputs copied, plus the node's
    ``mask``, ``overlay`` and ``traversability`` topics with the input stamps and headers.

    Frames that cannot be decoded are counted, reported and recorded in the CSV; the run goes on.
    The bag and the CSV appear only when the run completes.
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
                Writer(tmp, version=9, storage_plugin=_storage(storage)) as writer,
                open(csv_tmp, "w", newline="") as f,
            ):
                frames = _FrameWriter(
                    writer, reader, segmenter, node_name, overlay_alpha, csv.writer(f), png_dir, config
                )
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

    def __init__(self, writer, reader, segmenter, node_name, overlay_alpha, rows, png_dir, config) -> None:
        self.ts = typestore()
        self.writer, self.segmenter, self.alpha, self.rows, self.png_dir = (
            writer,
            segmenter,
            overlay_alpha,
            rows,
            png_dir,
        )
        self.config = config or TraversabilityConfig()
        self.copies = {c.id: writer.add_connection(c.topic, c.msgtype, typestore=self.ts) for c in reader.connections}
        prefix = f"/{node_name.strip('/')}"
        self.mask_c = writer.add_connection(f"{prefix}/mask", IMAGE, typestore=self.ts)
        self.ovl_c = (
            writer.add_connection(f"{prefix}/overlay", IMAGE, typestore=self.ts) if overlay_alpha is not None else None
        )
        self.trav_c = writer.add_connection(f"{prefix}/traversability", POINTCLOUD2, typestore=self.ts)
        rows.writerow(CSV_COLUMNS)

    def copy(self, conn, stamp: int, data) -> None:
        self.writer.write(self.copies[conn.id], stamp, data)

    def process(self, conn, stamp: int, data, result: ProcessResult) -> None:
        from ai4mars_perception.overlay import overlay
        from ai4mars_perception.segmenter import Timings

        index = result.frames
        result.frames += 1
        try:
            header, gray = decode_bag_image(self.ts, conn.msgtype, data)
        except Exception as e:  # decode errors and malformed CDR alike: count, record, go on
            result.failed += 1
            tqdm.write(f"frame {index} on {conn.topic}: skipped: {e}")
            self.rows.writerow([index, conn.topic, stamp, "error", str(e)])
            return
        ts, timings = self.ts, Timings()
        mask = self.segmenter.segment(gray, timings)
        summary = summarize(mask, self.config)
        table = summary_to_array(summary)
        self.writer.write(self.mask_c, stamp, ts.serialize_cdr(image_message(ts, mask, "mono8", header), IMAGE))
        rgb = None
        if self.ovl_c is not None:
            rgb = overlay(gray, mask, self.alpha, self.segmenter.metadata.class_colors)
            self.writer.write(self.ovl_c, stamp, ts.serialize_cdr(image_message(ts, rgb, "rgb8", header), IMAGE))
        self.writer.write(self.trav_c, stamp, ts.serialize_cdr(table_message(ts, table, header), POINTCLOUD2))
        self.rows.writerow(summary_row(index, conn.topic, stamp, summary, table, timings.inference))
        if self.png_dir is not None:
            self.png_dir.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(self.png_dir / f"{index:06d}_mask.png"), mask)
            if rgb is not None:
                cv2.imwrite(str(self.png_dir / f"{index:06d}_overlay.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        result.processed += 1


CSV_COLUMNS = [
    "index",
    "topic",
    "stamp_ns",
    "status",
    "error",
    "verdict",
    *TABLE_FIELDS[2:],
    "sector_verdicts",
    "inference_ms",
]


def summary_row(index: int, topic: str, stamp: int, summary, table: np.ndarray, inference_s: float) -> list:
    """One CSV row of a processed frame (columns: :data:`CSV_COLUMNS`)."""
    return [
        index,
        topic,
        stamp,
        "ok",
        "",
        summary.frame.verdict.name.lower(),
        *[f"{float(table[0][f]):.4f}" for f in TABLE_FIELDS[2:]],
        " ".join(f"{r.name}:{r.verdict.name.lower()}" for r in summary.sectors),
        f"{inference_s * 1000:.1f}",
    ]


# -- CLI ----------------------------------------------------------------------------------------
def add_parser(sub, model_arg: Callable[[argparse.ArgumentParser], None], make_segmenter) -> None:
    """Add ``bag make | play | process`` to the ai4mars-perception parser."""
    parent = sub.add_parser("bag", help="rosbag2 tools: make, play, process")
    parent.set_defaults(func=lambda args: run(args, make_segmenter))
    bag = parent.add_subparsers(dest="bag_command", required=True)

    p = bag.add_parser("make", help="image files or folders -> rosbag2")
    p.add_argument("inputs", nargs="+", metavar="IMAGES_OR_FOLDER")
    p.add_argument("-o", "--out", required=True, help="output bag folder (must not exist)")
    p.add_argument("--topic", default="/navcam/left/image_raw")
    p.add_argument("--frame-id", default="navcam_left")
    p.add_argument("--compressed", action="store_true", help="CompressedImage with the file bytes as they are")
    p.add_argument("--rate", type=float, default=1.0, help="frames per second of the recorded timing")
    p.add_argument("--start", type=float, default=None, help="first stamp, seconds since the epoch (default: now)")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--camera-info", action="store_true", help="also write <topic namespace>/camera_info")
    p.add_argument("--fov", type=float, default=45.0, help="horizontal field of view for camera_info, degrees")

    p = bag.add_parser("play", help="publish a bag's image topics over DDS with the recorded timing")
    p.add_argument("bag")
    p.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    p.add_argument("--loop", action="store_true")
    p.add_argument("--topics", nargs="+", help="image topics to play (default: all image topics)")
    p.add_argument("--clock", action="store_true", help="publish /clock from the bag stamps (use_sim_time)")
    p.add_argument("--best-effort", action="store_true", help="publish best-effort instead of reliable")

    p = bag.add_parser("process", help="segment every image of a bag offline into an output bag")
    p.add_argument("bag")
    model_arg(p)
    p.add_argument("-o", "--out", required=True, help="output bag folder")
    p.add_argument("--topics", nargs="+", help="image topics to process (default: all image topics)")
    p.add_argument("--node-name", default="terrain_segmentation", help="namespace of the output topics")
    p.add_argument("--no-overlay", action="store_true")
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--csv", help="per-frame summaries (default: <out>.csv)")
    p.add_argument("--png-dir", help="also write PNG masks and overlays here")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--rover-mask", help="rover mask image (non-zero = rover), reported as unknown")


def run(args: argparse.Namespace, make_segmenter) -> int:
    """Dispatch ``bag`` subcommands; BagError becomes the CLI's one-line error."""
    from ai4mars_perception.cli import CliError

    try:
        if args.bag_command == "make":
            n = make_bag(
                args.inputs,
                Path(args.out),
                args.topic,
                args.frame_id,
                args.compressed,
                args.rate,
                args.start,
                args.storage,
                args.camera_info,
                args.fov,
            )
            print(f"wrote {n} frames to {args.out}")
        elif args.bag_command == "play":
            n = play_bag(Path(args.bag), args.rate, args.loop, args.topics, args.clock, not args.best_effort)
            print(f"published {n} messages")
        else:
            seg = make_segmenter(args)
            out = Path(args.out)
            csv_path = Path(args.csv) if args.csv else out.with_name(out.name + ".csv")
            r = process_bag(
                Path(args.bag),
                out,
                seg,
                args.topics,
                args.node_name,
                None if args.no_overlay else args.alpha,
                args.storage,
                csv_path,
                Path(args.png_dir) if args.png_dir else None,
                overwrite=args.overwrite,
            )
            print(
                f"{r.processed}/{r.frames} frames processed, {r.failed} failed, "
                f"{r.frames / max(r.seconds, 1e-9):.2f} frames/s; wrote {out} and {csv_path}"
            )
            return 1 if r.failed else 0
    except BagError as e:
        raise CliError(str(e)) from None
    return 0
