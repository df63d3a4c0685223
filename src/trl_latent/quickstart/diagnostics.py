"""Does an arm use what its latents say? Held-out accuracy with self-fed, oracle and swapped latents.

Each latent arm's held-out answers are compared three ways, all with the prompts, frames and greedy decoding of its
lmms-eval run (the ``latent_qwen2_5_vl`` model's own input builder and decoding):

* ``self_fed``: the lmms-eval run itself — its logged answers, and the latents it fed back, which it saved
  (``save_latents``) so that the two passes below need not generate them again;
* ``oracle``: a question's latent positions receive its own imagery targets (the held-out question's imagery, which
  datagen renders for every question, pooled by the frozen tower exactly as DIFT pools its targets), in order; a
  latent position beyond the question's imagery feeds back as usual;
* ``swapped``: a question's latent positions receive the latents the model generated for another question (the one
  half the list away, moved on to a question about another video): in-distribution vectors with the wrong content.

With a counterfactual twin world (the quickstart's ``contrast_counterfactual*`` arms: the same clips, another future
after the frames the model sees), the questions whose twin has another answer are answered once more:

* ``twin``: a question's latent positions receive its twin's imagery (the same question about the twin clip, which
  agrees with every input frame and shows another end), scored against the twin's answer, beside ``twin_oracle``,
  the oracle answers of the same questions scored against the twin's answer too. ``steering = twin − twin_oracle``:
  how often the imagery alone moves the answer to the one it shows.

``imagination_gap = oracle − self_fed`` says how much better the model would answer if it imagined its imagery
exactly; ``content_dependence = self_fed − swapped`` how much its answers depend on what its latents say rather than
on their being there. Both come with the paired bootstrap interval and McNemar test of :mod:`.stats`, per family.
The fed-back norm ratio is the mean norm of the self-fed latents over the mean norm of the oracle targets.
:func:`target_probes` and :func:`self_fed_probes` add how much of the answer there is to read, in the imagery targets
and in the self-fed latents (:mod:`.probe`). The first depends only on the frozen tower, the imagery kind, K and the
questions, not on the arm, and its training-set targets are the slow part: it is cached by exactly those inputs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from .stats import ArmOutcomes

VARIANTS = ("self_fed", "oracle", "swapped")
MEASURES = {"imagination_gap": ("self_fed", "oracle"), "content_dependence": ("swapped", "self_fed")}
"""Each diagnosis as the paired difference B − A of two variants' answers: ``(A, B)``."""
TEXT_ONLY = "text_only"
HEADROOM = {"headroom": (TEXT_ONLY, "oracle")}
"""The diagnosis against the text-only arm's answers (:func:`add_headroom`), on the diagnosed questions."""
TASK = "dsr_bench_think"
SAMPLES_FILE = f"samples_{TASK}.jsonl"
LATENTS_DIR = "latents"
"""Under an arm's lmms-eval output folder: the latents its run fed back (the model arg ``save_latents``)."""
STOP = "</answer>"  # the dsr_bench_think task's stop string


def heldout_imagery(data_dir: Path, rows: Sequence[dict[str, Any]]) -> list[list[Path]]:
    """The imagery images of each benchmark row's question, in CoT order (``[]`` when it has none).

    The benchmark parquet has no question id, so a row is matched to datagen's question by video and wording in
    ``qa/<camera|object>/<clip>.json``; its images are listed in ``imagery/<clip>.json``.
    """
    found: list[list[Path]] = []
    cache: dict[str, tuple[dict[str, str], dict[str, Any]]] = {}
    for row in rows:
        clip = row["video_id"]
        if clip not in cache:
            ids = {}
            for kind in ("camera", "object"):
                path = data_dir / "qa" / kind / f"{clip}.json"
                for qa in json.loads(path.read_text()) if path.is_file() else []:
                    ids[qa["question"].strip()] = qa["qa_id"]
            imagery_path = data_dir / "imagery" / f"{clip}.json"
            cache[clip] = (ids, json.loads(imagery_path.read_text()) if imagery_path.is_file() else {})
        ids, imagery = cache[clip]
        entry = imagery.get(ids.get(row["question"].strip(), ""), {})
        found.append([data_dir / "imagery" / clip / name for name in entry.get("images", [])])
    return found


def twin_questions(twin_data_dir: Path, rows: Sequence[dict[str, Any]], images: Sequence[Sequence[Path]]
                   ) -> list[tuple[int, dict[str, Any], list[Path]]]:
    """``(index, twin row, twin imagery)`` of each row whose question the twin world's benchmark asks with the same
    options and another answer, and whose twin imagery has as many images as its own (a negative image for image)."""
    from lmms_eval_dsr.benchmarks import load_dsr_bench

    twins = {(r["video_id"], r["question"].strip()): r for r in load_dsr_bench(twin_data_dir / "export" /
                                                                                "benchmark").rows}
    matched = [(index, twins.get((row["video_id"], row["question"].strip()))) for index, row in enumerate(rows)]
    matched = [(index, twin) for index, twin in matched if twin is not None and twin["answer"] != rows[index]["answer"]
               and list(twin["options"]) == list(rows[index]["options"])]
    shown = heldout_imagery(twin_data_dir, [twin for _, twin in matched])
    return [(index, twin, twin_images) for (index, twin), twin_images in zip(matched, shown)
            if images[index] and len(twin_images) == len(images[index])]


def swap_partner(rows: Sequence[dict[str, Any]]) -> list[int]:
    """For each row, the row whose latents it receives: half the list away, moved on until the video differs."""
    n = len(rows)
    partners = []
    for i in range(n):
        j = (i + n // 2) % n
        for step in range(n):
            candidate = (i + n // 2 + step) % n
            if rows[candidate]["video_id"] != rows[i]["video_id"]:
                j = candidate
                break
        partners.append(j)
    return partners


def evaluated(eval_dir: Path, rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[torch.Tensor]]:
    """Each row's answer in the lmms-eval run under ``eval_dir`` (its newest samples log) and the latents that run fed
    back for it (saved under ``eval_dir / LATENTS_DIR``); rows are matched to samples by video and question."""
    from lmms_eval_dsr.models.latent_qwen2_5_vl import LATENTS_FILE

    from ..cli_eval import latest_samples
    from .stats import load_outcomes

    samples = latest_samples(eval_dir, TASK)
    answered = load_outcomes(samples).questions
    files = sorted((eval_dir / LATENTS_DIR).glob(LATENTS_FILE.format(task=TASK, rank="*")))
    if not files:
        raise FileNotFoundError(f"{eval_dir / LATENTS_DIR}: no {TASK} latents; evaluate with the model arg "
                                f"save_latents={eval_dir / LATENTS_DIR}")
    fed: dict[int, list[torch.Tensor]] = {}
    for path in files:
        fed.update(torch.load(path))
    texts, latents = [], []
    for index, row in enumerate(rows):
        outcome = answered.get((str(row["video_id"]), str(row["question"]).strip()))
        if outcome is None or len(fed.get(outcome.doc_id, ())) != 1:
            raise ValueError(f"held-out question {index} ({row['video_id']}: {row['question']!r}) has no single answer "
                             f"with its latents in {samples} and {eval_dir / LATENTS_DIR} (evaluated with a smaller "
                             "--limit?)")
        texts.append(outcome.response)
        latents.append(fed[outcome.doc_id][0])
    return texts, latents


class _Runner:
    """The evaluated model, its inputs and its decoding, as the lmms-eval model builds them."""

    def __init__(self, model_dir: Path, *, fps: float, max_frames: int, max_pixels: int, max_new_tokens: int,
                 batch_size: int, device: str, dtype: str) -> None:
        from lmms_eval_dsr.models.latent_qwen2_5_vl import LatentQwen2_5_VL

        self.lmm = LatentQwen2_5_VL(pretrained=str(model_dir), device_map=device, dtype=dtype, batch_size=batch_size,
                                    fps=fps, max_frames=max_frames, max_pixels=max_pixels)
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size

    @property
    def spec(self) -> Any:
        return self.lmm.spec

    def answer(self, rows: Sequence[dict[str, Any]], given: Sequence[torch.Tensor | None]) -> list[str]:
        """Greedy responses (cut at the task's stop string) with ``given`` latents fed at each row's first latent
        positions (the model's own hidden state beyond them)."""
        from lmms_eval_dsr.models.latent_qwen2_5_vl import _cut_at_stop, _decode
        from lmms_eval_dsr.prompts import think_prompt

        from ..generation import generate_with_latents

        tokenizer = self.lmm.processor.tokenizer
        eos = self.lmm.model.generation_config.eos_token_id or tokenizer.eos_token_id
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        texts = []
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start : start + self.batch_size]
            inputs = self.lmm._build_inputs([think_prompt(r["question"], r["options"]) for r in batch],
                                            [[r["video"]] for r in batch])
            out = generate_with_latents(
                self.lmm.model, spec=self.spec, max_new_tokens=self.max_new_tokens, eos_token_id=eos, pad_token_id=pad,
                latent_inputs=list(given[start : start + len(batch)]), **inputs)
            for row in range(len(batch)):
                ids = out.completion_ids[row][out.completion_mask[row]].tolist()
                texts.append(_cut_at_stop(_decode(tokenizer, ids, self.lmm._latent_ids, self.lmm._special_ids), [STOP]))
        return texts

    @torch.no_grad()
    def targets(self, images: Sequence[Sequence[Path]], imagery_max_pixels: int, records_per_pass: int = 32
                ) -> list[torch.Tensor | None]:
        """Each row's imagery pooled to ``[N * K, H]`` by the frozen tower, as DIFT computes its targets (still images
        or motion pairs, as the checkpoint records); ``records_per_pass`` rows' images go through the tower at once
        (each image attends within itself, so batching changes no target beyond float rounding)."""
        from ..data import load_image
        from ..latents import compute_latent_targets, imagery_pairs, motion_pixel_values

        budget = {"shortest_edge": 28 * 28, "longest_edge": imagery_max_pixels}
        result: list[torch.Tensor | None] = [None] * len(images)
        rows = [i for i, paths in enumerate(images) if paths]
        for start in range(0, len(rows), records_per_pass):
            chunk = rows[start : start + records_per_pass]
            counts = [len(images[i]) for i in chunk]
            pictures = [load_image(str(p), 28 * 28, imagery_max_pixels, str(p)) for i in chunk for p in images[i]]
            encoded = self.lmm.processor.image_processor(images=pictures, size=budget, return_tensors="pt")
            pixels = encoded["pixel_values"]
            if self.spec.imagery == "motion":  # as DIFT made its targets (the checkpoint's latent_imagery)
                pixels = motion_pixel_values(pixels, encoded["image_grid_thw"], imagery_pairs(counts),
                                             self.lmm.processor.image_processor.temporal_patch_size)
            targets = compute_latent_targets(self.lmm.model, pixels.to(self.lmm.device),
                                             encoded["image_grid_thw"].to(self.lmm.device), self.spec.latent_size)
            for i, block in zip(chunk, targets.split(counts)):
                result[i] = block.flatten(0, 1).float()
        return result


def _write_samples(path: Path, rows: Sequence[dict[str, Any]], texts: Sequence[str]) -> None:
    """An lmms-eval-style samples file (doc, per-question record, response), readable by :func:`.stats.load_outcomes`."""
    from lmms_eval_dsr.tasks.dsr_bench.utils import dsr_process_results_think

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        for row, text in zip(rows, texts):
            record = dsr_process_results_think(row, [[text]])["accuracy"]
            handle.write(json.dumps({"doc": row, "accuracy": record, "filtered_resps": [[text]]}) + "\n")


def _mean_norm(vectors: Sequence[torch.Tensor | None]) -> float | None:
    norms = [v.norm(dim=-1) for v in vectors if v is not None and v.numel()]
    return float(torch.cat(norms).mean()) if norms else None


def run_diagnostics(
    model_dir: Path, benchmark_root: Path, data_dir: Path, eval_dir: Path, out_dir: Path, *, fps: float, max_frames: int,
    max_pixels: int, imagery_max_pixels: int, max_new_tokens: int, batch_size: int, limit: int | None, seed: int,
    probe_cache: Path | None = None, device: str = "cpu", dtype: str = "float32", twin_data_dir: Path | None = None,
) -> dict[str, Any]:
    """The first ``limit`` held-out questions (all: ``None``) as the model's lmms-eval run under ``eval_dir`` answered
    them self-fed (:func:`evaluated`), and answered again with oracle and with swapped latents; write one samples file
    per variant under ``out_dir`` and return (and write as ``diagnostics.json``) the summary of :func:`summarise`.
    ``probe_cache``: a folder keeping :func:`target_probes`' results for arms that share them. ``device`` and
    ``dtype``: the evaluation's (its device map and dtype), so the oracle and swapped answers differ from the
    self-fed ones by the latents alone, not by the arithmetic. ``twin_data_dir``: the datagen output of a
    counterfactual twin world, for the ``twin`` variant (see the module docstring)."""
    from lmms_eval_dsr.benchmarks import load_dsr_bench

    torch.manual_seed(seed)
    rows = load_dsr_bench(benchmark_root).rows
    rows = rows[:limit] if limit else rows
    runner = _Runner(model_dir, fps=fps, max_frames=max_frames, max_pixels=max_pixels,
                     max_new_tokens=max_new_tokens, batch_size=batch_size, device=device, dtype=dtype)
    if runner.spec is None:
        raise ValueError(f"{model_dir} has no latent tokens: diagnostics are for latent arms")
    images = heldout_imagery(data_dir, rows)
    if not any(images):
        raise ValueError(f"no held-out question of {benchmark_root} has imagery under {data_dir / 'imagery'}")
    oracle_vectors = runner.targets(images, imagery_max_pixels)
    self_texts, self_latents = evaluated(eval_dir, rows)
    oracle_texts = runner.answer(rows, oracle_vectors)
    partners = swap_partner(rows)
    swapped_texts = runner.answer(rows, [self_latents[j] for j in partners])
    for name, texts in zip(VARIANTS, (self_texts, oracle_texts, swapped_texts)):
        _write_samples(out_dir / name / SAMPLES_FILE, rows, texts)
    self_norm, target_norm = _mean_norm(self_latents), _mean_norm(oracle_vectors)
    summary = summarise(out_dir, seed=seed)
    if twin_data_dir is not None:
        summary["counterfactual"] = _twin_steering(runner, rows, twin_questions(twin_data_dir, rows, images),
                                                   oracle_texts, imagery_max_pixels, out_dir, seed)
    training_file = data_dir / "export" / "dift.jsonl"
    training = [json.loads(line) for line in open(training_file)]
    training_images = [[training_file.parent / path for path in record["image_output"]] for record in training]
    key = _probe_key(runner, training_file, training_images, rows, oracle_vectors, imagery_max_pixels)
    cached = probe_cache / f"{key}.json" if probe_cache else None
    if cached and cached.is_file():
        on_targets = json.loads(cached.read_text())
    else:
        training_targets = runner.targets(training_images, imagery_max_pixels)
        on_targets = target_probes(training, training_targets, rows, oracle_vectors, runner.spec.latent_size)
        if cached:
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_text(json.dumps(on_targets, indent=1))
    on_latents = self_fed_probes(rows, self_latents, runner.spec.latent_size)
    summary["probe"] = {family: {**on_targets.get(family, {}), **on_latents[family]} for family in on_latents}
    summary["norm_ratio"] = None if not (self_norm and target_norm) else self_norm / target_norm
    summary["closeness"] = closeness(self_latents, oracle_vectors, partners, runner.spec.latent_size)
    summary["feedback_norm"] = runner.spec.feedback_norm
    summary["feedback_centred"] = runner.spec.feedback_center is not None
    summary["questions_with_imagery"] = sum(bool(p) for p in images)
    summary["questions_with_latents"] = sum(bool(v.numel()) for v in self_latents)
    (out_dir / "diagnostics.json").write_text(json.dumps(summary, indent=2))
    return summary


def _twin_steering(runner: _Runner, rows: Sequence[dict[str, Any]],
                   twins: Sequence[tuple[int, dict[str, Any], list[Path]]], oracle_texts: Sequence[str],
                   imagery_max_pixels: int, out_dir: Path, seed: int) -> dict[str, Any]:
    """The ``twin`` and ``twin_oracle`` variants (module docstring) and their paired difference, ``steering``. The
    twin imagery is fed with the question's own video, so that the imagery is all that changes."""
    from .stats import OVERALL, load_outcomes, paired_difference

    if not twins:
        return {"n": 0}
    indices, twin_rows, twin_images = zip(*twins)
    twin_texts = runner.answer([rows[i] for i in indices], runner.targets(twin_images, imagery_max_pixels))
    _write_samples(out_dir / "twin" / SAMPLES_FILE, twin_rows, twin_texts)
    _write_samples(out_dir / "twin_oracle" / SAMPLES_FILE, twin_rows, [oracle_texts[i] for i in indices])
    steering = paired_difference(load_outcomes(out_dir / "twin_oracle" / SAMPLES_FILE),
                                 load_outcomes(out_dir / "twin" / SAMPLES_FILE), seed=seed)[OVERALL]
    return {"n": steering.n, "twin": steering.accuracy_b, "twin_oracle": steering.accuracy_a,
            "steering": steering.to_dict()}


def _probe_key(runner: _Runner, training_file: Path, training_images: Sequence[Sequence[Path]],
               rows: Sequence[dict[str, Any]], heldout_targets: Sequence[torch.Tensor | None],
               imagery_max_pixels: int) -> str:
    """What :func:`target_probes` reads: the frozen tower's weights, the imagery kind, K, the imagery size, the
    training file and its imagery images, and the held-out questions with their targets (which also pin the tower's
    numerics)."""
    from ..models import adapter_for

    digest = hashlib.sha256()
    tower = adapter_for(runner.lmm.model).vision_tower(runner.lmm.model)
    for name, tensor in sorted(tower.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    digest.update(json.dumps([runner.spec.imagery, runner.spec.latent_size, imagery_max_pixels]).encode())
    digest.update(training_file.read_bytes())
    for path in (path for paths in training_images for path in paths):
        digest.update(path.read_bytes())
    digest.update(json.dumps([[r["video_id"], r["question"], r["answer"], r["type"]] for r in rows]).encode())
    for vectors in heldout_targets:
        if vectors is not None:
            digest.update(vectors.contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:24]


def target_probes(training: Sequence[dict[str, Any]], training_targets: Sequence[torch.Tensor | None],
                  rows: Sequence[dict[str, Any]], heldout_targets: Sequence[torch.Tensor | None], latent_size: int
                  ) -> dict[str, dict[str, Any]]:
    """Per held-out family: how much of the answer the imagery targets carry (:mod:`.probe`), a probe fitted on the
    training questions' targets and scored on the held-out ones', with the majority floor."""
    from ..answers import extract_answer_span
    from .probe import majority_accuracy, probe_accuracy, question_features

    result = {}
    for family in sorted({row["type"] for row in rows}):
        train = [(question_features(t, latent_size), extract_answer_span(r["text_output"]).strip())
                 for r, t in zip(training, training_targets) if r["type"] == family and t is not None]
        test = [(question_features(t, latent_size), row["answer"])
                for row, t in zip(rows, heldout_targets) if row["type"] == family and t is not None]
        entry: dict[str, Any] = {"n_train": len(train), "n_heldout": len(test)}
        if train and test:
            train_y, test_y = [y for _, y in train], [y for _, y in test]
            entry["majority"] = majority_accuracy(train_y, test_y)
            entry["targets"] = probe_accuracy(torch.stack([x for x, _ in train]), train_y,
                                              torch.stack([x for x, _ in test]), test_y)
        result[family] = entry
    return result


def self_fed_probes(rows: Sequence[dict[str, Any]], self_latents: Sequence[torch.Tensor], latent_size: int
                    ) -> dict[str, dict[str, Any]]:
    """Per held-out family: how much of the answer the arm's own latents carry, by cross-validation over the held-out
    questions (:mod:`.probe`); needs 10 questions with at least one whole latent block. A block cut short by the
    token limit (a derailed answer) is left out: it is not an image's K latents."""
    from .probe import cross_validated_accuracy, question_features

    result = {}
    for family in sorted({row["type"] for row in rows}):
        fed = []
        for row, latents in zip(rows, self_latents):
            whole = latents[: len(latents) // latent_size * latent_size]
            if row["type"] == family and len(whole):
                fed.append((question_features(whole, latent_size), row["answer"]))
        entry: dict[str, Any] = {"n_self_fed": len(fed)}
        if len(fed) >= 10:
            entry["self_fed"] = cross_validated_accuracy(torch.stack([x for x, _ in fed]), [y for _, y in fed])
        result[family] = entry
    return result


def closeness(self_latents: Sequence[torch.Tensor], targets: Sequence[torch.Tensor | None], partners: Sequence[int],
              latent_size: int) -> dict[str, Any] | None:
    """Where the arm's own latents lie among the imagery targets, as mean cosines over the vectors of the questions
    whose latents have their targets' shape: to the question's own target (``own``), to its swap partner's when of the
    same shape (``other``), and to the mean target of each latent slot (``mean``); ``own_centred`` and
    ``other_centred`` compare both minus that mean, the part that differs between questions. Targets of one tower share
    most of their direction, so a model that imagines the same mean picture for every question is close to its own
    target in raw cosine (``own`` ≈ ``other``, ``mean`` above both) and far in centred cosine. ``None`` when no
    question has matching latents."""
    rows = [i for i, t in enumerate(targets) if t is not None and t.shape == self_latents[i].shape]
    if not rows:
        return None
    center = torch.cat([targets[i].double().reshape(-1, latent_size, targets[i].shape[-1]) for i in rows]).mean(0)

    def cos(a: torch.Tensor, b: torch.Tensor, centred: bool) -> torch.Tensor:
        a, b = a.double().reshape(-1, latent_size, a.shape[-1]), b.double().reshape(-1, latent_size, b.shape[-1])
        return F.cosine_similarity(a - center, b - center, dim=-1) if centred else F.cosine_similarity(a, b, dim=-1)

    others = [i for i in rows if targets[partners[i]] is not None and targets[partners[i]].shape == targets[i].shape]

    def mean(values: list[torch.Tensor]) -> float:
        return float(torch.cat([v.flatten() for v in values]).mean()) if values else float("nan")

    return {
        "n": len(rows), "n_other": len(others),
        "own": mean([cos(self_latents[i], targets[i], False) for i in rows]),
        "other": mean([cos(self_latents[i], targets[partners[i]], False) for i in others]),
        "mean": mean([cos(self_latents[i], center.expand(len(targets[i]) // latent_size, -1, -1), False)
                      for i in rows]),
        "own_centred": mean([cos(self_latents[i], targets[i], True) for i in rows]),
        "other_centred": mean([cos(self_latents[i], targets[partners[i]], True) for i in others]),
    }


def summarise(out_dir: Path, *, seed: int = 0, n_boot: int = 10_000) -> dict[str, Any]:
    """Accuracy of each variant and the two paired differences, overall and per family (fractions)."""
    from .stats import OVERALL, load_outcomes, paired_difference

    outcomes = {name: load_outcomes(out_dir / name / SAMPLES_FILE) for name in VARIANTS}
    gap, content = (paired_difference(outcomes[a], outcomes[b], n_boot=n_boot, seed=seed)
                    for a, b in MEASURES.values())
    families = {}
    for group in gap:
        families[group] = {
            "n": gap[group].n,
            "self_fed": gap[group].accuracy_a, "oracle": gap[group].accuracy_b, "swapped": content[group].accuracy_a,
            "imagination_gap": gap[group].to_dict(), "content_dependence": content[group].to_dict(),
        }
    overall = families[OVERALL]
    return {
        "self_fed": overall["self_fed"], "oracle": overall["oracle"], "swapped": overall["swapped"],
        "imagination_gap": gap[OVERALL].difference, "content_dependence": content[OVERALL].difference,
        "by_family": families,
    }


def add_headroom(summary: dict[str, Any], text_only: ArmOutcomes, out_dir: Path, *, seed: int = 0,
                 n_boot: int = 10_000) -> None:
    """Add ``headroom`` to an arm's :func:`summarise` result: its oracle answers (``out_dir``) minus the text-only
    arm's (``text_only``, loaded once for every latent arm) on the diagnosed questions, overall and per family.

    The most any imagination could add at this input: when the exact imagery does not beat a model that never saw
    imagery, no imagined latents will, whatever the gap and the content dependence say.
    """
    from .stats import OVERALL, load_outcomes, on_questions_of, paired_difference

    oracle = load_outcomes(out_dir / "oracle" / SAMPLES_FILE)
    headroom = paired_difference(on_questions_of(text_only, oracle), oracle, n_boot=n_boot, seed=seed)
    for group, row in summary["by_family"].items():
        row["headroom"] = headroom[group].to_dict()
    summary["headroom"] = headroom[OVERALL].difference


def markdown(diagnostics: dict[str, dict[str, Any]]) -> list[str]:
    """The report's section: one row per latent arm and family."""
    if not diagnostics:
        return []

    def pct(x: float) -> str:
        return f"{100 * x:.1f}%"

    def diff(d: dict[str, Any]) -> str:
        low, high = d["ci95"]
        return f"{100 * d['difference']:+.1f} ({100 * low:+.1f} to {100 * high:+.1f}; p {d['p_mcnemar']:.2g})"

    lines = [
        "## Do the latents carry content?",
        "",
        "Each latent arm answers the held-out questions again with its latents replaced (same prompts, greedy): "
        "**oracle** feeds each question's own imagery targets, **swapped** the latents the model generated for a "
        "question about another video. Imagination gap = oracle − self-fed; content dependence = self-fed − swapped; "
        "headroom = oracle − text-only SFT, the most imagination could add here (points, 95% video-bootstrap "
        "interval, McNemar p). Norm ratio: mean fed-back latent norm / mean target norm.",
        "",
        "| arm | family | n | self-fed | oracle | swapped | imagination gap | content dependence | headroom |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for arm, summary in diagnostics.items():
        for family, row in summary["by_family"].items():
            lines.append(f"| {arm} | {family} | {row['n']} | {pct(row['self_fed'])} | {pct(row['oracle'])} | "
                         f"{pct(row['swapped'])} | {diff(row['imagination_gap'])} | "
                         f"{diff(row['content_dependence'])} | {diff(row['headroom'])} |")
    lines.append("")
    steered = [(arm, summary["counterfactual"]) for arm, summary in diagnostics.items()
               if summary.get("counterfactual", {}).get("n")]
    if steered:
        lines += [
            "Counterfactual imagery: the held-out questions whose counterfactual twin (the same clip up to the frames "
            "the model sees, another future after) has another answer, answered with the twin's imagery at the "
            "latent positions and the question's own video. Steering = share giving the twin's answer with the "
            "twin's imagery − with the question's own imagery (oracle): how far the imagery alone moves the answer.",
            "",
            "| arm | n | twin's answer, twin imagery | twin's answer, own imagery | steering |",
            "|---|---|---|---|---|",
        ]
        lines += [f"| {arm} | {row['n']} | {pct(row['twin'])} | {pct(row['twin_oracle'])} | {diff(row['steering'])} |"
                  for arm, row in steered]
        lines.append("")
    probes = [(arm, family, row) for arm, summary in diagnostics.items()
              for family, row in summary.get("probe", {}).items()]
    if probes:
        lines += [
            "How much of the answer is there to read: a linear probe of the answer letter from each question's "
            "imagery targets (fitted on the training questions, scored on the held-out ones; the floor is the most "
            "frequent training answer) and from its self-fed latents (5-fold cross-validated on the held-out "
            "questions).",
            "",
            "| arm | family | probe on imagery targets | majority | probe on self-fed latents |",
            "|---|---|---|---|---|",
        ]
        for arm, family, row in probes:
            cells = [pct(row[key]) if key in row else "–" for key in ("targets", "majority", "self_fed")]
            lines.append(f"| {arm} | {family} | {' | '.join(cells)} |")
        lines.append("")
    for arm, summary in diagnostics.items():
        ratio = summary.get("norm_ratio")
        calibrated = summary.get("feedback_norm")
        lines.append(f"- {arm}: fed-back norm ratio {ratio:.2f}" if ratio is not None else f"- {arm}: no latents fed")
        about = " about the mean target" if summary.get("feedback_centred") else ""
        lines[-1] += (f" (calibrated to {calibrated:.3g}{about})" if calibrated
                      else " (uncalibrated, as the release)") + \
            f"; {summary['questions_with_latents']} of {summary['by_family']['overall']['n']} self-fed answers imagined"
        near = summary.get("closeness")
        if near:
            lines[-1] += (f"; its latents' cosine to the question's own imagery target {near['own']:.3f}, to another "
                          f"video's {near['other']:.3f}, to the mean target {near['mean']:.3f}; minus the mean target: "
                          f"own {near['own_centred']:.3f}, another video's {near['other_centred']:.3f} "
                          f"({near['n']} questions)")
    lines.append("")
    return lines
