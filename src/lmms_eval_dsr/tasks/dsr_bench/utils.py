"""DSR-Bench for lmms-eval: docs from a local ``benchmark.parquet`` + videos, the official prompt, per-type scores.

Every metric receives the same per-question record (as vsibench does) and aggregates the part it reports.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from lmms_eval_dsr.benchmarks import DSR_BENCH_HINT, load_dsr_bench
from lmms_eval_dsr.prompts import dsr_bench_prompt, think_prompt
from lmms_eval_dsr.scoring import DSR_TYPE_NAMES, accuracy_of_group, group_accuracy, score_choice
from lmms_eval_dsr.task import LocalBenchmarkTask

METRICS = ("accuracy", "macro_accuracy", "per_type", "missing_media", "latent_blocks", *DSR_TYPE_NAMES)


class DSRBenchTask(LocalBenchmarkTask):
    """DSR-Bench read from ``dataset_kwargs`` ``root`` / ``parquet`` / ``video_root`` or ``DSR_BENCH_ROOT``."""

    load_benchmark = staticmethod(load_dsr_bench)
    download_hint = DSR_BENCH_HINT


def dsr_doc_to_visual(doc: dict[str, Any]) -> list[str]:
    return [doc["video"]]


def dsr_doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, Any] | None = None) -> str:
    """The official prompt, or the think-with-imagery prompt when the task sets ``prompt_style: think``."""
    if (lmms_eval_specific_kwargs or {}).get("prompt_style") == "think":
        return think_prompt(doc["question"], doc["options"])
    return dsr_bench_prompt(doc["question"], doc["options"])


def dsr_process_results(doc: dict[str, Any], results: list[str]) -> dict[str, dict[str, Any]]:
    record = score_choice(doc, results[0], doc["type"])
    return {key: record for key in METRICS}


def dsr_aggregate_per_type(records: list[dict[str, Any]]) -> dict[str, float]:
    """Accuracy per question type under the paper's display names; unknown types (e.g. ``cam_*``) pass through."""
    return group_accuracy(records, DSR_TYPE_NAMES)


aggregate_abs_dis = partial(accuracy_of_group, group="abs_dis")
aggregate_abs_dir = partial(accuracy_of_group, group="abs_dir")
aggregate_abs_ori = partial(accuracy_of_group, group="abs_ori")
aggregate_abs_spd = partial(accuracy_of_group, group="abs_spd")
aggregate_abs_spd_comp = partial(accuracy_of_group, group="abs_spd_comp")
aggregate_abs_dir_pred = partial(accuracy_of_group, group="abs_dir_pred")
aggregate_rel_dis = partial(accuracy_of_group, group="rel_dis")
aggregate_rel_dir = partial(accuracy_of_group, group="rel_dir")
aggregate_rel_ori = partial(accuracy_of_group, group="rel_ori")
aggregate_rel_spd = partial(accuracy_of_group, group="rel_spd")
aggregate_rel_spd_comp = partial(accuracy_of_group, group="rel_spd_comp")
aggregate_rel_dir_pred = partial(accuracy_of_group, group="rel_dir_pred")
aggregate_non_temp = partial(accuracy_of_group, group="non_temp")
