"""Results table (markdown + JSON) and per-category bar charts from an lmms-eval results dict.

lmms-eval prints one row per metric; a paper table wants one row per benchmark with the headline score and its
standard error, the other accuracy and the per-type / per-category scores as columns, and a chart per benchmark.
Works on what ``simple_evaluate`` returns (or what lmms-eval's ``<date>_results.json`` holds: its ``results`` and
``n-samples``), so saved runs can be re-rendered. lmms-eval's values are fractions; the table shows percentages. ``n``
is the number of questions scored (lmms-eval's ``n-samples`` ``effective``: media-less questions are not among them,
they are the ``Skipped`` column; failed inferences are among them, scored wrong, and counted in ``Failed``).

Headlines follow the papers: DSR-Bench reports micro accuracy (4DThinker: 439/1413 = 31.1%), with the macro average
over types beside it; Dyn-Bench reports "Overall", the mean of its three category accuracies, with micro accuracy
beside it. Standard errors are lmms-eval's: clustered on the video when it could compute one, else the CLT one; the
Overall's combines the per-category errors (disjoint question sets): ``sqrt(Σ SE_c²) / C``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Task family by its group metric: (group dict metric, headline metric and label, other metric and label).
_FAMILIES = (
    ("per_type", ("accuracy", "Acc"), ("macro_accuracy", "Macro")),
    ("per_category", ("overall", "Overall"), ("accuracy", "Acc")),
)
_CATEGORY_METRICS = ("camera_object", "inter_object", "object_scene")


@dataclass
class TaskSummary:
    task: str
    headline_name: str
    headline: float | None  # percent
    headline_stderr: float | None  # percent
    other_name: str
    other: float | None
    other_stderr: float | None
    groups: dict[str, float] = field(default_factory=dict)
    chance: dict[str, float] = field(default_factory=dict)  # percent a uniform guess gets, per group
    samples: int = 0
    missing_media: int = 0
    failed_inference: int = 0
    latent_blocks: float = 0.0


def _metric(metrics: dict[str, Any], name: str) -> Any:
    return metrics.get(f"{name},none")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not math.isnan(value) else None


def stderr_of(metrics: dict[str, Any], name: str) -> float | None:
    """lmms-eval's clustered standard error of a metric, else its CLT one, else its bootstrap one (fractions)."""
    for kind in ("stderr_clustered", "stderr_clt", "stderr"):
        value = _number(_metric(metrics, f"{name}_{kind}"))
        if value is not None:
            return value
    return None


def _overall_stderr(metrics: dict[str, Any]) -> float | None:
    errors = [stderr_of(metrics, name) for name in _CATEGORY_METRICS if _number(_metric(metrics, name)) is not None]
    if not errors or any(e is None for e in errors):
        return None
    return math.sqrt(sum(e * e for e in errors)) / len(errors)  # type: ignore[operator]


def _percent(value: float | None) -> float | None:
    return None if value is None else 100.0 * value


def summarize(output: dict[str, Any]) -> list[TaskSummary]:
    """One summary per task of an lmms-eval output (``results`` + ``n-samples``) that reports our metrics; other tasks
    in the same run are left out."""
    summaries = []
    counts = output.get("n-samples") or {}
    for task, metrics in output["results"].items():
        family = next((f for f in _FAMILIES if isinstance(_metric(metrics, f[0]), dict)), None)
        if family is None:
            continue
        groups_key, (head, head_label), (other, other_label) = family
        head_se = _overall_stderr(metrics) if head == "overall" else stderr_of(metrics, head)
        other_se = None if other == "macro_accuracy" else stderr_of(metrics, other)
        summaries.append(
            TaskSummary(
                task=task,
                headline_name=head_label,
                headline=_percent(_number(_metric(metrics, head))),
                headline_stderr=_percent(head_se),
                other_name=other_label,
                other=_percent(_number(_metric(metrics, other))),
                other_stderr=_percent(other_se),
                groups={k: 100.0 * v for k, v in _metric(metrics, groups_key).items()},
                chance={k: 100.0 * v for k, v in (_metric(metrics, "chance") or {}).items()},
                samples=int((counts.get(task) or {}).get("effective") or 0),
                missing_media=int(_metric(metrics, "missing_media") or 0),
                failed_inference=int(_metric(metrics, "failed_inference") or 0),
                latent_blocks=float(_metric(metrics, "latent_blocks") or 0.0),
            )
        )
    return summaries


def _fmt(value: float | None, stderr: float | None = None) -> str:
    if value is None:
        return "–"
    return f"{value:.1f}" if stderr is None else f"{value:.1f} ± {stderr:.1f}"


def markdown_table(summaries: list[TaskSummary]) -> str:
    """One table per task: headline ± SE, the other accuracy, one column per group, n scored, skipped (no media),
    failed inferences (scored wrong), latent blocks."""
    blocks = []
    for s in summaries:
        header = [
            "Task", f"{s.headline_name} (± SE)", s.other_name, *s.groups, "n", "Skipped", "Failed", "Latent blocks",
        ]
        row = [s.task, _fmt(s.headline, s.headline_stderr), _fmt(s.other, s.other_stderr),
               *(_fmt(v) for v in s.groups.values()), str(s.samples), str(s.missing_media), str(s.failed_inference),
               f"{s.latent_blocks:.2f}"]
        blocks.append("\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header), "| " + " | ".join(row) + " |"]))
    return "\n\n".join(blocks) + "\n"


def bar_chart(summary: TaskSummary, path: str | Path, title: str | None = None) -> Path:
    """A bar per group plus the headline bar (with its standard error), in percent, each group's chance level (a
    uniform guess over its options) marked by a dashed line over its bar; saved as PNG (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [*summary.groups, summary.headline_name]
    values = [*summary.groups.values(), summary.headline or 0.0]
    errors = [0.0] * len(summary.groups) + [summary.headline_stderr or 0.0]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(labels) + 1.5), 3.6))
    bars = ax.bar(range(len(labels)), values, yerr=errors, capsize=3,
                  color=["#4c72b0"] * len(summary.groups) + ["#dd8452"])
    ax.bar_label(bars, fmt="%.1f", fontsize=7)
    for index, group in enumerate(summary.groups):
        if group in summary.chance:
            ax.hlines(summary.chance[group], index - 0.4, index + 0.4, colors="black", linestyles="dashed",
                      label="chance" if index == 0 else None)
    if summary.chance:
        ax.legend(fontsize=7, loc="upper right")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title or summary.task)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(output: dict[str, Any], output_dir: str | Path, title: str | None = None, prefix: str = ""
                 ) -> dict[str, Path]:
    """Write ``<prefix>summary.md``, ``<prefix>summary.json`` and ``<prefix><task>.png`` per task to ``output_dir``
    (``prefix``: the ``<date>_`` of lmms-eval's files of the same run); return their paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    summaries = summarize(output)
    written = {"markdown": output_dir / f"{prefix}summary.md", "json": output_dir / f"{prefix}summary.json"}
    written["markdown"].write_text(markdown_table(summaries))
    written["json"].write_text(json.dumps([asdict(s) for s in summaries], indent=2))
    for s in summaries:
        written[s.task] = bar_chart(s, output_dir / f"{prefix}{s.task}.png", f"{title} · {s.task}" if title else None)
    return written
