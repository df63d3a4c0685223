"""``gt`` segmenter: the ground-truth instance masks the synthetic world writes (``masks.npz``)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..frames import clip_annotations
from .base import SegmentConfig, register_segmenter


@register_segmenter("gt")
class GroundTruthSegmenter:
    """Reads ``annotations/.../masks.npz`` at the clip's annotation rows and resizes it (nearest) to the frames.

    Prompts are ignored: the world knows its objects (``objects.json``).
    """

    def __init__(self, config: SegmentConfig):
        self.config = config

    def segment(self, frames: list[Image.Image], prompts: list[str], clip: dict) -> tuple[np.ndarray, list[dict]]:
        rows = clip.get("annotation_rows")
        if rows is None:
            raise ValueError(f"clip {clip['clip_id']!r}: the gt segmenter needs annotated frames (indexes.txt)")
        ann = clip_annotations(clip)
        gt = ann.gt_masks
        if max(rows) >= len(gt):
            raise IndexError(f"{ann.dir / 'masks.npz'}: {len(gt)} frames, clip needs row {max(rows)}")
        width, height = frames[0].size
        masks = np.stack(
            [np.asarray(Image.fromarray(gt[r].astype(np.uint8)).resize((width, height), Image.NEAREST)) for r in rows]
        )
        present = set(np.unique(masks).tolist()) - {0}
        objects = [{"obj_id": int(o["obj_id"]), "name": str(o["name"])} for o in ann.gt_objects if o["obj_id"] in present]
        return masks.astype(np.uint8), objects
