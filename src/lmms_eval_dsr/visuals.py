"""How a task hands a video to a model, with the frame rule of its evaluation protocol attached.

lmms-eval passes whatever ``doc_to_visual`` returns straight to the model. A plain path string is the lmms-eval
convention (the model's own sampling settings apply: our ``think`` protocol). A protocol that fixes how frames are
taken sends a ``{"type": "video", "path": …, "rule": …}`` dict instead, so the same checkpoint sees exactly the input the
published evaluation gave it. A video made of frame images (Dyn-Bench) travels as one ``{"type": "video", "frames":
[...]}`` dict, since a list of paths would read as several independent images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Dyn-Bench does not state its frame rate; under the ``think`` protocol its frames are treated as a 1 fps video, the
# rate the latent models see during training.
DEFAULT_FRAME_FPS = 1.0
PIXEL = 28 * 28

# Frame rules by name → the settings the adapter passes to ``lmms_eval_dsr.media`` (see there for what each does).
RULES: dict[str, dict[str, Any]] = {
    # DSR Suite VLMEvalKit, Qwen2.5-VL "ForVideo" settings: 2 fps, 128–768·28² per frame, 24,576·28² in total.
    "qwen": {"fps": 2.0, "min_pixels": 128 * PIXEL, "max_pixels": 768 * PIXEL, "total_pixels": 24576 * PIXEL},
    # 4DThinker's dsr_eval.py: 1 fps, at most 50 frames by linspace, ≤ 256·28² per frame, declared 1 fps.
    "release": {"fps": 1.0, "max_frames": 50, "max_pixels": 256 * PIXEL},
}


def video_file(path: str, rule: str) -> dict[str, Any]:
    """A video file to be sampled by the named frame rule."""
    if rule not in RULES:
        raise ValueError(f"unknown frame rule {rule!r}; known: {sorted(RULES)}")
    return {"type": "video", "path": str(path), "rule": rule}


def frame_video(
    frame_paths: Sequence[str], fps: float = DEFAULT_FRAME_FPS, all_frames: bool = False,
    pixels: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """A video given as ordered frame image paths, declared at ``fps``.

    ``all_frames`` lifts the model's frame cap (Dyn-Bench's official scorer feeds every frame); ``pixels`` fixes the
    per-frame ``(min, max)`` pixel range instead of the model's.
    """
    if not frame_paths:
        raise ValueError("a frame video needs at least one frame")
    video: dict[str, Any] = {"type": "video", "frames": list(frame_paths), "fps": float(fps), "all_frames": all_frames}
    if pixels is not None:
        video["pixels"] = [int(pixels[0]), int(pixels[1])]
    return video


def is_frame_video(visual: Any) -> bool:
    return isinstance(visual, dict) and visual.get("type") == "video" and "frames" in visual


def is_ruled_video(visual: Any) -> bool:
    return isinstance(visual, dict) and visual.get("type") == "video" and "rule" in visual
