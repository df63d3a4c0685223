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


def rgb_to_yuv420p(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 RGB -> Y (H, W), U and V (H/2, W/2) uint8 planes: BT.601 limited range (what decoders
    assume for untagged SD video), chroma averaged over 2x2 blocks.

    Done in numpy rather than by libswscale so the bytes handed to the encoder depend only on the pixels."""
    rgb = frame.astype(np.float64) / 255.0
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 16.0 + 65.481 * r + 128.553 * g + 24.966 * b
    cb = 128.0 - 37.797 * r - 74.203 * g + 112.0 * b
    cr = 128.0 + 112.0 * r - 93.786 * g - 18.214 * b
    h, w = y.shape

    def finish(c: np.ndarray) -> np.ndarray:
        return np.clip(np.round(c), 0, 255).astype(np.uint8)

    def pool(c: np.ndarray) -> np.ndarray:
        return finish(c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)))

    return finish(y), pool(cb), pool(cr)


def yuv_frame(planes: tuple[np.ndarray, ...]) -> av.VideoFrame:
    """A yuv420p frame whose every buffer byte is set, row padding included (edge pixels repeated), so no
    uninitialised memory can reach the encoder."""
    h, w = planes[0].shape
    picture = av.VideoFrame(w, h, "yuv420p")
    for plane, data in zip(picture.planes, planes):
        buf = np.frombuffer(plane, dtype=np.uint8)
        rows = buf[: plane.height * plane.line_size].reshape(plane.height, plane.line_size)
        rows[:, : data.shape[1]] = data
        rows[:, data.shape[1] :] = data[:, -1:]
        buf[plane.height * plane.line_size :] = 0
    return picture


def encode_mp4(frames: np.ndarray, path: Path, fps: float, codec: str = "libx264", crf: int = 18) -> None:
    """Encode (N, H, W, 3) uint8 RGB frames as yuv420p H.264 (or MPEG-4 part 2) at ``fps`` into ``path``.

    Single-threaded encoding without x264 lookahead keeps the output byte-identical for identical frames."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected (N, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"yuv420p needs even width and height, got {frames.shape[2]}x{frames.shape[1]}")
    tmp = atomic_target(path)
    try:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            rate = Fraction(fps).limit_denominator(1000)
            stream = container.add_stream(codec, rate=rate)
            stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
            stream.thread_count = 1
            if codec == "libx264":
                # x264's lookahead (macroblock tree, rc-lookahead) made identical frames encode to different
                # bitstreams from call to call on small frames; without it the output is reproducible.
                stream.options = {"crf": str(crf), "preset": "medium", "x264-params": "rc-lookahead=0:mbtree=0"}
            else:
                stream.bit_rate = 4_000_000
            for index, frame in enumerate(frames):
                picture = yuv_frame(rgb_to_yuv420p(frame))
                picture.pts, picture.time_base = index, 1 / rate
                container.mux(stream.encode(picture))
            container.mux(stream.encode(None))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
