"""Turn what a task's ``doc_to_visual`` returns into frame arrays at a target fps with a frame cap.

The 4DThinker evaluation samples videos at 1 fps and keeps at most 50 frames (uniformly subsampled); the model was
trained on 1 fps video, and the temporal mRoPE spacing depends on the real rate, so the rate actually delivered
(after capping) is returned with the frames and passed on as the video's fps. PyAV is used because it is a core
dependency (decord is an optional extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tiff"})


@dataclass
class SampledVideo:
    frames: np.ndarray  # (T, H, W, 3) uint8
    fps: float  # rate of the returned frames, after sampling and capping


def _cap_indices(count: int, max_frames: int) -> np.ndarray:
    """``count`` indices, or ``max_frames`` of them spread uniformly (first and last kept) when there are more."""
    if count <= max_frames:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, max_frames).round().astype(int))


def read_video(path: str | Path, fps: float = 1.0, max_frames: int = 50) -> SampledVideo:
    """Frames of a video file taken every ``1 / fps`` seconds (the first frame at or after each tick), capped.

    A video shorter than one tick still yields its first frame.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video {path} not found")
    kept: list[np.ndarray] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        next_tick = 0.0
        for frame in container.decode(stream):
            seconds = float(frame.pts * stream.time_base) if frame.pts is not None else len(kept) / fps
            if seconds + 1e-6 >= next_tick:
                kept.append(frame.to_ndarray(format="rgb24"))
                next_tick += 1.0 / fps
    if not kept:
        raise ValueError(f"video {path} has no decodable frame")
    indices = _cap_indices(len(kept), max_frames)
    return SampledVideo(np.stack([kept[i] for i in indices]), fps * len(indices) / len(kept))


def read_frames(paths: Sequence[str | Path], fps: float, max_frames: int = 50) -> SampledVideo:
    """A video given as frame images at ``fps``, capped to ``max_frames`` uniformly; frames must share one size."""
    from PIL import Image

    if not paths:
        raise ValueError("a frame video needs at least one frame")
    indices = _cap_indices(len(paths), max_frames)
    frames = []
    for i in indices:
        with Image.open(paths[i]) as image:
            frames.append(np.asarray(image.convert("RGB")))
    sizes = {f.shape for f in frames}
    if len(sizes) > 1:
        raise ValueError(f"frames of {Path(paths[0]).parent} differ in size: {sorted(sizes)}")
    return SampledVideo(np.stack(frames), fps * len(indices) / len(paths))


def is_image_path(visual: object) -> bool:
    return isinstance(visual, (str, Path)) and Path(visual).suffix.lower() in IMAGE_SUFFIXES
