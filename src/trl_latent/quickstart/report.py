"""The quickstart's report: accuracy with 95% confidence intervals per arm and question type, training curves.

A tiny model trained for minutes on CPU sits close to chance, so a bare accuracy would mislead; every number is shown
with its Wilson interval (binomial, honest at small n and near 0/1) next to the chance level of the 4-option MCQs.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .stats import (
    OVERALL,
    ConclusionStats,
    PairedDifference,
    conclusion_diagnostics,
    load_outcomes,
    paired_difference,
)

CHANCE = 0.25
Z_95 = 1.959963984540054


@dataclass(frozen=True)
class Score:
    correct: int
    total: int
    letters: dict[str, int] = field(default_factory=dict)
    """How often each option letter was the prediction: a model that never commits to one scores 0 for that reason,
    and one that always gives the same letter scores about chance whatever it reasons."""
    answers: dict[str, int] = field(default_factory=dict)
    """How often each letter is the right answer."""
    baseline: int = 0
    """Questions a guesser gets right that answers each question type's most frequent letter without looking."""

    @property
    def chance(self) -> float:
        """The guesser's accuracy, and at least 25%: about 25% when letters are balanced (``option_order: rotate``),
        the share of each type's most frequent answer when each letter always names the same answer (``fixed``)."""
        return max(CHANCE, self.baseline / self.total) if self.total else CHANCE

    @property
    def answered(self) -> int:
        return sum(self.letters.values())

    def letter_bias(self) -> str:
        """The most frequent predicted letter and its share of the answers, e.g. ``B 100%``."""
        if not self.letters:
            return "–"
        letter, count = max(sorted(self.letters.items()), key=lambda item: item[1])
        return f"{letter} {100 * count / self.answered:.0f}%"

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else float("nan")

    def wilson(self, z: float = Z_95) -> tuple[float, float]:
        """The Wilson score interval of the accuracy."""
        if not self.total:
            return (float("nan"), float("nan"))
        n, p = self.total, self.accuracy
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        # the bounds are exactly 0 at p = 0 and 1 at p = 1; floating point would leave them a hair off
        low = 0.0 if self.correct == 0 else centre - half
        high = 1.0 if self.correct == self.total else centre + half
        return (low, high)


def scores_from_samples(path: str | Path) -> dict[str, Score]:
    """Per-type and ``overall`` scores from an lmms-eval ``samples_<task>.jsonl`` of our DSR task.

    Questions whose media are missing are not in the file (the records' ``missing_media`` is the run's count of them),
    so every line is scored.
    """
    correct: Counter[str] = Counter()
    total: Counter[str] = Counter()
    letters: dict[str, Counter[str]] = {}
    answers: dict[str, Counter[str]] = {}
    with open(path) as handle:
        for line_number, line in enumerate(handle, 1):
            sample = json.loads(line)
            record = sample.get("accuracy")
            if not isinstance(record, dict) or "correct" not in record:
                raise ValueError(f"{path}:{line_number}: no per-question 'accuracy' record (is this a dsr_bench log?)")
            for key in ("overall", record["group"]):
                correct[key] += int(record["correct"])
                total[key] += 1
                letters.setdefault(key, Counter())
                answers.setdefault(key, Counter())
                if record.get("answer") is not None:
                    answers[key][record["answer"]] += 1
                if record.get("prediction") is not None:
                    letters[key][record["prediction"]] += 1
    baseline = {key: max(answers[key].values(), default=0) for key in total if key != "overall"}
    baseline["overall"] = sum(baseline.values())
    return {key: Score(correct[key], total[key], dict(letters[key]), dict(answers[key]), baseline[key]) for key in total}


@dataclass(frozen=True)
class Statistics:
    """The paired comparisons and conclusion diagnostics of a run, with the settings that reproduce them."""

    seed: int
    n_boot: int
    paired: dict[tuple[str, str], dict[str, PairedDifference]]
    """(arm A, arm B) → B − A per ``overall`` and question type."""
    conclusions: dict[str, dict[str, ConclusionStats]]

    def to_json(self) -> dict[str, Any]:
        """The ``report.json`` form: fractions, intervals as ``[low, high]``, the seed and bootstrap size."""
        return {
            "seed": self.seed, "n_boot": self.n_boot,
            "interval": "95% percentile interval, paired bootstrap resampling whole videos",
            "test": "McNemar exact, two-sided (binomial on the questions only one arm gets right)",
            "paired": [{"a": a, "b": b, "groups": {g: d.to_dict() for g, d in rows.items()}}
                       for (a, b), rows in self.paired.items()],
            "conclusions": {arm: {g: c.to_dict() for g, c in rows.items()} for arm, rows in self.conclusions.items()},
        }


def arm_statistics(
    samples: Mapping[str, str | Path], pairs: Sequence[tuple[str, str]], *, seed: int = 0, n_boot: int = 10_000
) -> Statistics:
    """Paired differences B − A for each ``(A, B)`` of ``pairs`` and every arm's conclusion diagnostics.

    ``samples`` maps an arm's label to its ``samples_dsr_bench_think.jsonl``; each pair names two of its labels.
    """
    unknown = sorted({arm for pair in pairs for arm in pair} - set(samples))
    if unknown:
        raise ValueError(f"pairs name arm(s) {unknown} without a samples file; arms: {sorted(samples)}")
    outcomes = {arm: load_outcomes(path) for arm, path in samples.items()}
    paired = {(a, b): paired_difference(outcomes[a], outcomes[b], n_boot=n_boot, seed=seed) for a, b in pairs}
    return Statistics(seed, n_boot, paired, {arm: conclusion_diagnostics(o) for arm, o in outcomes.items()})


def log_history(output_dir: str | Path) -> list[dict[str, Any]]:
    """The Trainer's logged metrics (``trainer_state.json``), training entries only."""
    path = Path(output_dir) / "trainer_state.json"
    if not path.exists():
        return []
    history = json.loads(path.read_text()).get("log_history", [])
    return [entry for entry in history if "step" in entry and "train_runtime" not in entry]


def _pct(value: float) -> str:
    return "–" if math.isnan(value) else f"{100 * value:.1f}"


def _points(value: float) -> str:
    return f"{100 * value:+.1f}".replace("-", "−")


def _share(part: int, whole: int) -> str:
    return f"{part}/{whole} ({_pct(part / whole)}%)" if whole else f"{part}/{whole}"


def _paired_cell(d: PairedDifference) -> str:
    return f"{_points(d.difference)} [{_points(d.ci95[0])}, {_points(d.ci95[1])}] p={d.p_mcnemar:.2g} n={d.n}"


def _conclusion_cell(c: ConclusionStats) -> str:
    agreement = _pct(c.agreeing / c.recognised) if c.recognised else "–"
    return f"{_pct(c.letter_correct / c.n)} / {_pct(c.conclusion_correct / c.n)}, {agreement}, {c.n}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def _types(rows: Mapping[Any, Mapping[str, Any]]) -> list[str]:
    return sorted({t for groups in rows.values() for t in groups if t != OVERALL})


def paired_markdown(stats: Statistics) -> list[str]:
    """The "Paired differences" section: one row per comparison, overall then per question type."""
    lines = ["", "## Paired differences", "",
             (f"Accuracy of the second arm minus the first on the same questions, in points. 95% interval: paired "
              f"bootstrap resampling whole videos ({stats.n_boot} replicates, seed {stats.seed}), since questions on "
              "one video are not independent; p: McNemar's exact test on the questions only one arm gets right."), ""]
    overall = [[f"{b} − {a}", f"{_pct(d.accuracy_a)} → {_pct(d.accuracy_b)}", _points(d.difference),
                f"{_points(d.ci95[0])} to {_points(d.ci95[1])}", f"{d.p_mcnemar:.3g}", f"{d.b_only} / {d.a_only}",
                f"{d.n} ({d.videos})"]
               for (a, b), rows in stats.paired.items() for d in [rows[OVERALL]]]
    lines += _table(["comparison", "accuracy (%)", "difference", "95% CI", "McNemar p", "right only in 2nd / 1st",
                     "n (videos)"], overall)
    types = _types(stats.paired)
    if types:
        lines += ["", "Per question type (difference [95% CI] McNemar p, n):", ""]
        lines += _table(["comparison", *types], [
            [f"{b} − {a}", *(_paired_cell(rows[t]) if t in rows else "–" for t in types)]
            for (a, b), rows in stats.paired.items()])
    return lines


def conclusions_markdown(stats: Statistics) -> list[str]:
    """The "Conclusion in the reasoning" section: the option named inside ``<think>`` against truth and letter."""
    lines = ["", "## Conclusion in the reasoning vs the answer letter", "",
             ("The option whose text the reasoning inside `<think>` names last is the model's conclusion (none when "
              "it names no option). Conclusion accuracy above letter accuracy with low agreement means the model sees "
              "the motion but does not pick its letter; both near chance means it does not see the motion."), ""]
    overall = []
    for arm, rows in stats.conclusions.items():
        c = rows[OVERALL]
        low, high = Score(c.conclusion_correct, c.n).wilson()
        overall.append([arm, _pct(c.letter_correct / c.n), _pct(c.conclusion_correct / c.n),
                        f"{_pct(low)}–{_pct(high)}", _share(c.recognised, c.n), _share(c.agreeing, c.recognised),
                        str(c.n)])
    lines += _table(["arm", "letter accuracy (%)", "conclusion accuracy (%)", "95% CI", "conclusion recognised",
                     "letter agrees with conclusion", "n"], overall)
    types = _types(stats.conclusions)
    if types:
        lines += ["", "Per question type (letter / conclusion accuracy %, agreement %, n):", ""]
        lines += _table(["type", *stats.conclusions], [
            [t, *(_conclusion_cell(rows[t]) if t in rows else "–" for rows in stats.conclusions.values())]
            for t in types])
    return lines


def perception_markdown(fit: Mapping[str, Any]) -> list[str]:
    """What the pretrained vision tower the arms started from reads from frames it never trained on."""
    heldout = fit["heldout"]
    rows = [[name.removeprefix("r2_").replace("_", " "), f"{value:.2f}"] for name, value in heldout.items()
            if name.startswith("r2_")]
    lines = ["", "## Perception pretraining", "",
             (f"Every arm starts from a vision tower pretrained on {fit['clips']['train']} synthetic clips (dense "
              f"ground truth, no questions); on {fit['clips']['heldout']} held-out clips it explains this share of "
              f"each per-patch quantity's variance (R²), and predicts which colours cover each patch with binary "
              f"cross-entropy {heldout['presence_bce']:.3f}:"), ""]
    return lines + _table(["quantity", "R²"], rows)


def markdown(
    arms: dict[str, dict[str, Score]], timings: dict[str, float], settings: dict[str, Any], plots: list[str],
    statistics: Statistics | None = None, perception: Mapping[str, Any] | None = None,
) -> str:
    """The report text: headline table, per-type table, the paired differences and conclusion diagnostics when
    ``statistics`` is given, timings, the plots (files next to it), then the settings."""
    intro = ("Synthetic 4D world → datagen → training → held-out synthetic DSR-style benchmark "
             "(lmms-eval task `dsr_bench_think`, greedy decoding).")
    lines = ["# trl-latent quickstart report", "", intro]
    chance = next(iter(arms.values()))["overall"].chance if arms else CHANCE
    lines += ["", "## Held-out accuracy", "",
              (f"Chance level: {100 * chance:.1f}% — what answering each question type's most frequent letter "
               f"without looking scores on these questions, and at least {100 * CHANCE:.0f}% (4 options)."), "",
              "| arm | accuracy (%) | 95% CI | n | above chance? | answered with a letter | most frequent letter |",
              "|---|---|---|---|---|---|---|"]
    for arm, scores in arms.items():
        s = scores["overall"]
        low, high = s.wilson()
        verdict = "yes" if low > s.chance else ("below" if high < s.chance else "not distinguishable")
        lines.append(f"| {arm} | {_pct(s.accuracy)} | {_pct(low)}–{_pct(high)} | {s.total} | {verdict} | "
                     f"{s.answered}/{s.total} | {s.letter_bias()} |")
    types = sorted({t for scores in arms.values() for t in scores if t != "overall"})
    if types:
        lines += ["", "## Per question type (accuracy %, 95% CI, n)", "", "| type | chance | " + " | ".join(arms) + " |",
                  "|---|---|" + "---|" * len(arms)]
        for t in types:
            cells = [_pct(next(scores[t] for scores in arms.values() if t in scores).chance)]
            for scores in arms.values():
                s = scores.get(t)
                cells.append("–" if s is None else f"{_pct(s.accuracy)} ({_pct(s.wilson()[0])}–{_pct(s.wilson()[1])}, {s.total})")
            lines.append(f"| {t} | " + " | ".join(cells) + " |")
    if statistics is not None:
        lines += paired_markdown(statistics) + conclusions_markdown(statistics)
    if perception is not None:
        lines += perception_markdown(perception)
    lines += ["", "## Time per stage (s)", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {stage} | {seconds:.1f} |" for stage, seconds in timings.items()]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{Path(name).stem}]({name})" for name in plots]
    lines += ["", "## Settings", ""] + [f"- **{key}**: {value}" for key, value in settings.items()]
    lines.append("")
    return "\n".join(lines)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(histories: dict[str, list[dict[str, Any]]], keys: tuple[str, ...], path: Path, title: str) -> Path | None:
    """One panel per metric key, one line per run; ``None`` when no run logged any of the keys."""
    present = [k for k in keys if any(k in e for h in histories.values() for e in h)]
    if not present:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(present), figsize=(4 * len(present), 3.2), squeeze=False)
    for ax, key in zip(axes[0], present):
        for run, history in histories.items():
            points = [(e["step"], e[key]) for e in history if key in e]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=3, label=run)
        ax.set_xlabel("step")
        ax.set_title(key, fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_accuracy(arms: dict[str, dict[str, Score]], path: Path) -> Path:
    """Grouped bars per question type (and overall) with 95% CI error bars and the chance line."""
    plt = _pyplot()
    groups = sorted({t for scores in arms.values() for t in scores if t != "overall"}) + ["overall"]
    width = 0.8 / max(1, len(arms))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(groups) * max(1, len(arms)) / 2 + 2), 3.8))
    for i, (arm, scores) in enumerate(arms.items()):
        xs, ys, errs = [], [], [[], []]
        for j, group in enumerate(groups):
            s = scores.get(group)
            if s is None or not s.total:
                continue
            low, high = s.wilson()
            xs.append(j + (i - (len(arms) - 1) / 2) * width)
            ys.append(100 * s.accuracy)
            errs[0].append(100 * (s.accuracy - low))
            errs[1].append(100 * (high - s.accuracy))
        ax.bar(xs, ys, width, yerr=errs, capsize=2, label=arm)
    ax.axhline(100 * CHANCE, color="grey", linestyle="--", linewidth=1, label="25% (4 options)")
    ax.set_xticks(range(len(groups)), groups, rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("accuracy (%)")
    ax.legend(fontsize=7)
    ax.set_title("held-out synthetic benchmark (95% Wilson CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
