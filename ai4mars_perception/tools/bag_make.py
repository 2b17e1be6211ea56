"""``ai4mars-perception bag make``: image files → rosbag2 of sensor_msgs/Image (mono8) or CompressedImage."""

from __future__ import annotations

import time
from pathlib import Path

from tqdm import tqdm

from ai4mars_perception.core.image_codec import ImageDecodeError, collect_images, decode_compressed, read_image_file
from ai4mars_perception.tools.bag_io import (
    CAMERA_INFO,
    COMPRESSED,
    IMAGE,
    BagError,
    serialize,
    staged_output,
    storage_plugin,
    typestore,
)
from ai4mars_perception.tools.side_files import exclusion_for, side_topics


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
    exclusion_masks: bool = False,
) -> int:
    """Write image files into a new bag; returns the number of frames written (unreadable files skipped).
    ``exclusion_masks``: also each frame's exclusion mask (:mod:`~ai4mars_perception.tools.side_files`: e.g. the
    AI4Mars MXY ∪ RNG-30m masks) on ``<topic namespace>/exclusion_mask``, mono8, with the frame's stamp."""
    from rosbags.rosbag2 import Writer
    from sensor_msgs.msg import CompressedImage

    from ai4mars_perception.ros.messages import camera_info_msg, header_msg, image_msg

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
        with Writer(tmp, version=9, storage_plugin=storage_plugin(storage)) as writer:
            name = f"{topic}/compressed" if compressed else topic
            conn = writer.add_connection(name, COMPRESSED if compressed else IMAGE, typestore=ts)
            info_topic = topic.rsplit("/", 1)[0] + "/camera_info"
            info_conn = writer.add_connection(info_topic, CAMERA_INFO, typestore=ts) if camera_info else None
            mask_topic = side_topics(topic)["exclusion_mask"]
            mask_conn = writer.add_connection(mask_topic, IMAGE, typestore=ts) if exclusion_masks else None
            for path in tqdm(files, desc="bag make", unit="frame"):
                stamp = t0 + written * dt
                header = header_msg(stamp, frame_id)
                try:
                    if compressed:
                        data = path.read_bytes()
                        gray = decode_compressed(data)
                        fmt = "png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "jpeg"
                        msg = CompressedImage(header=header, format=fmt)
                        msg.data = data
                    else:
                        gray = read_image_file(path)
                        msg = image_msg(gray, "mono8", header)
                except (ImageDecodeError, OSError) as e:
                    tqdm.write(f"skipped {path}: {e}")
                    continue
                if info_conn is not None:  # before its image, as a camera driver publishes it
                    info = camera_info_msg(header, gray.shape[1], gray.shape[0], fov_deg)
                    writer.write(info_conn, stamp, serialize(info))
                if mask_conn is not None and (mask := exclusion_for(path, gray.shape[:2])) is not None:
                    writer.write(mask_conn, stamp, serialize(image_msg(mask, "mono8", header)))
                writer.write(conn, stamp, serialize(msg))
                written += 1
        if written == 0:
            raise BagError("none of the input files could be read as an image")
    return written
