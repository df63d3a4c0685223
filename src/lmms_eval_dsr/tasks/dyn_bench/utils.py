"""Dyn-Bench (QA part) for lmms-eval: docs from local ``multi_json`` + ``frames``, scored per protocol.

``official`` (task ``dyn_bench``) is Dyn-Bench's own scorer: every frame as one video, its prompt, the first-word rule;
its "Overall" is the mean of the three category accuracies. ``think`` (``dyn_bench_think``) is ours. Plain (micro)
accuracy over all questions is reported next to Overall as ``accuracy``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from lmms_eval_dsr.benchmarks import (
    DYN_BENCH_HINT,
    DYN_CATEGORIES,
    list_frames,
    load_dyn_bench,
)
from lmms_eval_dsr.media import qwen_pixel_cap
from lmms_eval_dsr.prompts import dyn_bench_prompt, protocol_prompt, think_prompt
from lmms_eval_dsr.scoring import (
    DYN_EXTRACTORS,
    accuracy_of_group,
    group_accuracy,
    group_chance,
    protocol_records,
)
from lmms_eval_dsr.task import LocalBenchmarkTask
from lmms_eval_dsr.visuals import PIXEL, frame_video

METRICS = (
    "overall", "accuracy", "per_category", "camera_object", "inter_object", "object_scene", "missing_media",
    "failed_inference", "chance", "latent_blocks",
)
GROUP_METRICS = {"camera_object": "Camera-Object", "inter_object": "Inter-Object", "object_scene": "Object-Scene"}
CATEGORY_NAMES = {name: name for name in DYN_CATEGORIES.values()}
PROMPTS = {"official": dyn_bench_prompt, "think": think_prompt}
# qwen-vl-utils' handling of a frame list, as Dyn-Bench's Qwen2.5-VL runner uses it: declared 2 fps, at least
# 128·28² per frame, at most qwen_pixel_cap of the (even) frame count.
OFFICIAL_FPS, OFFICIAL_MIN_PIXELS = 2.0, 128 * PIXEL


class DynBenchTask(LocalBenchmarkTask):
    """Dyn-Bench read from ``dataset_kwargs`` ``root`` / ``ids_file`` or ``DYN_BENCH_ROOT``."""

    load_benchmark = staticmethod(load_dyn_bench)
    download_hint = DYN_BENCH_HINT


def dyn_doc_to_visual(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The scene's frames as one video, capped and sized by the model's settings (``think``)."""
    return [frame_video(list_frames(doc["frames_dir"]))]


def dyn_doc_to_visual_official(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every frame of the scene as one video, as Dyn-Bench's runner passes them; qwen-vl-utils pads an odd count with
    the last frame (so does the processor) and caps each frame's pixels by the padded count."""
    frames = list_frames(doc["frames_dir"])
    cap = qwen_pixel_cap(len(frames) + len(frames) % 2, OFFICIAL_MIN_PIXELS)
    return [frame_video(frames, OFFICIAL_FPS, all_frames=True, pixels=(OFFICIAL_MIN_PIXELS, cap))]


def dyn_doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, Any] | None = None) -> str:
    return protocol_prompt(PROMPTS, doc, lmms_eval_specific_kwargs)


_process_results = partial(
    protocol_records, extractors=DYN_EXTRACTORS, group_field="category", metrics=METRICS, group_metrics=GROUP_METRICS)
dyn_process_results_official = partial(_process_results, protocol="official")
dyn_process_results_think = partial(_process_results, protocol="think")


def dyn_aggregate_per_category(records: list[dict[str, Any]]) -> dict[str, float]:
    return group_accuracy(records, CATEGORY_NAMES)


def dyn_aggregate_chance(records: list[dict[str, Any]]) -> dict[str, float]:
    """Chance level (a uniform guess) per type, keyed like the accuracies."""
    return group_chance(records, CATEGORY_NAMES)


aggregate_camera_object = partial(accuracy_of_group, group="Camera-Object")
aggregate_inter_object = partial(accuracy_of_group, group="Inter-Object")
aggregate_object_scene = partial(accuracy_of_group, group="Object-Scene")
