"""Dyn-Bench (QA part) for lmms-eval: docs from local ``multi_json`` + ``frames``, the official prompt, per category.

The paper's "overall" is the mean of the three category accuracies; plain accuracy over all questions is reported
next to it as ``accuracy``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from lmms_eval_dsr.benchmarks import DYN_BENCH_HINT, DYN_CATEGORIES, list_frames, load_dyn_bench
from lmms_eval_dsr.prompts import dyn_bench_prompt, think_prompt
from lmms_eval_dsr.scoring import accuracy_of_group, group_accuracy, score_choice
from lmms_eval_dsr.task import LocalBenchmarkTask
from lmms_eval_dsr.visuals import frame_video

METRICS = (
    "overall", "accuracy", "per_category", "camera_object", "inter_object", "object_scene", "missing_media",
    "latent_blocks",
)
CATEGORY_NAMES = {name: name for name in DYN_CATEGORIES.values()}


class DynBenchTask(LocalBenchmarkTask):
    """Dyn-Bench read from ``dataset_kwargs.root`` or ``DYN_BENCH_ROOT``."""

    load_benchmark = staticmethod(load_dyn_bench)
    download_hint = DYN_BENCH_HINT


def dyn_doc_to_visual(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The scene's frames as one video (the official evaluation feeds them to Qwen2.5-VL as a video, not as images)."""
    return [frame_video(list_frames(doc["frames_dir"]))]


def dyn_doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, Any] | None = None) -> str:
    """The official prompt, or the think-with-imagery prompt when the task sets ``prompt_style: think``."""
    if (lmms_eval_specific_kwargs or {}).get("prompt_style") == "think":
        return think_prompt(doc["question"], doc["options"])
    return dyn_bench_prompt(doc["question"], doc["options"])


def dyn_process_results(doc: dict[str, Any], results: list[str]) -> dict[str, dict[str, Any]]:
    record = score_choice(doc, results[0], doc["category"])
    return {key: record for key in METRICS}


def dyn_aggregate_per_category(records: list[dict[str, Any]]) -> dict[str, float]:
    return group_accuracy(records, CATEGORY_NAMES)


aggregate_camera_object = partial(accuracy_of_group, group="Camera-Object")
aggregate_inter_object = partial(accuracy_of_group, group="Inter-Object")
aggregate_object_scene = partial(accuracy_of_group, group="Object-Scene")
