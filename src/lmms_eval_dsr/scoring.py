"""Per-question records and their aggregation: overall accuracy, accuracy per question type, macro average.

Both benchmarks report the mean over groups (DSR-Bench over its 13 question types, Dyn-Bench over its 3 categories)
next to or instead of plain accuracy, so one group-aware aggregation serves both. Scores are percentages (0–100),
as the papers report them. Kept free of lmms-eval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trl_latent.answers import extract_choice
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

Record = Mapping[str, Any]


def score_choice(doc: Mapping[str, Any], output: str, group: str) -> dict[str, Any]:
    """The per-question record every metric of a task aggregates (also what lmms-eval logs per sample)."""
    predicted = extract_choice(output, doc["options"])
    return {
        "question_id": doc["question_id"],
        "group": group or UNTYPED,
        "answer": doc["answer"],
        "prediction": predicted,
        "correct": int(predicted == doc["answer"]),
        "missing_media": int(doc.get("missing_media", 0)),
        "latent_blocks": output.count(LATENT_START),
    }


def accuracy(records: Sequence[Record]) -> float:
    """Percentage of correct records; an empty list is an error rather than a silent 0."""
    if not records:
        raise ValueError("no scored questions to aggregate")
    return 100.0 * sum(r["correct"] for r in records) / len(records)


def group_accuracy(records: Sequence[Record], names: Mapping[str, str] | None = None) -> dict[str, float]:
    """Accuracy per group, known groups first in ``names`` order (shown by display name), unknown keys after, sorted.

    Unknown keys (e.g. the synthetic set's ``cam_*`` types) pass through under their own name.
    """
    names = names or {}
    by_group: dict[str, list[Record]] = {}
    for record in records:
        by_group.setdefault(record["group"], []).append(record)
    ordered = [g for g in names if g in by_group] + sorted(g for g in by_group if g not in names)
    return {names.get(g, g): accuracy(by_group[g]) for g in ordered}


def accuracy_of_group(records: Sequence[Record], group: str) -> float | None:
    """Accuracy of one group, ``None`` when the run has no question of that group."""
    selected = [r for r in records if r["group"] == group]
    return accuracy(selected) if selected else None


def macro_accuracy(records: Sequence[Record]) -> float:
    """Unweighted mean of the per-group accuracies over the groups present."""
    per_group = group_accuracy(records)
    if not per_group:
        raise ValueError("no scored questions to aggregate")
    return sum(per_group.values()) / len(per_group)


def missing_media(records: Sequence[Record]) -> int:
    """Questions left out of the run because their video or frames are missing (the same count on every record)."""
    return max((int(r["missing_media"]) for r in records), default=0)


def latent_blocks(records: Sequence[Record]) -> float:
    """Mean number of latent (mental imagery) blocks per answer; 0 for a stock model or a direct-answer prompt."""
    return sum(r["latent_blocks"] for r in records) / len(records) if records else 0.0
