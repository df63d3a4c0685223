"""Segmenter protocol, registry, prompt selection and the per-clip driver of the ``segment`` stage."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from ..io import save_npz
from ..registry import Registry


@dataclass
class SegmentConfig:
    """Which segmenter runs and how it is prompted."""

    backend: str = "gt"
    """``gt`` (the layout's masks.npz, synthetic world), ``hf-sam3`` (transformers Sam3, CPU or GPU) or ``sam3``."""
    checkpoint: str | None = None
    """Local checkpoint: a folder saved with ``save_pretrained`` (hf-sam3) or a ``sam3.pt`` file (sam3)."""
    bpe_path: str | None = None
    """``sam3`` backend only: path of ``bpe_simple_vocab_16e6.txt.gz`` (the sam3 wheel does not ship it)."""
    device: str = "auto"
    """``auto`` picks CUDA when available, else CPU."""
    score_threshold: float = 0.5
    mask_threshold: float = 0.5
    link_iou: float = 0.3
    """Per-frame detections join an existing track when their mask IoU with its last mask is at least this."""
    max_objects: int = 4
    """At most this many prompts (object names) per clip."""
    prompts_from: str = "objects"
    """``objects`` (metadata column, then caption vocabulary), ``caption`` (vocabulary only) or ``api`` (LLM)."""
    vocabulary: list[str] = field(
        default_factory=lambda: ["person", "car", "dog", "cat", "bicycle", "bus", "truck", "boat", "horse", "bird",
                                 "building", "tree", "chair", "table", "ball", "sphere", "cube", "cylinder"]
    )
    """Object nouns looked for in the caption when the metadata names no objects."""


class Segmenter(Protocol):
    def segment(self, frames: list[Image.Image], prompts: list[str], clip: dict) -> tuple[np.ndarray, list[dict]]:
        """Return ``(T, H, W)`` uint8 instance ids and ``[{"obj_id": int, "name": str}, ...]``."""


SEGMENTERS = Registry("segment")
"""``segment.backend`` name → factory taking the :class:`SegmentConfig`, returning a :class:`Segmenter`."""
register_segmenter = SEGMENTERS.register
get_segmenter: Callable[[SegmentConfig], Segmenter] = SEGMENTERS.build


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def caption_objects(caption: str, vocabulary: list[str]) -> list[str]:
    """Vocabulary nouns in the caption, in order of first mention (plural ``s`` allowed)."""
    found = []
    for noun in vocabulary:
        match = re.search(rf"\b{re.escape(noun)}s?\b", caption, re.IGNORECASE)
        if match:
            found.append((match.start(), noun))
    return [noun for _, noun in sorted(found)]


def object_prompts(clip: dict, config: SegmentConfig, ask_llm: Callable[[dict], list[str]] | None = None) -> list[str]:
    """Text prompts for one clip, per ``config.prompts_from``; ``ask_llm(clip)`` answers the ``api`` mode."""
    if config.prompts_from == "api":
        if ask_llm is None:
            raise ValueError("segment.prompts_from='api' needs the cot API settings (cot.model, cot.base_url)")
        names = ask_llm(clip)
    elif config.prompts_from == "objects":
        names = clip.get("objects") or caption_objects(clip.get("caption", ""), config.vocabulary)
    elif config.prompts_from == "caption":
        names = caption_objects(clip.get("caption", ""), config.vocabulary)
    else:
        raise ValueError(f"segment.prompts_from={config.prompts_from!r}; choose objects, caption or api")
    return list(dict.fromkeys(n.strip() for n in names if n.strip()))[: config.max_objects]


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def link_detections(per_frame: list[list[tuple[np.ndarray, float]]], min_iou: float) -> list[dict[int, np.ndarray]]:
    """Greedy IoU linking of per-frame detections of one prompt into tracks.

    ``per_frame[t]`` lists ``(mask, score)``; each track remembers its last mask, so an object that vanishes for a
    few frames is picked up again. Returns tracks as ``{frame: mask}``, longest first.
    """
    tracks: list[dict] = []
    for t, detections in enumerate(per_frame):
        claimed: set[int] = set()
        for mask, _score in sorted(detections, key=lambda d: -d[1]):
            best, best_iou = None, min_iou
            for i, track in enumerate(tracks):
                if i in claimed:
                    continue
                iou = mask_iou(track["last"], mask)
                if iou >= best_iou:
                    best, best_iou = i, iou
            if best is None:
                tracks.append({"frames": {t: mask}, "last": mask})
                claimed.add(len(tracks) - 1)
            else:
                tracks[best]["frames"][t] = mask
                tracks[best]["last"] = mask
                claimed.add(best)
    return sorted((tr["frames"] for tr in tracks), key=len, reverse=True)


class PerFrameDetector:
    """Shared ``segment`` for detectors that find text-prompted instances one frame at a time.

    Subclasses implement ``detect_frame(frame, prompts) -> {prompt: [(mask, score), ...]}``; the detections of each
    prompt are linked over time and the most persistent instance of each concept is kept.
    """

    config: SegmentConfig

    def detect_frame(self, frame: Image.Image, prompts: list[str]) -> dict[str, list[tuple[np.ndarray, float]]]:
        raise NotImplementedError

    def segment(self, frames: list[Image.Image], prompts: list[str], clip: dict) -> tuple[np.ndarray, list[dict]]:
        per_prompt: dict[str, list] = {p: [] for p in prompts}
        for frame in frames:  # one frame at a time keeps peak memory flat on long clips
            found = self.detect_frame(frame, prompts)
            for prompt in prompts:
                per_prompt[prompt].append([(m, s) for m, s in found.get(prompt, []) if m.any()])
        tracks = []
        for prompt, per_frame in per_prompt.items():
            linked = link_detections(per_frame, self.config.link_iou)
            if linked:
                tracks.append((prompt, linked[0]))
        return compose_instances(len(frames), frames[0].size, tracks)


def compose_instances(num_frames: int, size: tuple[int, int], tracks: list[tuple[str, dict[int, np.ndarray]]]) -> tuple[np.ndarray, list[dict]]:
    """Paint ``(name, {frame: mask})`` tracks into one uint8 id map per frame (earlier tracks win overlaps)."""
    width, height = size
    ids = np.zeros((num_frames, height, width), dtype=np.uint8)
    objects = []
    for obj_id, (name, frames) in enumerate(tracks[:255], start=1):
        for t, mask in frames.items():
            ids[t][(mask > 0) & (ids[t] == 0)] = obj_id
        objects.append({"obj_id": obj_id, "name": name})
    return ids, objects


def segment_clip(clip: dict, frames_dir: Path, out_path: Path, segmenter: Segmenter, prompts: list[str]) -> dict:
    """Segment one clip's JPEGs and write ``masks`` / ``obj_ids`` / ``names`` to ``out_path`` (npz, atomic)."""
    clip_dir = frames_dir / clip["clip_id"]
    frames = [Image.open(clip_dir / name).convert("RGB") for name in clip["files"]]
    masks, objects = segmenter.segment(frames, prompts, clip)
    expected = (len(frames), clip["height"], clip["width"])
    if masks.shape != expected or masks.dtype != np.uint8:
        raise ValueError(f"segmenter returned masks {masks.shape} {masks.dtype}, expected {expected} uint8")
    save_npz(
        out_path,
        masks=masks,
        obj_ids=np.array([o["obj_id"] for o in objects], dtype=np.int64),
        names=np.array([o["name"] for o in objects], dtype=str),
    )
    return {"objects": len(objects)}


def load_masks(path: Path) -> tuple[np.ndarray, list[dict]]:
    """Read a ``segment`` output back: ``(T, H, W)`` ids and the object list."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no masks; run the 'segment' stage first")
    with np.load(path) as data:
        objects = [{"obj_id": int(i), "name": str(n)} for i, n in zip(data["obj_ids"], data["names"])]
        return data["masks"], objects
