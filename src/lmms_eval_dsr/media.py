"""Turn what a task's ``doc_to_visual`` returns into frame arrays, by the frame rule of the evaluation protocol.

- ``read_video`` (our ``think`` protocol): one frame per ``1 / fps`` s, uniformly capped, declared at the rate actually
  delivered (the temporal mRoPE spacing depends on it).
- ``read_video_release`` (``4dthinker``): the release's ``dsr_eval.py``: frames at ``int(i · video_fps / fps)``, capped
  to 50 by ``np.linspace(…, dtype=int)``, each fitted under 256·28² pixels, declared at 1 fps even when capped.
- ``read_video_qwen`` (DSR-Bench ``official``): qwen-vl-utils' rule as the DSR Suite VLMEvalKit wrapper drives it
  (2 fps, per-frame 128–768·28² pixels, a 24,576·28² total): an even frame count, linspace indices, a per-frame pixel
  cap shrinking with the frame count, declared at 2 fps (DSR Suite calls the processor without ``fps``, so the
  processor's default 2.0 is what the model is told, even where the sampled rate differs).

PyAV is used because it is a core dependency (decord is an optional extra). A file that cannot be decoded raises
:class:`UndecodableVideoError`, which the benchmark loaders treat as missing media.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tiff"})


class UndecodableVideoError(ValueError):
    """A video file exists but yields no frame (corrupt, truncated, or not a video)."""


@dataclass
class SampledVideo:
    frames: np.ndarray  # (T, H, W, 3) uint8
    fps: float  # the rate declared to the model (normally that of the returned frames)
    pixels: tuple[int, int] | None = None  # (min, max) pixels per frame the frames were already fitted to

    def fitted(self, min_pixels: int, max_pixels: int) -> SampledVideo:
        """The frames resized (bicubic) to Qwen's 28-multiple size inside ``[min_pixels, max_pixels]``."""
        from PIL import Image

        return SampledVideo(_fit(list(self.frames), min_pixels, max_pixels, Image.BICUBIC), self.fps,
                            (min_pixels, max_pixels))


def _decoded(path: str | Path) -> Iterator[tuple[Any, float]]:
    """Decoded frames (PyAV ``VideoFrame``) with their time in seconds; decoder errors become
    :class:`UndecodableVideoError`. Frames are converted to arrays only where a rule keeps them, so a long video is
    never held in memory whole."""
    import av

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video {path} not found")
    count = 0
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = float(stream.average_rate or stream.guessed_rate or 0) or 1.0
            for frame in container.decode(stream):
                yield frame, (float(frame.pts * stream.time_base) if frame.pts is not None else count / rate)
                count += 1
    except (av.error.FFmpegError, IndexError) as error:
        raise UndecodableVideoError(f"video {path} cannot be decoded: {error}") from error
    if not count:
        raise UndecodableVideoError(f"video {path} has no decodable frame")


def _stream_info(path: str | Path) -> tuple[int, float]:
    """Frame count (from the container, else by counting packets; no decoding) and average frame rate."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = float(stream.average_rate or stream.guessed_rate or 0) or 1.0
            count = stream.frames or sum(1 for packet in container.demux(stream) if packet.size)
    except (av.error.FFmpegError, IndexError) as error:
        raise UndecodableVideoError(f"video {path} cannot be decoded: {error}") from error
    return count, rate


def _frames_at(path: str | Path, pick: Callable[[int, float], Sequence[int]]) -> tuple[list[np.ndarray], int, float]:
    """The frames at ``pick(frame count, rate)``, the count and the rate. When fewer frames decode than the container
    lists, the indices are picked again from the frames that do decode."""
    count, rate = _stream_info(path)
    for _ in range(2):
        indices = list(pick(count, rate))
        wanted = set(indices)
        kept: dict[int, np.ndarray] = {}
        decoded = 0
        for index, (frame, _) in enumerate(_decoded(path)):
            if index in wanted:
                kept[index] = frame.to_ndarray(format="rgb24")
            decoded = index + 1
        if wanted <= kept.keys():
            return [kept[i] for i in indices], count, rate
        count = decoded
    raise UndecodableVideoError(f"video {path}: frames {sorted(wanted - kept.keys())[:5]} do not decode")


def probe_video(path: str | Path) -> None:
    """Raise :class:`UndecodableVideoError` unless the file opens and its first frame decodes (cheap check at load)."""
    import av

    try:
        with av.open(str(path)) as container:
            next(container.decode(container.streams.video[0]))
    except (av.error.FFmpegError, IndexError, StopIteration) as error:
        raise UndecodableVideoError(f"video {path} cannot be decoded: {error or 'no frame'}") from error


def _fit(frames: Sequence[np.ndarray], min_pixels: int, max_pixels: int, resample: int) -> np.ndarray:
    """Frames resized to Qwen's 28-multiple size inside ``[min_pixels, max_pixels]`` (all share the first's size)."""
    from PIL import Image

    from trl_latent.data import budget_size

    height, width = frames[0].shape[:2]
    size = budget_size(height, width, min_pixels, max_pixels)
    if size == (height, width):
        return np.stack(frames)
    return np.stack([np.asarray(Image.fromarray(f).resize(size[::-1], resample)) for f in frames])


def _cap_indices(count: int, max_frames: int) -> np.ndarray:
    """``count`` indices, or ``max_frames`` of them spread uniformly (first and last kept) when there are more."""
    if count <= max_frames:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, max_frames).round().astype(int))


def read_video(path: str | Path, fps: float = 1.0, max_frames: int = 50) -> SampledVideo:
    """Frames of a video file taken every ``1 / fps`` seconds (the first frame at or after each tick), capped.

    A video shorter than one tick still yields its first frame.
    """
    kept: list[np.ndarray] = []
    next_tick = 0.0
    for frame, seconds in _decoded(path):
        if seconds + 1e-6 >= next_tick:
            kept.append(frame.to_ndarray(format="rgb24"))
            next_tick += 1.0 / fps
    indices = _cap_indices(len(kept), max_frames)
    return SampledVideo(np.stack([kept[i] for i in indices]), fps * len(indices) / len(kept))


def read_video_release(path: str | Path, fps: float = 1.0, max_frames: int = 50, max_pixels: int = 256 * 28 * 28
                       ) -> SampledVideo:
    """The 4DThinker release's frame rule (``evaluation/dsr_eval.py`` + ``dift/src/task.py``), declared at ``fps``.

    ``max(1, int(duration · fps))`` frames at ``min(int(i · video_fps / fps), n - 1)``, then at most ``max_frames`` by
    ``np.linspace(0, n - 1, max_frames, dtype=int)`` (floored), each frame larger than ``max_pixels`` shrunk with
    LANCZOS to sides floored to multiples of 28; the declared rate stays ``fps`` even when capping thinned the frames.
    """
    from PIL import Image

    def pick(count: int, rate: float) -> list[int]:
        wanted = max(1, int(count / rate * fps))
        picked = sorted({min(int(i * rate / fps), count - 1) for i in range(wanted)})
        if len(picked) > max_frames:
            picked = [picked[i] for i in np.linspace(0, len(picked) - 1, max_frames, dtype=int)]
        return picked

    frames, _, _ = _frames_at(path, pick)
    height, width = frames[0].shape[:2]
    if height * width > max_pixels:
        scale = (max_pixels / (height * width)) ** 0.5
        size = (max(28, int(width * scale) // 28 * 28), max(28, int(height * scale) // 28 * 28))
        kept = [np.asarray(Image.fromarray(f).resize(size, Image.LANCZOS)) for f in frames]
    else:
        kept = frames
    return SampledVideo(np.stack(kept), float(fps), (28 * 28, max_pixels))  # the release's processor range


def qwen_frame_count(total_frames: int, video_fps: float, fps: float = 2.0, min_frames: int = 4,
                     max_frames: int = 768) -> int:
    """qwen-vl-utils' ``smart_nframes`` (0.0.14) for an ``fps`` request: duration · fps clamped to
    ``[min_frames, min(max_frames, total)]`` (both rounded to even), floored to an even count."""
    def floor2(x: float) -> int:
        return int(x // 2 * 2)

    lower, upper = int(-(-min_frames // 2) * 2), floor2(min(max_frames, total_frames))
    count = floor2(min(max(total_frames / video_fps * fps, lower), upper, total_frames))
    if not 2 <= count <= total_frames:
        raise UndecodableVideoError(f"{total_frames} frame(s) are too few for Qwen's video sampling (needs 2)")
    return count


def qwen_pixel_cap(count: int, min_pixels: int = 128 * 28 * 28, max_pixels: int = 768 * 28 * 28,
                   total_pixels: float = 0.9 * 128000 * 28 * 28) -> int:
    """qwen-vl-utils' per-frame pixel cap of a ``count``-frame video (``fetch_video``, 0.0.14):
    ``min(max_pixels, max(min(768·28², total_pixels / count · 2), 1.05 · min_pixels))``. Its default total budget
    (0.9 · 128,000 · 28², from ``MODEL_SEQ_LEN``) binds above 300 frames."""
    return int(min(max_pixels, max(min(768 * 28 * 28, total_pixels / count * 2), int(min_pixels * 1.05))))


def read_video_qwen(path: str | Path, fps: float = 2.0, min_pixels: int = 128 * 28 * 28,
                    max_pixels: int = 768 * 28 * 28, total_pixels: int = 24576 * 28 * 28) -> SampledVideo:
    """DSR-Bench's official video input: qwen-vl-utils' ``fetch_video`` with the DSR Suite wrapper's settings.

    Frames at ``linspace(0, n - 1, count).round()``; the per-frame cap is :func:`qwen_pixel_cap`; frames are resized
    (bicubic) to
    Qwen's 28-multiple size inside it; declared at ``fps`` (the processor's 2.0 default DSR Suite leaves in place),
    not at the sampled ``count / n · video_fps``.
    """
    from PIL import Image

    def pick(total: int, rate: float) -> list[int]:
        return np.linspace(0, total - 1, qwen_frame_count(total, rate, fps)).round().astype(int).tolist()

    frames, _, _ = _frames_at(path, pick)
    cap = qwen_pixel_cap(len(frames), min_pixels, max_pixels, total_pixels)
    return SampledVideo(_fit(frames, min_pixels, cap, Image.BICUBIC), float(fps), (min_pixels, cap))


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
