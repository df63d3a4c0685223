"""Results table (markdown + JSON) and per-category bar charts from an lmms-eval results dict.

lmms-eval prints one row per metric; a paper table wants one row per benchmark with the headline score, the plain
accuracy and the per-type / per-category scores as columns, and a chart per benchmark. Works on the ``results``
mapping that ``simple_evaluate`` returns (or that its ``results.json`` holds), so saved runs can be re-rendered.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# (headline metric, its label) per task family; the group dict is `per_type` (DSR) or `per_category` (Dyn).
_HEADLINES = (("macro_accuracy", "Macro"), ("overall", "Overall"))
_GROUP_KEYS = ("per_type", "per_category")


@dataclass
class TaskSummary:
    task: str
    headline_name: str
    headline: float | None
    accuracy: float | None
    groups: dict[str, float] = field(default_factory=dict)
    missing_media: int = 0
    latent_blocks: float = 0.0


def _metric(metrics: dict[str, Any], name: str) -> Any:
    return metrics.get(f"{name},none")


def summarize(results: dict[str, dict[str, Any]]) -> list[TaskSummary]:
    """One summary per task that reports our metrics; other tasks in the same run are left out."""
    summaries = []
    for task, metrics in results.items():
        groups = next((_metric(metrics, k) for k in _GROUP_KEYS if isinstance(_metric(metrics, k), dict)), None)
        if groups is None:
            continue
        name, label = next(((n, lbl) for n, lbl in _HEADLINES if _metric(metrics, n) is not None), ("accuracy", "Acc"))
        summaries.append(
            TaskSummary(
                task=task,
                headline_name=label,
                headline=_metric(metrics, name),
                accuracy=_metric(metrics, "accuracy"),
                groups=dict(groups),
                missing_media=int(_metric(metrics, "missing_media") or 0),
                latent_blocks=float(_metric(metrics, "latent_blocks") or 0.0),
            )
        )
    return summaries


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def markdown_table(summaries: list[TaskSummary]) -> str:
    """One table per task: headline, accuracy, one column per group, skipped count, mean latent blocks."""
    blocks = []
    for s in summaries:
        header = ["Task", s.headline_name, "Acc", *s.groups, "Skipped", "Latent blocks"]
        row = [s.task, _fmt(s.headline), _fmt(s.accuracy), *(_fmt(v) for v in s.groups.values()),
               str(s.missing_media), f"{s.latent_blocks:.2f}"]
        blocks.append("\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header), "| " + " | ".join(row) + " |"]))
    return "\n\n".join(blocks) + "\n"


def bar_chart(summary: TaskSummary, path: str | Path, title: str | None = None) -> Path:
    """A bar per group plus the headline bar, in percent, saved as PNG (matplotlib's Agg backend: no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [*summary.groups, summary.headline_name]
    values = [*summary.groups.values(), summary.headline or 0.0]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(labels) + 1.5), 3.6))
    bars = ax.bar(range(len(labels)), values, color=["#4c72b0"] * len(summary.groups) + ["#dd8452"])
    ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title or summary.task)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(results: dict[str, dict[str, Any]], output_dir: str | Path, title: str | None = None) -> dict[str, Path]:
    """Write ``summary.md``, ``summary.json`` and ``<task>.png`` per task to ``output_dir``; return their paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    summaries = summarize(results)
    written = {"markdown": output_dir / "summary.md", "json": output_dir / "summary.json"}
    written["markdown"].write_text(markdown_table(summaries))
    written["json"].write_text(json.dumps([asdict(s) for s in summaries], indent=2))
    for s in summaries:
        written[s.task] = bar_chart(s, output_dir / f"{s.task}.png", f"{title} · {s.task}" if title else None)
    return written
