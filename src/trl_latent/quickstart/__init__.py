"""``trl-latent quickstart``: the whole method end to end on the synthetic 4D world, on a laptop CPU.

synthetic clips → datagen (geometry labels, imagery, offline template CoT) → a random-init Qwen2.5-VL built from a
config → three arms trained on the same questions — text-only SFT (imagery removed from the CoT), DIFT, DIFT + 4DRL —
→ each evaluated on held-out clips written as a DSR-Bench-format benchmark through the lmms-eval task → a report with
confidence intervals and training curves. Each stage writes into one output folder and is skipped on a rerun once
done, so an interrupted quickstart resumes. Every stage is the same public entry point a user would call
(``datagen.run_pipeline``, ``trl_latent.scripts.dift``, ``trl_latent.scripts.grpo``, ``trl-latent eval``).

A rerun into the same folder with other settings redoes exactly what they change: each stage's marker records the
settings it read (recorded as it runs, so the list cannot drift from the code) and the fingerprints of the stages it
builds on; a stage whose settings or inputs differ is redone from an empty output folder, and so is everything
downstream of it. The report is removed when a run starts and written when it ends, so ``report.md`` and
``quickstart_config.json`` always describe the same run.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import HfArgumentParser

from .config import (
    ALL_ABLATIONS,
    CONTROLS,
    PRESETS,
    TEXT_ABLATIONS,
    FromSetting,
    QuickstartConfig,
    ablation_arm,
    ablation_settings,
    twin_ablation,
)
from .diagnostics import LATENTS_DIR, SAMPLES_FILE, TEXT_ONLY, VARIANTS

BASE_ARMS = ("sft_text", "dift", "dift_grpo")
STAGE2_ARM = "dift_stage2"
"""DIFT stage 2 (``--stage2_steps``): continued from the DIFT arm with ``latent_feedback: self``, the release's intent."""
TEXT_BASE = "text_base"
"""The shared text-only base of ``base_steps``, which every arm continues from (trained like an arm, written under
``models/``; not evaluated)."""
TEXT_BASE_STAGE = f"train_{TEXT_BASE}"
"""Its stage, which every other training stage reads when ``base_steps`` is set (:meth:`Quickstart._start_of`)."""
ARM_LABELS = {"sft_text": "text-only SFT", "dift": "DIFT", "dift_grpo": "DIFT + 4DRL",
              STAGE2_ARM: "DIFT, stage 2 (self-fed)",
              **{ablation_arm(name): label for name, (label, _) in ALL_ABLATIONS.items()}}
COUNTERFACTUAL_DATA = "dift_counterfactual.jsonl"
"""``dift.jsonl`` with each question's imagery in the twin world (``counterfactual_output``), next to it."""
PAIRS = [("sft_text", "dift"), ("dift", "dift_grpo"), ("dift", STAGE2_ARM)]
"""The paired comparisons of every report (second minus first); each ablation arm is compared with DIFT (text-only
ablations with text-only SFT), each DIFT ablation with text-only SFT too (whether a recipe beats the model without
imagery is the question it answers), and a DIFT ablation with its text-only control (:data:`.config.CONTROLS`) when
both run."""


def grpo_reward_args(consistency_weight: float, conclusion_weight: float) -> list[str]:
    """4DRL's reward flags: the release's accuracy (1.0) and format (0.2), plus the consistency and conclusion rewards
    where weighted."""
    ours = {"consistency": consistency_weight, "conclusion": conclusion_weight}
    rewards = {"accuracy": 1.0, "format": 0.2, **{name: weight for name, weight in ours.items() if weight}}
    return ["--reward_funcs", *(f"trl_latent.rewards.{name}" for name in rewards),
            "--reward_weights", *(str(weight) for weight in rewards.values())]


def eval_dtype(bf16: bool) -> str:
    """The dtype the evaluations load each arm in; the diagnoses load it alike, so only the latents differ."""
    return "bfloat16" if bf16 else "float32"


def upstream(stage: str, start: str = "build_model") -> tuple[str, ...]:
    """The stages whose outputs ``stage`` reads: when one of them is redone, so is the stage (``start``: the stage whose
    checkpoint a training stage starts from, :meth:`Quickstart._start_of`)."""
    if stage in ("synthesize", "perception", "synthesize_twin"):
        return ()
    if stage == "datagen":
        return ("synthesize",)
    if stage == "datagen_twin":  # it asks datagen's object questions again
        return ("synthesize_twin", "datagen")
    if stage.startswith("build_model"):
        return ("datagen", "perception")
    kind, arm = stage.split("_", 1)
    if kind == "train":
        return ("datagen", start, *(("datagen_twin",) if twin_ablation(arm.removeprefix("dift_")) else ()))
    if kind == "diagnose":  # its self-fed answers and latents are the evaluation's; the twin's questions, when any
        return ("datagen", f"train_{arm}", f"eval_{arm}", "datagen_twin")
    return ("datagen", f"train_{arm}")


def output(stage: str) -> str:
    """The folder ``stage`` writes, emptied before the stage is redone (so nothing stale is resumed from)."""
    fixed = {"synthesize": "world", "datagen": "data", "perception": "models/perception", "build_model": "models/init",
             "synthesize_twin": "world_twin", "datagen_twin": "data_twin"}
    if stage in fixed:
        return fixed[stage]
    if stage.startswith("build_model_"):
        return f"models/init_{stage.removeprefix('build_model_')}"
    kind, arm = stage.split("_", 1)
    return {"train": f"models/{arm}", "eval": f"eval/{arm}", "diagnose": f"diagnostics/{arm}"}[kind]


PROBE_CACHE = ".target_probes"
"""Under ``diagnostics/``: the imagery-target probes, shared by the latent arms with the same tower, imagery and K."""
RESULT_NEUTRAL = frozenset({"output_dir", "progress", "workers", "perception_cache"})
"""Settings that change no result (where it is written or cached, progress bars, rendering processes: each clip is
seeded by itself), so a rerun that changes only these redoes nothing."""
RETIRED_SETTINGS = {"build_model": frozenset({"latent_sizes"})}
"""Settings a stage's older markers recorded and the stage no longer reads (``build_model`` built the checkpoint of
every K until each K got a build stage of its own): ignored, so that adding a K ablation to a folder finished by an
older quickstart does not redo every arm."""
ADDED_SETTINGS = {"train_dift_grpo": {"grpo_conclusion_weight": 0.0}}
"""Settings a stage started reading after older markers were written, with the value that gives what the stage did
before (the conclusion reward unweighted): an older marker is read as having recorded it, so a rerun at that value
redoes nothing and one at another value redoes the stage (a format bump would redo it either way)."""
STAGE_FORMATS = {"eval": 2, "datagen": 2, "diagnose": 2}
"""Format of a stage kind, recorded in its marker: a stage finished by an older quickstart in another format is
redone, though no setting it recorded changed. Bump a kind's number when its outputs change shape (``eval`` 2: the
latent arms' evaluations also save the latents they feed back, which the diagnoses read) or when it starts reading a
new setting, which an older marker cannot have recorded (``datagen`` 2: ``visible_fraction``; ``diagnose`` 2: the
ablations, whose counterfactual twin adds a variant) — unless one value of that setting does what the stage did
before, which :data:`ADDED_SETTINGS` records instead, so that only another value redoes the stage."""


def build_stage(latent_size: int, main_latent_size: int) -> str:
    """The stage building the initial checkpoint with ``latent_size`` latents: one per K, so that adding a K ablation
    to a finished run builds its checkpoint alone and redoes no other arm."""
    return "build_model" if latent_size == main_latent_size else f"build_model_k{latent_size}"


def stage_format(stage: str) -> int:
    return STAGE_FORMATS.get(stage.split("_", 1)[0], 1)


REPORT_FILES = ("report.md", "report.json", "losses.png", "rewards.png", "accuracy_by_type.png")
TORCH_FREE_STAGES = frozenset({"synthesize", "datagen", "synthesize_twin", "datagen_twin"})
"""Stages that run no tensor operation (rendering and datagen are numpy): every other stage's numbers depend on the
pinned numerics (``threads``, ``pin_numerics``), which they record as settings they read."""


class _SettingsRead:
    """Stands in for the config while a stage runs and records each setting the stage reads, with its value."""

    def __init__(self, config: QuickstartConfig) -> None:
        self.config = config
        self.read: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.config, name)
        if name not in RESULT_NEUTRAL:
            self.read[name] = value
        return value


def _fingerprint(settings: dict[str, Any], upstream: dict[str, str]) -> str:
    text = json.dumps({"settings": settings, "upstream": upstream}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Quickstart:
    """Runs the stages in order; each leaves ``.done/<stage>`` (its time, the settings it read, its inputs) when it
    finished, and is skipped on a rerun while those still match."""

    def __init__(self, config: QuickstartConfig) -> None:
        self.config = config
        self.out = Path(config.output_dir)
        self.timings: dict[str, float] = {}
        self.fingerprints: dict[str, str] = {}
        self.numerics: dict[str, Any] = {}

    # ---- bookkeeping -------------------------------------------------------------------------------------------
    def _changes(self, stage: str, done: dict[str, Any], upstream: dict[str, str]) -> list[str]:
        """Why a finished stage no longer matches this run (empty: it does)."""
        if "fingerprint" not in done:
            return ["made by an older quickstart that did not record its settings"]
        retired = RETIRED_SETTINGS.get(stage, frozenset())
        recorded_settings = {**ADDED_SETTINGS.get(stage, {}), **done["settings"]}
        changes = [f"{key} {old!r} -> {getattr(self.config, key)!r}" for key, old in recorded_settings.items()
                   if key not in retired and getattr(self.config, key) != old]
        recorded, current = done.get("format", 1), stage_format(stage)
        if recorded != current:
            changes.append(f"output format {recorded} -> {current} (an older quickstart)")
        return changes + [f"{name} redone" if name in done["upstream"] else f"now reads {name}'s output"
                          for name, value in upstream.items() if done["upstream"].get(name) != value]

    def _start_of(self, stage: str) -> str:
        """The stage whose checkpoint training stage ``stage`` starts from — the one place that decides it, read both
        to train and to know what to redo: the DIFT arm for 4DRL and stage 2, else the shared text-only base
        (``base_steps``), else the build stage of the arm's K (``build_model`` for a stage that trains no ablation)."""
        # the config itself, not a running stage's recorder: the start is recorded as the stage's upstream, and reading
        # ``ablations`` here would make every arm's result depend on the list of the others
        c = self.config.config if isinstance(self.config, _SettingsRead) else self.config
        if stage in ("train_dift_grpo", f"train_{STAGE2_ARM}"):
            return "train_dift"
        if c.base_steps and stage != TEXT_BASE_STAGE:  # the config rules out a K ablation with a base
            return TEXT_BASE_STAGE
        ablations = {f"train_{ablation_arm(name)}": name for name in c.ablations}
        return build_stage(c.ablation_latent_size(ablations[stage]) if stage in ablations else c.latent_size,
                           c.latent_size)

    def _stage(self, name: str, run: Callable[[], Any]) -> None:
        marker = self.out / ".done" / name
        upstream_prints = {stage: self.fingerprints[stage] for stage in upstream(name, self._start_of(name))
                           if stage in self.fingerprints}
        if marker.exists():
            done = json.loads(marker.read_text())
            changes = self._changes(name, done, upstream_prints)
            if not changes:
                self.timings[name], self.fingerprints[name] = float(done["seconds"]), done["fingerprint"]
                print(f"[quickstart] {name}: done earlier, skipped", flush=True)
                return
            print(f"[quickstart] {name}: redone ({'; '.join(changes)})", flush=True)
            marker.unlink()
            shutil.rmtree(self.out / output(name), ignore_errors=True)
        print(f"[quickstart] {name} …", flush=True)
        recorder = _SettingsRead(self.config)
        if name not in TORCH_FREE_STAGES:  # pinned by run() for the whole process; a change redoes the stage
            recorder.threads, recorder.pin_numerics  # noqa: B018 - read to be recorded
        self.config = recorder  # type: ignore[assignment] - reads pass through to the real config
        start = time.perf_counter()
        try:
            run()
        finally:
            self.config = recorder.config
        seconds = time.perf_counter() - start
        self.timings[name] = seconds
        self.fingerprints[name] = _fingerprint(recorder.read, upstream_prints)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"seconds": seconds, "settings": recorder.read, "upstream": upstream_prints,
                                      "fingerprint": self.fingerprints[name], "format": stage_format(name)}, indent=1))
        print(f"[quickstart] {name}: {seconds:.1f} s", flush=True)

    @property
    def arms(self) -> tuple[str, ...]:
        if self.config.no_latents:
            return ("sft_text",)
        stage2 = (STAGE2_ARM,) if self.config.stage2_steps else ()
        return BASE_ARMS + stage2 + tuple(ablation_arm(name) for name in self.config.ablations)

    @property
    def latent_arms(self) -> tuple[str, ...]:
        """The arms diagnosed with oracle and swapped latents (all but text-only, when ``--diagnostics``)."""
        return tuple(a for a in self.arms if not _text_only(a)) if self.config.diagnostics else ()

    # ---- stages ------------------------------------------------------------------------------------------------
    def synthesize(self, twin: bool = False) -> None:
        """The world, or (``twin``) its counterfactual twin: the same clips, every moving object taking another
        path after the frames the models see (``visible_fraction``)."""
        from datagen.export import visible_count
        from datagen.synthetic import write_dataset

        c = self.config
        cut = {"counterfactual_frame": visible_count(c.num_frames, c.visible_fraction)} if twin else {}
        write_dataset(
            self.out / output("synthesize_twin" if twin else "synthesize"), c.num_clips, seed=c.seed,
            workers=c.workers, progress=c.progress, width=c.image_size, height=c.image_size, num_frames=c.num_frames,
            fps=c.fps, **cut,
        )

    def _attach_twins(self) -> None:
        """``dift.jsonl`` with each training question given its twin's imagery where the twin's answer differs
        (``dift_counterfactual.jsonl``, :mod:`datagen.counterfactual`); written by the arm that trains on it, so that a
        redone datagen, which empties the export, never leaves the arm without it."""
        from datagen.counterfactual import attach_counterfactual_imagery

        export = self.out / "data" / "export"
        counts = attach_counterfactual_imagery(export / "dift.jsonl", self.out / output("datagen_twin") / "export" /
                                               "dift.jsonl", export / COUNTERFACTUAL_DATA)
        print(f"[quickstart] counterfactual imagery: {counts}", flush=True)

    def datagen(self, twin: bool = False) -> None:
        from datagen import DatagenConfig, run_pipeline

        c = self.config
        config = DatagenConfig.from_dict(
            {
                "input_root": str(self.out / output("synthesize_twin" if twin else "synthesize")),
                "output_dir": str(self.out / output("datagen_twin" if twin else "datagen")),
                "progress": c.progress,
                "frames": {"fps": c.fps, "max_frames": c.num_frames, "max_pixels": c.image_size * c.image_size},
                "segment": {"backend": "gt"},
                "camera_qa": {"option_order": c.option_order},
                # a twin is asked the world's own object questions, so that the two pair up
                "object_qa": {"option_order": c.option_order,
                              **({"questions_from": str(self.out / output("datagen"))} if twin else {})},
                "cot": {"backend": "template", "template_style": c.cot_style},
                "export": {"benchmark_fraction": c.heldout_fraction, "text_only": True, "hf_dataset": False,
                           "types": list(c.families), "benchmark_types": list(c.families),
                           "visible_fraction": c.visible_fraction},
            }
        )
        run_pipeline(config)

    def perception(self) -> None:
        from .perception import PerceptionSettings, cached_tower

        c = self.config
        settings = PerceptionSettings(steps=c.perception_steps)
        folder = cached_tower(c.perception_cache, model_size=c.model_size, image_size=c.image_size,
                              num_frames=c.num_frames, fps=c.fps, clips=c.perception_clips, settings=settings,
                              workers=c.workers, progress=c.progress, model_family=c.model_family,
                              numerics={"threads": c.threads, "pinned": c.pin_numerics})
        shutil.copytree(folder, self.out / output("perception"))

    def build_model(self, latent_size: int, path: Path) -> None:
        """The initial checkpoint with ``latent_size`` latents at ``path`` (given, not read from the config, so that a
        K variant's stage records no setting of the run's own K): the same weights for every K, each with a processor
        of its own (building a model adds its latent tokens to the processor)."""
        from .. import testing
        from .perception import load_tower

        c = self.config
        text, vision = testing.model_sizes(c.model_family)[c.model_size]
        tokenizer = (testing.corpus_tokenizer(self._training_texts(), c.vocab_size, whole_tokens=("<answer>", "</answer>"))
                     if c.vocab_size else None)
        processor = testing.build_processor(tokenizer=tokenizer, model_type=c.model_family)
        model, _ = testing.build_tiny(c.model_family, latent_size=latent_size, seed=c.seed, text=text, vision=vision,
                                      processor=processor)
        if c.perception:
            load_tower(model, self.out / output("perception"))
        model.save_pretrained(path)
        processor.save_pretrained(path)

    def _training_texts(self) -> list[str]:
        """Questions and CoTs of every training file (never the held-out benchmark), plus the chat template's words."""
        from ..answers import THINK_PROMPT_SUFFIX

        texts = ["system\nYou are a helpful assistant.\nuser\nassistant\n", THINK_PROMPT_SUFFIX]
        for name in ("dift.jsonl", "dift_text_only.jsonl", "rl.jsonl"):
            with open(self.out / "data" / "export" / name) as handle:
                for line in handle:
                    row = json.loads(line)
                    texts += [row["text_input"], row.get("text_output", "")]
        return texts

    def train_sft(self, arm: str, data: str, changes: dict[str, Any] | None = None) -> None:
        """Text-only SFT or DIFT through the ``trl-latent dift`` entry point, from the checkpoint of
        :meth:`_start_of`; ``changes`` are an ablation's (or stage 2's) DIFT settings."""
        from ..scripts import dift

        c = self.config
        changes = changes or {}
        if data == COUNTERFACTUAL_DATA:
            self._attach_twins()
        latent_size = changes.get("latent_size", c.latent_size)
        argv = [
            "--model_name_or_path", str(self.out / output(self._start_of(f"train_{arm}"))),
            "--dataset_name", str(self.out / "data" / "export" / data),
            "--output_dir", str(self.out / "models" / arm),
            "--max_steps", str(changes.get("max_steps", c.sft_steps)),
            "--per_device_train_batch_size", str(c.batch_size),
            "--learning_rate", str(changes.get("learning_rate", c.sft_learning_rate)),
            "--latent_size", str(latent_size), "--ce_weight", str(changes.get("ce_weight", c.ce_weight)),
            "--fps", str(c.fps), "--frames_fps", str(c.fps), "--max_frames", str(c.model_frames),
            "--max_pixels", str(c.image_size * c.image_size),
            "--imagery_max_pixels", str(c.imagery_size * c.imagery_size),
            "--logging_steps", str(max(1, c.sft_steps // 50)), "--save_strategy", "no", "--report_to", "none",
            "--activation_checkpointing", "false", "--bf16", str(c.bf16).lower(), "--use_cpu", str(c.use_cpu).lower(),
            "--seed", str(c.seed), "--disable_tqdm", str(not c.progress).lower(),
            "--first_frame_share", str(changes.get("first_frame_share", 0.0)),
        ]
        if data != "dift_text_only.jsonl":  # the text-only arm has no imagery and no latents to calibrate
            argv += ["--sim_weight", str(changes.get("sim_weight", c.sim_weight)),
                     "--latent_feedback", changes.get("latent_feedback", "teacher"),
                     "--latent_feedback_norm", changes.get("latent_feedback_norm", c.latent_feedback_norm),
                     "--latent_sim_centering", changes.get("latent_sim_centering", "none"),
                     "--latent_imagery", changes.get("latent_imagery", c.latent_imagery),
                     "--latent_contrast_weight", str(changes.get("latent_contrast_weight", 0.0)),
                     "--latent_contrast_negatives", changes.get("latent_contrast_negatives", "other_row"),
                     "--latent_contrast_span", changes.get("latent_contrast_span", "continuation")]
        if dift.main(argv):
            raise RuntimeError(f"DIFT training of arm {arm!r} failed")

    def _ablation_changes(self, name: str) -> dict[str, Any]:
        """The DIFT settings ablation ``name`` changes; a :class:`FromSetting` value is read from the config here, while
        the arm's stage runs, so its marker records it."""
        return {key: getattr(self.config, value.name) if isinstance(value, FromSetting) else value
                for key, value in ablation_settings(name).items()}

    def _stage2_changes(self) -> dict[str, Any]:
        """Stage 2 of the release's two-stage DIFT: the DIFT arm continued with its own hidden states fed back."""
        c = self.config
        return {"latent_feedback": "self", "max_steps": c.stage2_steps, "learning_rate": c.stage2_learning_rate}

    def train_grpo(self) -> None:
        from ..scripts import grpo

        c = self.config
        argv = [
            "--model_name_or_path", str(self.out / output(self._start_of("train_dift_grpo"))),
            "--dataset_name", str(self.out / "data" / "export" / "rl.jsonl"),
            "--output_dir", str(self.out / "models" / "dift_grpo"),
            "--max_steps", str(c.grpo_steps),
            "--per_device_train_batch_size", str(c.grpo_batch_size),
            "--num_generations", str(c.num_generations),
            "--max_completion_length", str(c.max_new_tokens),
            "--learning_rate", str(c.grpo_learning_rate),
            *grpo_reward_args(c.grpo_consistency_weight, c.grpo_conclusion_weight),
            "--beta", str(c.grpo_beta), "--scale_rewards", c.grpo_scale_rewards, "--temperature", str(c.grpo_temperature),
            "--fps", str(c.fps), "--max_frames", str(c.model_frames),
            "--max_pixels", str(c.image_size * c.image_size),
            "--logging_steps", "1", "--save_strategy", "no", "--report_to", "none",
            "--activation_checkpointing", "false", "--bf16", str(c.bf16).lower(), "--use_cpu", str(c.use_cpu).lower(),
            "--seed", str(c.seed), "--disable_tqdm", str(not c.progress).lower(),
        ]
        if grpo.main(argv):
            raise RuntimeError("4DRL training failed")

    def evaluate(self, arm: str) -> None:
        from .. import cli_eval

        c = self.config
        model_args = (
            f"pretrained={self.out / 'models' / arm},device_map={c.eval_device},dtype={eval_dtype(c.bf16)},"
            f"fps={c.fps},max_frames={c.model_frames},max_pixels={c.image_size * c.image_size}"
        )
        if not _text_only(arm):  # the latents each answer was given, for the diagnostics
            model_args += f",save_latents={self.out / 'eval' / arm / LATENTS_DIR}"
        argv = [
            "--model_args", model_args, "--tasks", "dsr_bench_think", "--log_samples",
            "--gen_kwargs", f"max_new_tokens={c.max_new_tokens}",
            "--dsr_root", str(self.out / "data" / "export" / "benchmark"),
            "--output_path", str(self.out / "eval" / arm), "--batch_size", str(c.eval_batch_size),
            "--seed", str(c.seed), "--title", ARM_LABELS[arm],  # a redone stage writes newer dated files, read below
        ]
        if c.eval_limit:
            argv += ["--limit", str(c.eval_limit)]
        if cli_eval.main(argv):
            raise RuntimeError(f"evaluation of arm {arm!r} failed")

    def diagnose(self, arm: str) -> None:
        """The held-out questions again with oracle and swapped latents (:mod:`.diagnostics`)."""
        from .diagnostics import run_diagnostics

        c = self.config
        run_diagnostics(
            self.out / "models" / arm, self.out / "data" / "export" / "benchmark", self.out / "data",
            self.out / "eval" / arm, self.out / output(f"diagnose_{arm}"), fps=c.fps, max_frames=c.model_frames,
            max_pixels=c.image_size * c.image_size, imagery_max_pixels=c.imagery_size * c.imagery_size,
            max_new_tokens=c.max_new_tokens, batch_size=c.eval_batch_size,
            limit=min((n for n in (c.eval_limit, c.diagnostics_limit) if n), default=None), seed=c.seed,
            probe_cache=self.out / "diagnostics" / PROBE_CACHE, device=c.eval_device,
            dtype=eval_dtype(c.bf16),
            twin_data_dir=self.out / output("datagen_twin") if c.twin_world else None,
        )

    def samples(self) -> dict[str, Path]:
        """Each arm's held-out evaluation (lmms-eval's samples file), by the arm's label."""
        from .. import cli_eval

        return {ARM_LABELS[a]: cli_eval.latest_samples(self.out / "eval" / a, "dsr_bench_think") for a in self.arms}

    def diagnosis_samples(self) -> dict[str, dict[str, Path]]:
        """Each latent arm's diagnosis answers (self-fed, oracle, swapped latents) and the text-only answers its
        headroom is measured against (``text_only``), by the arm's label."""
        text_only = {TEXT_ONLY: self.samples()[ARM_LABELS["sft_text"]]} if self.latent_arms else {}
        return {ARM_LABELS[a]: {**{variant: self.out / output(f"diagnose_{a}") / variant / SAMPLES_FILE
                                   for variant in VARIANTS}, **text_only} for a in self.latent_arms}

    def report(self) -> Path:
        from . import diagnostics, report
        from .stats import load_outcomes

        samples = self.samples()
        arms = {label: report.scores_from_samples(path) for label, path in samples.items()}
        histories = {ARM_LABELS[a]: report.log_history(self.out / "models" / a) for a in self.arms}
        plots = [
            report.plot_curves({k: v for k, v in histories.items() if k != ARM_LABELS["dift_grpo"]},
                               ("loss", "ce_loss", "sim_loss", "cos_sim"), self.out / "losses.png",
                               "supervised training"),
            report.plot_curves({k: v for k, v in histories.items() if k == ARM_LABELS["dift_grpo"]},
                               ("reward", "rewards/accuracy/mean", "rewards/format/mean", "completions/mean_length"),
                               self.out / "rewards.png", "4DRL"),
            report.plot_accuracy(arms, self.out / "accuracy_by_type.png"),
        ]
        ablations = self.config.ablations
        ablated = [("sft_text" if name in TEXT_ABLATIONS else "dift", ablation_arm(name)) for name in ablations]
        ablated += [("sft_text", ablation_arm(name)) for name in ablations if name not in TEXT_ABLATIONS]
        ablated += [(ablation_arm(CONTROLS[name]), ablation_arm(name)) for name in ablations
                    if CONTROLS.get(name) in ablations]
        pairs = [(ARM_LABELS[a], ARM_LABELS[b]) for a, b in PAIRS + ablated if a in self.arms and b in self.arms]
        statistics = report.arm_statistics(samples, pairs, seed=self.config.seed)
        perception = self._perception_fit()
        settings = {**self.config.summary(), "numerics": self.numerics}
        text = report.markdown(arms, self.timings, settings, [p.name for p in plots if p is not None],
                               statistics=statistics, perception=perception)
        diagnosed = {ARM_LABELS[a]: json.loads((self.out / output(f"diagnose_{a}") / "diagnostics.json").read_text())
                     for a in self.latent_arms}
        text_only = load_outcomes(samples[ARM_LABELS["sft_text"]]) if self.latent_arms else None
        for a in self.latent_arms:  # against another arm, so here rather than in the arm's own diagnosis stage
            diagnostics.add_headroom(diagnosed[ARM_LABELS[a]], text_only, self.out / output(f"diagnose_{a}"),
                                     seed=self.config.seed)
        text += "\n" + "\n".join(diagnostics.markdown(diagnosed))
        path = self.out / "report.md"
        path.write_text(text)
        (self.out / "report.json").write_text(json.dumps({
            "seed": self.config.seed,
            "numerics": self.numerics,
            "arms": {arm: {**{t: {"correct": s.correct, "total": s.total, "letters": s.letters, "accuracy": s.accuracy,
                                  "ci95": s.wilson()} for t, s in scores.items()},
                           **({"diagnostics": diagnosed[arm]} if arm in diagnosed else {})}
                     for arm, scores in arms.items()},
            "statistics": statistics.to_json(),
            "perception": perception,
        }, indent=2))
        return path

    def _perception_fit(self) -> dict[str, Any] | None:
        """Held-out fit of the pretrained vision tower the arms started from (``None`` without pretraining)."""
        from .perception import LOG_FILE

        path = self.out / output("perception") / LOG_FILE
        if not self.config.perception or not path.is_file():
            return None
        log = json.loads(path.read_text())
        return {"heldout": log["heldout"], "clips": log["clips"], "settings": log["key"]}

    def run(self) -> Path:
        from ..numerics import pin_numerics

        self.numerics = pin_numerics(self.config.threads, self.config.pin_numerics)  # before any tensor operation
        self.out.mkdir(parents=True, exist_ok=True)
        for name in REPORT_FILES:  # the report of an earlier run would sit next to this run's settings
            (self.out / name).unlink(missing_ok=True)
        (self.out / "quickstart_config.json").write_text(json.dumps(self.config.summary(), indent=2))
        start = time.perf_counter()
        self._stage("synthesize", self.synthesize)
        self._stage("datagen", self.datagen)
        if self.config.perception:
            self._stage("perception", self.perception)
        main_k = self.config.latent_size
        for k in (main_k, *(k for k in self.config.latent_sizes if k != main_k)):
            stage = build_stage(k, main_k)
            self._stage(stage, lambda k=k, stage=stage: self.build_model(k, self.out / output(stage)))
        if self.config.base_steps:
            self._stage(TEXT_BASE_STAGE, lambda: self.train_sft(
                TEXT_BASE, "dift_text_only.jsonl", {"max_steps": self.config.base_steps}))
        self._stage("train_sft_text", lambda: self.train_sft("sft_text", "dift_text_only.jsonl"))
        if not self.config.no_latents:
            self._stage("train_dift", lambda: self.train_sft("dift", "dift.jsonl"))
            self._stage("train_dift_grpo", self.train_grpo)
            if self.config.stage2_steps:
                self._stage(f"train_{STAGE2_ARM}", lambda: self.train_sft(
                    STAGE2_ARM, "dift.jsonl", self._stage2_changes()))
            if self.config.twin_world:
                self._stage("synthesize_twin", lambda: self.synthesize(twin=True))
                self._stage("datagen_twin", lambda: self.datagen(twin=True))
            for name in self.config.ablations:
                data = "dift.jsonl"
                if twin_ablation(name):
                    data = COUNTERFACTUAL_DATA
                elif name in TEXT_ABLATIONS:
                    data = "dift_text_only.jsonl"
                arm = ablation_arm(name)
                self._stage(f"train_{arm}", lambda name=name, arm=arm, data=data: self.train_sft(
                    arm, data, self._ablation_changes(name)))
        for arm in self.arms:
            self._stage(f"eval_{arm}", lambda arm=arm: self.evaluate(arm))
        for arm in self.latent_arms:
            self._stage(f"diagnose_{arm}", lambda arm=arm: self.diagnose(arm))
        path = self.report()
        print(f"[quickstart] finished in {time.perf_counter() - start:.0f} s; report: {path}", flush=True)
        print(path.read_text(), flush=True)
        return path


def _text_only(arm: str) -> bool:
    """Whether ``arm`` is the text-only arm or one of its ablations (no latents to save or diagnose)."""
    return arm.startswith("sft_")


def parse_config(args: list[str]) -> QuickstartConfig:
    """The settings of a command line: ``--preset``'s values become the defaults, so explicit flags still win."""
    parser = HfArgumentParser(QuickstartConfig)
    parser.prog = "trl-latent quickstart"
    (config,) = parser.parse_args_into_dataclasses(args=args)
    if PRESETS[config.preset]:
        parser.set_defaults(**PRESETS[config.preset])
        (config,) = parser.parse_args_into_dataclasses(args=args)
    return config


def main(argv: list[str] | None = None) -> int:
    config = parse_config(sys.argv[1:] if argv is None else argv)
    if config.seeds:
        from .seeds import run_seeds

        run_seeds(config)
    else:
        Quickstart(config).run()
    return 0
