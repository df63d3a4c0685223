"""Per-question outcomes of an arm and the paired comparison of two arms on the same held-out questions.

Arms evaluated on the same questions are compared question by question: a per-arm interval would hide that both arms
face the same easy and hard questions, so two overlapping intervals can still hold a clear paired difference. The
difference gets a 95% interval from a bootstrap that resamples whole videos, because the questions asked about one
video share its scene and are not independent (resampling single questions would give too narrow an interval when
an arm's errors cluster by video), and McNemar's exact test on the questions only one arm gets right.

The conclusion diagnostics separate "cannot see the motion" from "cannot pick the letter": the option the model
names at the end of its ``<think>`` is scored against the ground truth apart from the letter it answers.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lmms_eval_dsr.scoring import responses
from trl_latent.answers import stated_conclusion

OVERALL = "overall"

_DOC_FIELDS = ("video_id", "question", "options")
_RECORD_FIELDS = ("group", "answer", "prediction")

Key = tuple[str, str]
"""A question's identity across arms: (video id, question text). The row index is not used: it changes when the
benchmark is re-exported or filtered, the video and wording do not."""


@dataclass(frozen=True)
class Outcome:
    """One evaluated question of one arm (its first and only response)."""

    video: str
    group: str
    options: tuple[str, ...]
    answer: str
    prediction: str | None
    response: str
    line: int
    doc_id: int | None = None
    """lmms-eval's index of the question in its task (``None`` in a log without it)."""

    @property
    def correct(self) -> bool:
        return self.prediction == self.answer


@dataclass(frozen=True)
class ArmOutcomes:
    path: Path
    questions: dict[Key, Outcome]
    missing_media: int
    """Questions of the benchmark left out of this run for missing or undecodable media (a count: lmms-eval never sees
    them, so they are absent from the samples file rather than flagged in it)."""


def load_outcomes(path: str | Path) -> ArmOutcomes:
    """Per-question outcomes from an lmms-eval ``samples_<task>.jsonl`` of our DSR task, keyed by video and question.

    Raises ``ValueError`` naming the file and line on a line without the per-question ``accuracy`` record, with more
    than one response (the paired statistics compare one answer per question), or repeating a question.
    """
    path = Path(path)
    questions: dict[Key, Outcome] = {}
    missing = 0
    with open(path) as handle:
        for line_number, line in enumerate(handle, 1):
            where = f"{path}:{line_number}"
            try:
                sample = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{where}: not a JSON line ({error})") from None
            # lmms-eval's tracker drops the doc from the samples file; our accuracy record carries its fields
            record, doc = sample.get("accuracy"), sample.get("doc") or sample.get("accuracy")
            if record is None or doc is None:
                raise ValueError(f"{where}: no 'doc' and per-question 'accuracy' record (is this a dsr_bench log?)")
            absent = [f"doc.{f}" for f in _DOC_FIELDS if f not in doc] + [
                f"accuracy.{f}" for f in _RECORD_FIELDS if f not in record]
            if absent or not (sample.get("filtered_resps") or sample.get("resps")):
                raise ValueError(f"{where}: missing field(s) {absent or ['filtered_resps']}")
            texts = responses(sample.get("filtered_resps") or sample["resps"])
            if len(texts) != 1:
                raise ValueError(f"{where}: {len(texts)} responses; the paired statistics need one per question "
                                 "(evaluate without --repeats)")
            key = (str(doc["video_id"]), str(doc["question"]).strip())
            if key in questions:
                raise ValueError(f"{where}: question {key[1]!r} on video {key[0]} already at line "
                                 f"{questions[key].line}; a question must be asked once per video")
            questions[key] = Outcome(video=key[0], group=record["group"], options=tuple(doc["options"]),
                                     answer=record["answer"], prediction=record["prediction"], response=texts[0],
                                     line=line_number, doc_id=sample.get("doc_id"))
            missing = max(missing, int(record.get("missing_media", 0)))
    if not questions:
        raise ValueError(f"{path}: no evaluated question")
    return ArmOutcomes(path, questions, missing)


def paired_keys(a: ArmOutcomes, b: ArmOutcomes) -> list[Key]:
    """The questions both arms answered, in ``a``'s order.

    A question answered by one arm only is dropped when the other arm's run reports at least that many questions
    skipped for missing media; otherwise the arms were evaluated on different question sets and the comparison is
    refused (``ValueError`` naming both files). Both arms must agree on each shared question's options and answer.
    """
    only_a = [k for k in a.questions if k not in b.questions]
    only_b = [k for k in b.questions if k not in a.questions]
    if len(only_a) > b.missing_media or len(only_b) > a.missing_media:
        example = (only_a or only_b)[0]
        raise ValueError(
            f"{a.path} and {b.path} hold different questions: {len(only_a)} only in the first, {len(only_b)} only in "
            f"the second (missing media: {a.missing_media} / {b.missing_media}), e.g. {example[1]!r} on video "
            f"{example[0]}; compare arms evaluated on the same benchmark and --limit")
    keys = [k for k in a.questions if k in b.questions]
    for key in keys:
        qa, qb = a.questions[key], b.questions[key]
        if (qa.options, qa.answer, qa.group) != (qb.options, qb.answer, qb.group):
            raise ValueError(f"{a.path}:{qa.line} and {b.path}:{qb.line}: the same question differs in options, "
                             f"answer or type; the arms were evaluated on different benchmarks")
    return keys


def mcnemar_exact(b_only: int, a_only: int) -> float:
    """Two-sided exact McNemar p-value: under "no difference" each discordant question is equally likely to favour
    either arm, so the smaller count is Binomial(b_only + a_only, 1/2); the p-value doubles its tail (at most 1)."""
    n = b_only + a_only
    tail = sum(math.comb(n, k) for k in range(min(b_only, a_only) + 1))
    return min(1.0, 2 * tail / 2**n)


def t_quantile_975(df: int) -> float:
    """The 97.5th percentile of Student's t with ``df`` degrees of freedom, for a 95% interval of a mean over a few
    seeds. Exact for integer ``df`` without scipy (not a core dependency): P(|T| ≤ t) has a closed form as a finite
    series in θ = atan(t / √df) (Abramowitz & Stegun 26.7.3–4), solved for 0.95 by bisection."""
    if df < 1:
        raise ValueError(f"a t interval needs at least 1 degree of freedom (2 values), got {df}")

    def central(t: float) -> float:  # P(|T| <= t)
        theta = math.atan(t / math.sqrt(df))
        cos2, term, total = math.cos(theta) ** 2, 1.0, 1.0
        if df % 2:
            for k in range(1, (df - 1) // 2):  # 1 + (2/3)cos² + (2·4)/(3·5)cos⁴ + …, up to cos^(df-3)
                term *= cos2 * (2 * k) / (2 * k + 1)
                total += term
            return 2 / math.pi * (theta + (math.sin(theta) * math.cos(theta) * total if df > 1 else 0.0))
        for k in range(1, df // 2):  # 1 + (1/2)cos² + (1·3)/(2·4)cos⁴ + …, up to cos^(df-2)
            term *= cos2 * (2 * k - 1) / (2 * k)
            total += term
        return math.sin(theta) * total

    low, high = 0.0, 1.0
    while central(high) < 0.95:
        high *= 2
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (middle, high) if central(middle) < 0.95 else (low, middle)
    return (low + high) / 2


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """95% t interval of the mean of ``values``, each one independent draw (e.g. one seed's whole training run):
    unlike a pooled question bootstrap, it covers how much another run of the same command would move."""
    t = t_quantile_975(len(values) - 1)  # first: it names the error for a single value
    mean, half = statistics.fmean(values), t * statistics.stdev(values) / math.sqrt(len(values))
    return (mean - half, mean + half)


@dataclass(frozen=True)
class PairedDifference:
    """Accuracy of arm B minus arm A on the same ``n`` questions (over ``videos`` videos, each run's counted apart
    when runs are pooled), as fractions."""

    n: int
    videos: int
    accuracy_a: float
    accuracy_b: float
    ci95: tuple[float, float]
    b_only: int
    """Questions only B gets right."""
    a_only: int
    """Questions only A gets right."""
    p_mcnemar: float

    @property
    def difference(self) -> float:
        return self.accuracy_b - self.accuracy_a

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "videos": self.videos, "accuracy_a": self.accuracy_a, "accuracy_b": self.accuracy_b,
                "difference": self.difference, "ci95": list(self.ci95), "b_only": self.b_only,
                "a_only": self.a_only, "p_mcnemar": self.p_mcnemar}


def on_questions_of(a: ArmOutcomes, b: ArmOutcomes) -> ArmOutcomes:
    """``a``'s outcomes on ``b``'s questions only: a diagnosis limited to the first questions of the benchmark
    (``diagnostics_limit``) against an arm evaluated on all of them. ``ValueError`` naming both files when ``a`` lacks
    one of them."""
    if missing := [key for key in b.questions if key not in a.questions]:
        raise ValueError(f"{a.path} lacks {len(missing)} of the questions of {b.path}, e.g. {missing[0][1]!r} on "
                         f"video {missing[0][0]}; compare arms evaluated on the same benchmark")
    return ArmOutcomes(a.path, {key: a.questions[key] for key in b.questions}, a.missing_media)


def cluster_bootstrap_ci(
    clusters: list[str], differences: np.ndarray, n_boot: int, rng: np.random.Generator
) -> tuple[float, float]:
    """95% percentile interval of the mean per-question difference, resampling whole clusters with replacement.

    Each replicate draws as many clusters as there are (a video drawn twice counts twice) and takes the mean over all
    the questions of the drawn clusters, so questions of one video always enter or leave together.
    """
    names, index = np.unique(np.asarray(clusters), return_inverse=True)
    sums = np.bincount(index, weights=differences, minlength=len(names))
    sizes = np.bincount(index, minlength=len(names)).astype(float)
    drawn = rng.integers(0, len(names), size=(n_boot, len(names)))
    replicates = sums[drawn].sum(axis=1) / sizes[drawn].sum(axis=1)
    low, high = np.percentile(replicates, [2.5, 97.5])
    return (float(low), float(high))


def paired_difference(
    a: ArmOutcomes, b: ArmOutcomes, *, n_boot: int = 10_000, seed: int = 0
) -> dict[str, PairedDifference]:
    """B − A overall and per question type (``overall`` first, types sorted), each from its own questions.

    Every row draws its bootstrap from ``np.random.default_rng(seed)``, so a row does not depend on which other rows
    exist and the whole comparison reproduces from ``seed`` and ``n_boot``.
    """
    keys = paired_keys(a, b)
    groups = [OVERALL] + sorted({a.questions[k].group for k in keys})
    result = {}
    for group in groups:
        selected = [k for k in keys if group == OVERALL or a.questions[k].group == group]
        result[group] = _difference([a.questions[k].correct for k in selected],
                                    [b.questions[k].correct for k in selected],
                                    [a.questions[k].video for k in selected], n_boot, seed)
    return result


def pooled_difference(
    runs: Sequence[tuple[ArmOutcomes, ArmOutcomes]], *, n_boot: int = 10_000, seed: int = 0
) -> PairedDifference:
    """B − A over the questions of several runs together (``(A, B)`` per run, e.g. one run per seed).

    Each run's pair is matched as :func:`paired_difference` matches it; a video of one run is a cluster of its own
    (runs with different seeds render different worlds), so the bootstrap resamples (run, video) clusters and McNemar's
    test counts the discordant questions of every run. Runs of unequal size weigh by their questions.
    """
    right_a: list[bool] = []
    right_b: list[bool] = []
    clusters: list[str] = []
    for index, (a, b) in enumerate(runs):
        keys = paired_keys(a, b)
        right_a += [a.questions[k].correct for k in keys]
        right_b += [b.questions[k].correct for k in keys]
        clusters += [f"{index}/{a.questions[k].video}" for k in keys]
    if not clusters:
        raise ValueError("pooled_difference needs at least one run with a question both arms answered")
    return _difference(right_a, right_b, clusters, n_boot, seed)


def _difference(right_a: Sequence[bool], right_b: Sequence[bool], clusters: Sequence[str], n_boot: int,
                seed: int) -> PairedDifference:
    """B − A over paired per-question outcomes, bootstrapped over ``clusters`` from ``default_rng(seed)``."""
    a, b = np.asarray(right_a, dtype=float), np.asarray(right_b, dtype=float)
    b_only, a_only = int(np.sum(b > a)), int(np.sum(a > b))
    return PairedDifference(
        n=len(a), videos=len(set(clusters)), accuracy_a=float(a.mean()), accuracy_b=float(b.mean()),
        ci95=cluster_bootstrap_ci(list(clusters), b - a, n_boot, np.random.default_rng(seed)),
        b_only=b_only, a_only=a_only, p_mcnemar=mcnemar_exact(b_only, a_only))


@dataclass(frozen=True)
class ConclusionStats:
    """What an arm concluded in words against what it answered, over ``n`` questions."""

    n: int
    letter_correct: int
    recognised: int
    """Responses whose reasoning names one of the options."""
    conclusion_correct: int
    """Responses whose named option is the correct one (an unrecognised conclusion counts as wrong)."""
    agreeing: int
    """Responses with a recognised conclusion whose answer letter is that option's letter."""

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "letter_correct": self.letter_correct, "recognised": self.recognised,
                "conclusion_correct": self.conclusion_correct, "agreeing": self.agreeing}


def conclusion_diagnostics(arm: ArmOutcomes) -> dict[str, ConclusionStats]:
    """Per question type (``overall`` first): letter accuracy, conclusion accuracy, how often a conclusion is
    recognised, and how often the letter matches the model's own conclusion.

    A model that sees the motion but cannot pick the letter has conclusion accuracy above letter accuracy and low
    agreement; one that cannot see the motion has both near chance.
    """
    rows: dict[str, list[int]] = {}
    for outcome in arm.questions.values():
        stated = stated_conclusion(outcome.response, outcome.options)
        counts = (1, outcome.correct, stated is not None, stated == outcome.answer,
                  stated is not None and stated == outcome.prediction)
        for group in (OVERALL, outcome.group):
            rows[group] = [total + int(c) for total, c in zip(rows.get(group, [0] * 5), counts)]
    order = [OVERALL] + sorted(g for g in rows if g != OVERALL)
    return {group: ConclusionStats(*rows[group]) for group in order}
