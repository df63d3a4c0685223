"""MP4 encoding of rendered frames with PyAV, written atomically."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def atomic_target(path: Path) -> Path:
    """A temporary sibling of ``path`` unique to this process, to be ``os.replace``d onto it when complete, so
    readers and concurrent writers never see a half-written file."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def encode_mp4(frames: np.ndarray, path: Path, fps: float, codec: str = "libx264", crf: int = 18) -> None:
    """Encode (N, H, W, 3) uint8 RGB frames as yuv420p H.264 (or MPEG-4 part 2) at ``fps`` into ``path``.

    Single-threaded encoding keeps the output byte-identical for identical frames."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected (N, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"yuv420p needs even width and height, got {frames.shape[2]}x{frames.shape[1]}")
    tmp = atomic_target(path)
    try:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
            stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
            stream.thread_count = 1
            if codec == "libx264":
                stream.options = {"crf": str(crf), "preset": "medium"}
            else:
                stream.bit_rate = 4_000_000
            for frame in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode(None))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
