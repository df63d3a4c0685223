"""``--seeds``: the whole quickstart once per seed, and the spread of its numbers over them.

One run's interval covers the held-out questions' sampling, not the run's own randomness (the world, the initial
weights, the data order, 4DRL's sampled rollouts): with a few hundred training questions a different seed can move an
arm by several points. Each seed runs into ``<output_dir>/seed<k>/`` (a full quickstart: resumable, its own
report), then ``spread.md`` / ``spread.json`` in ``<output_dir>`` give, per arm and per paired difference, the value
of every seed, the mean, the sample standard deviation and the range, and two intervals for a difference: over the
seeds (a t interval of the seeds' values, each training run one draw: what another run of the command would give)
and pooled over every seed's questions (a paired bootstrap with the trained models held fixed, so narrower whenever
runs differ more than their questions' sampling says; a claim about the recipe should rest on the first). The
latent arms' imagination gap, content dependence and headroom are summarised the same way. The perception tower does
not depend on the seed (its world has its own), so it is built once and shared.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import QuickstartConfig
from .diagnostics import HEADROOM, MEASURES
from .stats import ArmOutcomes, load_outcomes, mean_ci95, on_questions_of, pooled_difference

SPREAD_FILES = ("spread.md", "spread.json")


def seed_config(config: QuickstartConfig, seed: int) -> QuickstartConfig:
    """The single-seed run of ``seed``: the same settings, its own folder."""
    return dataclasses.replace(config, seed=seed, seeds=[], output_dir=str(Path(config.output_dir) / f"seed{seed}"))


def summarise(values: list[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (0 for one value), min and max of ``values``, the values, and (from two
    values) the mean's 95% t interval (``ci95``)."""
    result = {"values": values, "mean": statistics.fmean(values),
              "std": statistics.stdev(values) if len(values) > 1 else 0.0, "min": min(values), "max": max(values)}
    if len(values) > 1:
        result["ci95"] = list(mean_ci95(values))
    return result


@dataclass(frozen=True)
class SeedOutcomes:
    """One seed's per-question answers: each arm's evaluation and each latent arm's diagnosis variants, by label."""

    arms: dict[str, ArmOutcomes]
    diagnoses: dict[str, dict[str, ArmOutcomes]]

    @classmethod
    def load(cls, arms: dict[str, Path], diagnoses: dict[str, dict[str, Path]]) -> SeedOutcomes:
        """Each file read once (every latent arm's headroom names the text-only arm's evaluation again)."""
        loaded: dict[Path, ArmOutcomes] = {}

        def load(path: Path) -> ArmOutcomes:
            if path not in loaded:
                loaded[path] = load_outcomes(path)
            return loaded[path]

        return cls({label: load(path) for label, path in arms.items()},
                   {label: {variant: load(path) for variant, path in variants.items()}
                    for label, variants in diagnoses.items()})


def spread(reports: dict[int, dict[str, Any]], outcomes: dict[int, SeedOutcomes] | None = None) -> dict[str, Any]:
    """Per arm (overall accuracy, how often its letter agrees with its own written conclusion, and a latent arm's
    diagnoses) and per paired difference, the seeds' values summarised; ``reports`` maps a seed to its
    ``report.json``. With ``outcomes`` (the same seeds' answers) every difference is also pooled over the seeds'
    questions (``pooled``: :func:`.stats.pooled_difference`, bootstrapped from seed 0)."""
    seeds = sorted(reports)
    first = reports[seeds[0]]
    arms = {}
    for arm in first["arms"]:
        arms[arm] = {"accuracy": summarise([reports[s]["arms"][arm]["overall"]["accuracy"] for s in seeds])}
        conclusions = [reports[s]["statistics"]["conclusions"].get(arm, {}).get("overall") for s in seeds]
        if all(c and c["recognised"] for c in conclusions):
            arms[arm]["agreement"] = summarise([c["agreeing"] / c["recognised"] for c in conclusions])
        if "diagnostics" in first["arms"][arm]:
            for measure, (a, b) in {**MEASURES, **HEADROOM}.items():
                rows = [reports[s]["arms"][arm]["diagnostics"]["by_family"]["overall"][measure] for s in seeds]
                # on B's questions: text-only answered all of them, a diagnosis maybe only the first (its limit)
                answers = [(on_questions_of(outcomes[s].diagnoses[arm][a], outcomes[s].diagnoses[arm][b]),
                            outcomes[s].diagnoses[arm][b]) for s in seeds] if outcomes else None
                arms[arm][measure] = _summarise_differences(rows, answers)
    pairs = []
    for index, pair in enumerate(first["statistics"]["paired"]):
        rows = [reports[s]["statistics"]["paired"][index]["groups"]["overall"] for s in seeds]
        pairs.append({"a": pair["a"], "b": pair["b"], **_summarise_differences(rows, [
            (outcomes[s].arms[pair["a"]], outcomes[s].arms[pair["b"]]) for s in seeds] if outcomes else None)})
    return {"seeds": seeds, "arms": arms, "paired": pairs}


def _summarise_differences(rows: list[dict[str, Any]], runs: list[tuple[ArmOutcomes, ArmOutcomes]] | None
                           ) -> dict[str, Any]:
    """The seeds' paired differences (``rows``: each seed's overall row) summarised, how many exclude 0, and (with
    ``runs``) the difference pooled over them."""
    result = {"difference": summarise([row["difference"] for row in rows]),
              "ci95_excludes_zero": sum(row["ci95"][0] > 0 or row["ci95"][1] < 0 for row in rows)}
    if runs:
        result["pooled"] = pooled_difference(runs).to_dict()
    return result


def _cell(summary: dict[str, Any], signed: bool = False) -> list[str]:
    form = "{:+.1f}" if signed else "{:.1f}"
    values = ", ".join(form.format(100 * v) for v in summary["values"])
    return [values, form.format(100 * summary["mean"]), f"{100 * summary['std']:.1f}",
            f"{form.format(100 * summary['min'])} to {form.format(100 * summary['max'])}"]


def spread_markdown(result: dict[str, Any]) -> str:
    seeds = ", ".join(map(str, result["seeds"]))
    lines = ["# trl-latent quickstart: spread over seeds", "",
             (f"The same command with seeds {seeds} (each a full run under `seed<k>/`, with its own report): every "
              "arm's held-out accuracy and every paired difference per seed, their mean, sample standard deviation "
              "and range (percent, points for differences)."), "",
             "| arm | accuracy per seed | mean | std | range | letter agrees with own conclusion (mean %) |",
             "|---|---|---|---|---|---|"]
    for arm, row in result["arms"].items():
        agreement = f"{100 * row['agreement']['mean']:.1f}" if "agreement" in row else "–"
        lines.append("| " + " | ".join([arm, *_cell(row["accuracy"]), agreement]) + " |")
    header = ("per seed | mean | std | range | over seeds (95% t interval) | seeds whose 95% CI excludes 0 | pooled "
              "over the seeds' questions (95% CI, McNemar p, n) |")
    lines += ["", ("Two intervals per difference: over seeds treats each seed's training run as one draw (what another "
                   "run of the command would give); pooled holds the trained models fixed and resamples the seeds' "
                   "videos."), "", f"| paired difference | {header}", "|---|---|---|---|---|---|---|---|"]
    for pair in result["paired"]:
        lines.append(_difference_row(f"{pair['b']} − {pair['a']}", pair, len(result["seeds"])))
    diagnosed = [(arm, measure, row[measure]) for arm, row in result["arms"].items()
                 for measure in {**MEASURES, **HEADROOM} if measure in row]
    if diagnosed:
        lines += ["", ("Latent arms' diagnoses (imagination gap: oracle − self-fed; content dependence: self-fed − "
                       "swapped; headroom: oracle − text-only), points:"), "", f"| arm | diagnosis | {header}",
                  "|---|---|---|---|---|---|---|---|---|"]
        for arm, measure, row in diagnosed:
            lines.append(_difference_row(f"{arm} | {measure.replace('_', ' ')}", row, len(result["seeds"])))
    return "\n".join(lines) + "\n"


def _difference_row(name: str, row: dict[str, Any], seeds: int) -> str:
    pooled = row.get("pooled")
    cell = "–" if pooled is None else (
        f"{100 * pooled['difference']:+.1f} ({100 * pooled['ci95'][0]:+.1f} to {100 * pooled['ci95'][1]:+.1f}), "
        f"p {pooled['p_mcnemar']:.2g}, n {pooled['n']}")
    difference = row["difference"]
    over_seeds = (f"{100 * difference['ci95'][0]:+.1f} to {100 * difference['ci95'][1]:+.1f}"
                  if "ci95" in difference else "–")
    return "| " + " | ".join([name, *_cell(difference, signed=True), over_seeds,
                              f"{row['ci95_excludes_zero']} of {seeds}", cell]) + " |"


def run_seeds(config: QuickstartConfig) -> Path:
    """Run the quickstart once per seed of ``config.seeds`` and write the spread; returns ``spread.md``."""
    from . import Quickstart

    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in SPREAD_FILES:  # an earlier spread may cover other seeds or settings
        (out / name).unlink(missing_ok=True)
    reports, outcomes = {}, {}
    for seed in config.seeds:
        quickstart = Quickstart(seed_config(config, seed))
        quickstart.run()
        reports[seed] = json.loads((quickstart.out / "report.json").read_text())
        outcomes[seed] = SeedOutcomes.load(quickstart.samples(), quickstart.diagnosis_samples())
    result = spread(reports, outcomes)
    (out / "spread.json").write_text(json.dumps(result, indent=2))
    path = out / "spread.md"
    path.write_text(spread_markdown(result))
    print(path.read_text(), flush=True)
    return path
