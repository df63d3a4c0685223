"""Stage 1 (``frames``): decode each clip at a target fps, resize to a pixel budget, write JPEGs and a clip record.

When the clip has camera annotations, the sampled frames are snapped to annotated frames, so every later stage finds
an exact pose, intrinsics and depth row for every JPEG (no interpolation of poses). The clip record
(``frames/<id>/clip.json``) is what the other stages read; it carries the annotation row of each frame.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .io import read_json, save_image, write_json
from .layout import ClipAnnotations, ClipMeta


@dataclass
class FramesConfig:
    """How clips are sampled and resized."""

    fps: float = 1.0
    """Target sampling rate (frames per second of video time); the method trains on 1 fps."""
    max_frames: int = 16
    """Uniformly subsample to at most this many frames per clip."""
    max_pixels: int = 256 * 28 * 28
    """Pixel budget: sides are multiples of 28 and ``w * h <= max_pixels`` (Qwen2.5-VL's budget)."""
    min_pixels: int = 28 * 28
    jpeg_quality: int = 90
    backend: str = "auto"
    """``decord``, ``av`` or ``auto`` (decord when importable, else PyAV)."""


def fit_pixels(width: int, height: int, max_pixels: int, min_pixels: int = 28 * 28, factor: int = 28) -> tuple[int, int]:
    """Size with sides that are multiples of ``factor``, aspect ratio kept, ``min_pixels <= w*h <= max_pixels``."""
    if max_pixels < factor * factor:
        raise ValueError(f"max_pixels={max_pixels} is below one {factor}x{factor} patch")
    w = max(factor, round(width / factor) * factor)
    h = max(factor, round(height / factor) * factor)
    if w * h > max_pixels:
        beta = math.sqrt(width * height / max_pixels)
        w = max(factor, math.floor(width / beta / factor) * factor)
        h = max(factor, math.floor(height / beta / factor) * factor)
    elif w * h < min_pixels:
        beta = math.sqrt(min_pixels / (width * height))
        w = math.ceil(width * beta / factor) * factor
        h = math.ceil(height * beta / factor) * factor
    return w, h


def choose_frames(
    video_fps: float, num_frames: int, fps: float, max_frames: int, candidates: np.ndarray | None = None
) -> list[int]:
    """Positions (into ``candidates``, or frame indices when there are none) sampled at ``fps``, at most ``max_frames``.

    Each target time ``k / fps`` takes the nearest candidate frame; duplicates are dropped; a long clip is then
    subsampled uniformly so the first and last sampled frames are kept.
    """
    frames = np.arange(num_frames) if candidates is None else np.asarray(candidates)
    if len(frames) == 0:
        raise ValueError("no frames to sample from")
    duration = frames.max() / video_fps
    targets = np.arange(0.0, duration + 1e-9, 1.0 / fps) * video_fps
    chosen = sorted({int(np.abs(frames - t).argmin()) for t in targets})
    if len(chosen) > max_frames:
        keep = np.unique(np.linspace(0, len(chosen) - 1, max_frames).round().astype(int))
        chosen = [chosen[i] for i in keep]
    return chosen


def decode_frames(path: Path, indices: list[int], backend: str = "auto") -> list[np.ndarray]:
    """RGB uint8 frames at the given video frame indices, with decord when available, else PyAV."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: video not found")
    if backend in ("auto", "decord"):
        try:
            import decord
        except ImportError:
            if backend == "decord":
                raise ImportError("frames backend 'decord' requested but decord is not installed") from None
        else:
            reader = decord.VideoReader(str(path), num_threads=1)
            bad = [i for i in indices if i >= len(reader)]
            if bad:
                raise IndexError(f"{path}: frame(s) {bad} beyond the video's {len(reader)} frames")
            return list(reader.get_batch(indices).asnumpy())
    import av

    wanted, out = set(indices), {}
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                out[i] = frame.to_ndarray(format="rgb24")
            if len(out) == len(wanted):
                break
    missing = sorted(wanted - out.keys())
    if missing:
        raise IndexError(f"{path}: frame(s) {missing} beyond the end of the video")
    return [out[i] for i in indices]


def extract_clip(meta: ClipMeta, out_dir: Path, config: FramesConfig) -> dict:
    """Write ``out_dir/<id>/NNNNNN.jpg`` and ``clip.json`` for one clip; returns the clip record."""
    ann = meta.annotations()
    has_poses = ann.has_poses
    candidates = ann.frame_indexes if has_poses or ann.has_gt else None
    positions = choose_frames(meta.fps, meta.num_frames, config.fps, config.max_frames, candidates)
    frame_indices = [int(candidates[p]) if candidates is not None else p for p in positions]
    images = decode_frames(meta.video_path, frame_indices, config.backend)
    height, width = images[0].shape[:2]
    new_w, new_h = fit_pixels(width, height, config.max_pixels, config.min_pixels)
    clip_dir = out_dir / meta.id
    files = []
    for frame_index, array in zip(frame_indices, images):
        name = f"{frame_index:06d}.jpg"
        image = Image.fromarray(array)
        if image.size != (new_w, new_h):
            image = image.resize((new_w, new_h), Image.BICUBIC)
        save_image(clip_dir / name, image, quality=config.jpeg_quality)
        files.append(name)
    record = {
        "clip_id": meta.id,
        "group_id": meta.group_id,
        "dataset_root": str(meta.root),
        "video": str(meta.video_path),
        "video_fps": meta.fps,
        "frame_indices": frame_indices,
        "annotation_rows": [int(p) for p in positions] if candidates is not None else None,
        "timestamps": [round(i / meta.fps, 3) for i in frame_indices],
        "files": files,
        "width": new_w,
        "height": new_h,
        "source_size": [width, height],
        "caption": meta.caption,
        "objects": meta.objects,
        "motion_tags": meta.motion_tags,
        "has_poses": has_poses,
        "has_gt": ann.has_gt,
        "frames_config": asdict(config),
    }
    write_json(clip_dir / "clip.json", record)  # written last: its presence means the JPEGs are all there
    return record


def load_clip_record(frames_dir: Path, clip_id: str) -> dict:
    path = frames_dir / clip_id / "clip.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no clip record; run the 'frames' stage first")
    return read_json(path)


def clip_annotations(record: dict) -> ClipAnnotations:
    """The layout annotations of the clip a ``clip.json`` record was made from."""
    meta = ClipMeta(
        root=Path(record["dataset_root"]),
        id=record["clip_id"],
        group_id=record["group_id"],
        video_path=Path(record["video"]),
        fps=record["video_fps"],
        num_frames=max(record["frame_indices"]) + 1,
        width=record["source_size"][0],
        height=record["source_size"][1],
    )
    return meta.annotations()
