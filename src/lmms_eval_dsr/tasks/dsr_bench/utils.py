"""DSR-Bench for lmms-eval: docs from a local ``benchmark.parquet`` + videos, scored under one of three protocols.

``official`` (task ``dsr_bench``) is DSR-Bench as its authors score it, ``4dthinker`` (``dsr_bench_4dthinker``) the
4DThinker release's evaluation, ``think`` (``dsr_bench_think``) ours; each protocol fixes the prompt, the frame rule
(through ``doc_to_visual``) and the answer extraction (through ``process_results``), and its YAML the decoding.
Every metric receives the same per-question record (as vsibench does) and aggregates the part it reports.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from lmms_eval_dsr.benchmarks import DSR_BENCH_HINT, load_dsr_bench
from lmms_eval_dsr.prompts import (
    dsr_bench_prompt,
    protocol_prompt,
    release_prompt,
    think_prompt,
)
from lmms_eval_dsr.scoring import (
    DSR_EXTRACTORS,
    DSR_TYPE_NAMES,
    accuracy_of_group,
    group_accuracy,
    group_chance,
    macro_accuracy,
    protocol_records,
)
from lmms_eval_dsr.task import LocalBenchmarkTask
from lmms_eval_dsr.visuals import video_file

METRICS = ("accuracy", "macro_accuracy", "per_type", "missing_media", "failed_inference", "chance", "latent_blocks",
           *DSR_TYPE_NAMES)
GROUP_METRICS = {key: key for key in DSR_TYPE_NAMES}
PROMPTS = {"official": dsr_bench_prompt, "4dthinker": release_prompt, "think": think_prompt}


class DSRBenchTask(LocalBenchmarkTask):
    """DSR-Bench read from ``dataset_kwargs`` ``root`` / ``parquet`` / ``video_root`` / ``ids_file`` or
    ``DSR_BENCH_ROOT``."""

    load_benchmark = staticmethod(load_dsr_bench)
    download_hint = DSR_BENCH_HINT


def dsr_doc_to_visual(doc: dict[str, Any]) -> list[str]:
    """The video path: the model's own sampling settings apply (``think``)."""
    return [doc["video"]]


def dsr_doc_to_visual_official(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [video_file(doc["video"], "qwen")]


def dsr_doc_to_visual_4dthinker(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [video_file(doc["video"], "release")]


def dsr_doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, Any] | None = None) -> str:
    return protocol_prompt(PROMPTS, doc, lmms_eval_specific_kwargs)


_process_results = partial(
    protocol_records, extractors=DSR_EXTRACTORS, group_field="type", metrics=METRICS, group_metrics=GROUP_METRICS)
dsr_process_results_official = partial(_process_results, protocol="official")
dsr_process_results_4dthinker = partial(_process_results, protocol="4dthinker")
dsr_process_results_think = partial(_process_results, protocol="think")


def _release_table(records: list[dict[str, Any]]) -> bool:
    """The 4DThinker release's table (``dsr_eval.py``) keeps its 13 types only; the other protocols keep every type."""
    return bool(records) and records[0].get("protocol") == "4dthinker"


def dsr_aggregate_per_type(records: list[dict[str, Any]]) -> dict[str, float]:
    """Accuracy per question type under the paper's display names; unknown types (e.g. ``cam_*``) pass through,
    except in the release's table."""
    if _release_table(records):
        records = [r for r in records if r["group"] in DSR_TYPE_NAMES]
    return group_accuracy(records, DSR_TYPE_NAMES)


def dsr_macro_accuracy(records: list[dict[str, Any]]) -> float | None:
    """Mean of the per-type accuracies; under ``4dthinker`` the release's "Avg": its 13 types that have questions
    (``None`` when the run has none of them)."""
    if _release_table(records):
        known = [r for r in records if r["group"] in DSR_TYPE_NAMES]
        return macro_accuracy(known) if known else None
    return macro_accuracy(records)


def dsr_aggregate_chance(records: list[dict[str, Any]]) -> dict[str, float]:
    """Chance level (a uniform guess) per type, keyed like the accuracies."""
    return group_chance(records, DSR_TYPE_NAMES)


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
