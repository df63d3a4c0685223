"""Stage 2 (``segment``): temporally consistent instance masks for the sampled frames of each clip.

Backends are looked up by name in :data:`SEGMENTERS` (``gt``, ``hf-sam3``, ``sam3``); register another with
:func:`register_segmenter`. Every backend returns ``(T, H, W)`` uint8 instance ids at the frames' size (0 =
background) plus one ``{"obj_id", "name"}`` entry per instance, so the QA stages never depend on the backend.
"""

from .base import SEGMENTERS, SegmentConfig, Segmenter, get_segmenter, register_segmenter, segment_clip
from . import gt, hf_sam3, sam3_native  # noqa: F401  (register the built-in backends)

__all__ = ["SEGMENTERS", "SegmentConfig", "Segmenter", "get_segmenter", "register_segmenter", "segment_clip"]
