"""Per-question records and their aggregation: micro accuracy (the headline), per-group accuracy, macro average.

Every metric of a task aggregates the same per-question record, whose ``score`` (0–1; the mean over the responses
when lmms-eval's ``--repeats`` asks for several) is what lmms-eval 0.7.3 turns into CLT and clustered standard errors
(``cluster_key: video_id`` in the task YAML: questions on one video are not independent) and, with repeats, into its
stability metrics. Only the records a metric's value is the mean of carry ``score`` for that metric (all of them for
``accuracy``, one group's for a per-group metric), so no metric gets another metric's standard error. Values are
fractions (0–1) like lmms-eval's own accuracies; the summary shows percentages. Kept free of lmms-eval.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from trl_latent.answers import (
    dyn_bench_choice,
    extract_choice,
    official_dsr_choice,
    release_dsr_choice,
)
from trl_latent.tokens import LATENT_START

# DSR-Bench question types in the paper's order, with the display names of its tables.
DSR_TYPE_NAMES: dict[str, str] = {
    "abs_dis": "Abs Dis",
    "abs_dir": "Abs Dir",
    "abs_ori": "Abs Ori",
    "abs_spd": "Abs Spd",
    "abs_spd_comp": "Abs Spd Comp",
    "abs_dir_pred": "Abs Dir Pred",
    "rel_dis": "Rel Dis",
    "rel_dir": "Rel Dir",
    "rel_ori": "Rel Ori",
    "rel_spd": "Rel Spd",
    "rel_spd_comp": "Rel Spd Comp",
    "rel_dir_pred": "Rel Dir Pred",
    "non_temp": "Non-Temp Based",
}
UNTYPED = "untyped"
# What a model adapter returns for an inference that failed under ``errors: wrong``: no scorer reads a letter from it
# (the question is scored wrong, as the original evaluations do) and the ``failed_inference`` metric counts it.
INFERENCE_FAILED = "[inference failed]"

Record = Mapping[str, Any]
Extractor = Callable[[str, Sequence[str]], "str | None"]

# Protocol name → how a model output becomes an option letter (``None``: no answer), per benchmark.
DSR_EXTRACTORS: dict[str, Extractor] = {
    "official": lambda text, options: official_dsr_choice(text),
    "4dthinker": lambda text, options: release_dsr_choice(text),
    "think": extract_choice,
}
DYN_EXTRACTORS: dict[str, Extractor] = {
    "official": lambda text, options: dyn_bench_choice(text),
    "think": extract_choice,
}


def extractor_for(protocols: Mapping[str, Extractor], protocol: str) -> Extractor:
    if protocol not in protocols:
        raise ValueError(f"unknown protocol {protocol!r}; this benchmark has {sorted(protocols)}")
    return protocols[protocol]


def responses(results: Sequence[Any]) -> list[str]:
    """The responses lmms-eval hands ``process_results``: the task keeps them unfiltered, so ``results[0]`` is the list
    of one response per repeat (a bare string when a caller passes one)."""
    first = results[0]
    return [str(r) for r in first] if isinstance(first, (list, tuple)) else [str(r) for r in results]


def score_choice(doc: Mapping[str, Any], outputs: Sequence[str], group: str, extract: Extractor) -> dict[str, Any]:
    """The per-question record every metric of a task aggregates (also what lmms-eval logs per sample).

    ``outputs`` holds one response per repeat; ``correct`` counts the right ones and ``score`` is their share; a failed
    inference (:data:`INFERENCE_FAILED`) has no prediction and counts in ``failed``. ``chance`` is what a uniform
    guess over the options scores.
    """
    if not outputs:
        raise ValueError(f"question {doc['question_id']}: no response to score")
    failed = [text.startswith(INFERENCE_FAILED) for text in outputs]
    predictions = [None if fail else extract(text, doc["options"]) for text, fail in zip(outputs, failed)]
    correct = sum(p == doc["answer"] for p in predictions)
    return {
        "question_id": doc["question_id"],
        "video_id": doc.get("video_id", doc.get("scene")),
        "question": doc["question"],
        "options": list(doc["options"]),
        "group": group or UNTYPED,
        "answer": doc["answer"],
        "prediction": predictions[0],
        "predictions": predictions,
        "correct": correct,
        "responses": len(outputs),
        "score": correct / len(outputs),
        "chance": 1 / len(doc["options"]),
        "failed": sum(failed),
        "missing_media": int(doc.get("missing_media", 0)),
        "latent_blocks": sum(text.count(LATENT_START) for text in outputs) / len(outputs),
    }


def metric_records(record: dict[str, Any], metrics: Sequence[str], groups: Mapping[str, str]) -> dict[str, dict]:
    """One record per metric: ``score`` kept where the metric is the mean over this record (``accuracy``, and the
    per-group metric named after the record's group, ``groups`` mapping metric name → group key), dropped elsewhere
    so lmms-eval computes no standard error there that belongs to another metric. The question text and options stay
    on the ``accuracy`` record only: lmms-eval's samples file drops the doc, and a reader pairing questions across
    runs needs them once, not once per metric."""
    lean = {k: v for k, v in record.items() if k not in ("question", "options")}
    without_score = {k: v for k, v in lean.items() if k != "score"}
    kept = {m for m, g in groups.items() if g == record["group"]}
    return {m: record if m == "accuracy" else lean if m in kept else without_score for m in metrics}


def protocol_records(
    doc: Mapping[str, Any], results: Sequence[Any], *, protocol: str, extractors: Mapping[str, Extractor],
    group_field: str, metrics: Sequence[str], group_metrics: Mapping[str, str],
) -> dict[str, dict]:
    """A task's ``process_results``: the question scored under ``protocol``, one record per metric."""
    record = score_choice(doc, responses(results), doc[group_field], extractor_for(extractors, protocol))
    return metric_records({**record, "protocol": protocol}, metrics, group_metrics)


def _mean_score(records: Sequence[Record]) -> float:
    return sum(r["correct"] / r["responses"] for r in records) / len(records)


def accuracy(records: Sequence[Record]) -> float:
    """Micro accuracy: the share of correct answers over the evaluated questions (the papers' headline)."""
    if not records:
        raise ValueError("no scored questions to aggregate")
    return _mean_score(records)


def group_accuracy(records: Sequence[Record], names: Mapping[str, str] | None = None) -> dict[str, float]:
    """Accuracy per group, known groups first in ``names`` order (shown by display name), unknown keys after, sorted.

    Unknown keys (e.g. the synthetic set's ``cam_*`` types) pass through under their own name.
    """
    return {name: accuracy(group) for name, group in _grouped(records, names).items()}


def _grouped(records: Sequence[Record], names: Mapping[str, str] | None) -> dict[str, list[Record]]:
    """Records by group: known groups first in ``names`` order under their display names, unknown keys after, sorted."""
    names = names or {}
    by_group: dict[str, list[Record]] = {}
    for record in records:
        by_group.setdefault(record["group"], []).append(record)
    ordered = [g for g in names if g in by_group] + sorted(g for g in by_group if g not in names)
    return {names.get(g, g): by_group[g] for g in ordered}


def accuracy_of_group(records: Sequence[Record], group: str) -> float | None:
    """Accuracy of one group, ``None`` when the run has no question of that group."""
    selected = [r for r in records if r["group"] == group]
    return accuracy(selected) if selected else None


def macro_accuracy(records: Sequence[Record]) -> float:
    """Unweighted mean of the per-group accuracies over the groups present (Dyn-Bench's official "Overall")."""
    per_group = group_accuracy(records)
    if not per_group:
        raise ValueError("no scored questions to aggregate")
    return sum(per_group.values()) / len(per_group)


def group_chance(records: Sequence[Record], names: Mapping[str, str] | None = None) -> dict[str, float]:
    """Per group, what a uniform guess over each question's options scores (the chance level of its accuracy)."""
    return {name: sum(r["chance"] for r in group) / len(group) for name, group in _grouped(records, names).items()}


def failed_inference(records: Sequence[Record]) -> int:
    """Responses whose inference failed (scored wrong under ``errors: wrong``, as the original evaluations do)."""
    return sum(int(r["failed"]) for r in records)


def missing_media(records: Sequence[Record]) -> int:
    """Questions left out of the run because their video or frames are missing or undecodable (same on every record)."""
    return max((int(r["missing_media"]) for r in records), default=0)


def latent_blocks(records: Sequence[Record]) -> float:
    """Mean number of latent (mental imagery) blocks per answer; 0 for a stock model or a direct-answer prompt."""
    return sum(r["latent_blocks"] for r in records) / len(records) if records else 0.0
