"""How a task hands a video made of frame images to a model.

lmms-eval passes whatever ``doc_to_visual`` returns straight to the model. A video file is a path string (the
lmms-eval convention), but a list of frame paths would read as several independent images; Dyn-Bench ships frames,
and the official evaluation feeds them as one video. So frames travel as one ``{"type": "video", "frames": [...]}``
dict, the same shape lmms-eval's chat tasks use for media dicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Dyn-Bench does not state its frame rate; frames are treated as a 1 fps video, the rate the latent models see
# during training.
DEFAULT_FRAME_FPS = 1.0


def frame_video(frame_paths: Sequence[str], fps: float = DEFAULT_FRAME_FPS) -> dict[str, Any]:
    """A video given as ordered frame image paths."""
    if not frame_paths:
        raise ValueError("a frame video needs at least one frame")
    return {"type": "video", "frames": list(frame_paths), "fps": float(fps)}


def is_frame_video(visual: Any) -> bool:
    return isinstance(visual, dict) and visual.get("type") == "video" and "frames" in visual
