"""Stage 5 (``imagery``): the "mental image" frames a CoT shows with ``<output_image>``.

For each question: key frames of its segment (first, last and up to ``max_images - 2`` evenly spaced between),
the question's object highlighted with a semi-transparent red fill (alpha 0.4) and a red contour, and, for object
questions, an arrow from the object's previous key-frame position to its current one. Camera questions highlight the
object that stays visible best (a static reference to judge the camera's motion against). A key frame whose mask
covers less than ``min_mask_fraction`` of the image is rejected; a question left with fewer than ``min_images``
frames gets no imagery (it stays in the RL export, but not in DIFT).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


RED = (255, 0, 0)


@dataclass
class ImageryConfig:
    max_images: int = 4
    min_images: int = 2
    alpha: float = 0.4
    min_mask_fraction: float = 0.001
    arrows: bool = True
    jpeg_quality: int = 90


def pick_key_frames(frames: list[int], max_images: int) -> list[int]:
    """First, last and evenly spaced frames in between (at most ``max_images``)."""
    if len(frames) <= max_images:
        return list(frames)
    picks = np.unique(np.linspace(0, len(frames) - 1, max_images).round().astype(int))
    return [frames[i] for i in picks]


def contour(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """Pixels of ``mask`` that touch the background (4-neighbourhood), thickened ``width`` times."""
    padded = np.pad(mask, 1)
    interior = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    edge = mask & ~interior
    for _ in range(width - 1):
        p = np.pad(edge, 1)
        edge = edge | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]
    return edge


def highlight(image: Image.Image, mask: np.ndarray, alpha: float) -> Image.Image:
    """Red fill at ``alpha`` inside ``mask`` plus an opaque red contour."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32)
    array[mask] = (1 - alpha) * array[mask] + alpha * np.array(RED, dtype=np.float32)
    array[contour(mask, width=max(1, round(min(mask.shape) / 112)))] = RED
    return Image.fromarray(array.round().astype(np.uint8))


def draw_arrow(image: Image.Image, start: tuple[float, float], end: tuple[float, float]) -> None:
    draw = ImageDraw.Draw(image)
    width = max(1, round(min(image.size) / 56))
    draw.line([start, end], fill=RED, width=width)
    direction = np.subtract(end, start)
    length = float(np.linalg.norm(direction))
    unit = direction / length
    normal = np.array([-unit[1], unit[0]])
    head = max(3.0, min(length / 2, min(image.size) / 12))
    tip = np.asarray(end)
    draw.polygon([tuple(tip), tuple(tip - head * unit + head / 2 * normal), tuple(tip - head * unit - head / 2 * normal)], fill=RED)


def _centroid(mask: np.ndarray) -> tuple[float, float]:
    v, u = np.nonzero(mask)
    return float(u.mean()), float(v.mean())


def choose_reference(masks: np.ndarray, frames: list[int], objects: list[dict]) -> dict | None:
    """The object with the largest smallest-mask over ``frames`` (visible in all of them, as big as possible)."""
    best, best_area = None, 0.0
    for obj in objects:
        area = min(float((masks[t] == obj["obj_id"]).mean()) for t in frames)
        if area > best_area:
            best, best_area = obj, area
    return best


def render_question(
    qa: dict, frames_dir: Path, clip: dict, masks: np.ndarray, objects: list[dict], out_dir: Path, config: ImageryConfig
) -> dict | None:
    """Render the imagery of one question; returns its index entry (paths relative to ``out_dir.parent.parent``)."""
    from .io import save_image

    s, e = qa["segment"]
    candidates = qa.get("key_frames") or list(range(s, e + 1))
    obj = qa.get("subject") or choose_reference(masks, candidates, objects)
    if obj is None:
        return None
    usable = [t for t in candidates if (masks[t] == obj["obj_id"]).mean() >= config.min_mask_fraction]
    keys = pick_key_frames(usable, config.max_images)
    if len(keys) < config.min_images:
        return None
    images, previous = [], None
    for k, t in enumerate(keys):
        mask = masks[t] == obj["obj_id"]
        image = highlight(Image.open(frames_dir / clip["clip_id"] / clip["files"][t]), mask, config.alpha)
        centre = _centroid(mask)
        if config.arrows and qa.get("subject") and previous is not None and np.hypot(*np.subtract(centre, previous)) >= 3:
            draw_arrow(image, previous, centre)
        previous = centre
        path = out_dir / f"{qa['qa_id']}_{k}.jpg"
        save_image(path, image, quality=config.jpeg_quality)
        images.append(path.name)
    return {"images": images, "frames": [int(t) for t in keys], "object": obj["name"],
            "times": [clip["timestamps"][t] for t in keys]}
