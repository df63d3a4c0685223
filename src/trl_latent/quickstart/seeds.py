"""``--seeds``: the whole quickstart once per seed, and the spread of its numbers over them.

One run's interval covers the held-out questions' sampling, not the run's own randomness (the world, the initial
weights, the data order, 4DRL's sampled rollouts): with a few hundred training questions a different seed can move an
arm by several points. Each seed runs into ``<output_dir>/seed<k>/`` (a full quickstart: resumable, its own
report), then ``spread.md`` / ``spread.json`` in ``<output_dir>`` give, per arm and per paired difference, the value
of every seed, the mean, the sample standard deviation and the range. The perception tower does not depend on the
seed (its world has its own), so it is built once and shared.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path
from typing import Any

from .config import QuickstartConfig

SPREAD_FILES = ("spread.md", "spread.json")


def seed_config(config: QuickstartConfig, seed: int) -> QuickstartConfig:
    """The single-seed run of ``seed``: the same settings, its own folder."""
    return dataclasses.replace(config, seed=seed, seeds=[], output_dir=str(Path(config.output_dir) / f"seed{seed}"))


def summarise(values: list[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (0 for one value), min and max of ``values``, and the values."""
    return {"values": values, "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0, "min": min(values), "max": max(values)}


def spread(reports: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Per arm (overall accuracy, and how often its letter agrees with its own written conclusion) and per paired
    difference, the seeds' values summarised; ``reports`` maps a seed to its ``report.json``."""
    seeds = sorted(reports)
    first = reports[seeds[0]]
    arms = {}
    for arm in first["arms"]:
        arms[arm] = {"accuracy": summarise([reports[s]["arms"][arm]["overall"]["accuracy"] for s in seeds])}
        conclusions = [reports[s]["statistics"]["conclusions"].get(arm, {}).get("overall") for s in seeds]
        if all(c and c["recognised"] for c in conclusions):
            arms[arm]["agreement"] = summarise([c["agreeing"] / c["recognised"] for c in conclusions])
    pairs = []
    for index, pair in enumerate(first["statistics"]["paired"]):
        rows = [reports[s]["statistics"]["paired"][index]["groups"]["overall"] for s in seeds]
        excluding_zero = sum(row["ci95"][0] > 0 or row["ci95"][1] < 0 for row in rows)
        pairs.append({"a": pair["a"], "b": pair["b"], "difference": summarise([row["difference"] for row in rows]),
                      "ci95_excludes_zero": excluding_zero})
    return {"seeds": seeds, "arms": arms, "paired": pairs}


def _cell(summary: dict[str, Any], signed: bool = False) -> list[str]:
    form = "{:+.1f}" if signed else "{:.1f}"
    values = ", ".join(form.format(100 * v) for v in summary["values"])
    return [values, form.format(100 * summary["mean"]), f"{100 * summary['std']:.1f}",
            f"{form.format(100 * summary['min'])} to {form.format(100 * summary['max'])}"]


def spread_markdown(result: dict[str, Any]) -> str:
    seeds = ", ".join(map(str, result["seeds"]))
    lines = ["# trl-latent quickstart: spread over seeds", "",
             f"The same command with seeds {seeds} (each a full run under `seed<k>/`, with its own report): every "
             "arm's held-out accuracy and every paired difference per seed, their mean, sample standard deviation and "
             "range (percent, points for differences).", "",
             "| arm | accuracy per seed | mean | std | range | letter agrees with own conclusion (mean %) |",
             "|---|---|---|---|---|---|"]
    for arm, row in result["arms"].items():
        agreement = f"{100 * row['agreement']['mean']:.1f}" if "agreement" in row else "–"
        lines.append("| " + " | ".join([arm, *_cell(row["accuracy"]), agreement]) + " |")
    lines += ["", "| paired difference | per seed | mean | std | range | seeds whose 95% CI excludes 0 |",
              "|---|---|---|---|---|---|"]
    for pair in result["paired"]:
        lines.append("| " + " | ".join([f"{pair['b']} − {pair['a']}", *_cell(pair["difference"], signed=True),
                                        f"{pair['ci95_excludes_zero']} of {len(result['seeds'])}"]) + " |")
    return "\n".join(lines) + "\n"


def run_seeds(config: QuickstartConfig) -> Path:
    """Run the quickstart once per seed of ``config.seeds`` and write the spread; returns ``spread.md``."""
    from . import Quickstart

    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in SPREAD_FILES:  # an earlier spread may cover other seeds or settings
        (out / name).unlink(missing_ok=True)
    reports = {}
    for seed in config.seeds:
        single = seed_config(config, seed)
        Quickstart(single).run()
        reports[seed] = json.loads((Path(single.output_dir) / "report.json").read_text())
    result = spread(reports)
    (out / "spread.json").write_text(json.dumps(result, indent=2))
    path = out / "spread.md"
    path.write_text(spread_markdown(result))
    print(path.read_text(), flush=True)
    return path
