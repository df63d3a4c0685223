"""Settings of ``trl-latent quickstart``: defaults fit the whole run in about 10 minutes on 2 CPU cores.

``--preset`` picks a set of defaults (:data:`PRESETS`); any flag given explicitly still wins over the preset.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from datagen.cot.template import TEMPLATE_STYLES
from datagen.export import QUESTION_TYPES
from datagen.mcq import OPTION_ORDERS

from ..models import FAMILIES
from ..testing import PIXEL_UNIT, model_sizes
from ..tokens import LATENT_FEEDBACK_NORMS, LATENT_IMAGERY

DEFAULT_FAMILIES = ("cam_dir", "cam_rot")
"""The question families of the default run: those a small model learns within its minutes (docs/quickstart.md)."""
STUDY_FAMILIES = tuple(t for t in QUESTION_TYPES if t not in ("cam_tag", "cam_mag", "abs_dis", "rel_dis"))
"""Every family with four possible answers, the ones ``option_order="fixed"`` asks."""


@dataclass(frozen=True)
class FromSetting:
    """An ablation's DIFT value given by the quickstart setting ``name`` (read when the arm trains, so recorded)."""

    name: str


ABLATIONS = {
    "no_sim": ("DIFT without the similarity loss", {"sim_weight": 0.0}),
    "no_ce": ("DIFT without the text loss", {"ce_weight": 0.0}),
    **{f"k{k}": (f"DIFT with K = {k}", {"latent_size": k}) for k in (1, 2, 4, 8)},
    "calib": ("DIFT, calibrated feedback", {"latent_feedback_norm": "target"}),
    "centred": ("DIFT, centred similarity", {"latent_sim_centering": "mean"}),
    "centred_raw": ("DIFT, centred + raw similarity", {"latent_sim_centering": "both"}),
    "centred_calib": ("DIFT, centred similarity and feedback", {"latent_sim_centering": "mean",
                                                               "latent_feedback_norm": "centred"}),
    "centred_raw_calib": ("DIFT, centred + raw similarity, centred feedback", {"latent_sim_centering": "both",
                                                                             "latent_feedback_norm": "centred"}),
    "first_frame": ("DIFT, first-frame rows", {"first_frame_share": FromSetting("first_frame_share")}),
    "centred_calib_first_frame": ("DIFT, centred similarity and feedback, first-frame rows",
                                  {"latent_sim_centering": "mean", "latent_feedback_norm": "centred",
                                   "first_frame_share": FromSetting("first_frame_share")}),
    "motion": ("DIFT, motion imagery", {"latent_imagery": "motion"}),
    "still": ("DIFT, still imagery", {"latent_imagery": "still"}),
    "contrast": ("DIFT, swapped-imagery contrast", {"latent_contrast_weight": FromSetting("contrast_weight")}),
    "contrast_reversed": ("DIFT, reversed-imagery contrast", {"latent_contrast_weight": FromSetting("contrast_weight"),
                                                             "latent_contrast_negatives": "reversed"}),
    "contrast_counterfactual": ("DIFT, counterfactual-imagery contrast",
                                {"latent_contrast_weight": FromSetting("contrast_weight"),
                                 "latent_contrast_negatives": "counterfactual"}),
    "contrast_counterfactual_reasoning": ("DIFT, counterfactual contrast on the reasoning",
                                          {"latent_contrast_weight": FromSetting("contrast_weight"),
                                           "latent_contrast_negatives": "counterfactual",
                                           "latent_contrast_span": "reasoning"}),
}
"""Extra DIFT arms of ``--ablations``: label and the DIFT settings they change (all else as the DIFT arm)."""
TEXT_ABLATIONS = {
    "text_first_frame": ("text-only SFT, first-frame rows", {"first_frame_share": FromSetting("first_frame_share")}),
}
"""Extra text-only arms of ``--ablations``, compared with the text-only arm: controls for a DIFT arm's change of the
training rows, which would reach a text-only model as well (without imagery to read on the changed rows)."""
ALL_ABLATIONS = {**ABLATIONS, **TEXT_ABLATIONS}
"""Every name ``--ablations`` takes, DIFT and text-only."""
CONTROLS = {"first_frame": "text_first_frame", "centred_calib_first_frame": "text_first_frame"}
"""A DIFT ablation's text-only control: when both run, the report also compares them (the same training rows, with
and without imagery)."""


def ablation_arm(name: str) -> str:
    """The arm an ablation adds: ``sft_<name>`` for a text-only one, ``dift_<name>`` otherwise."""
    return f"sft_{name}" if name in TEXT_ABLATIONS else f"dift_{name}"


def ablation_settings(name: str) -> dict[str, Any]:
    """The training settings ablation ``name`` changes (DIFT or text-only alike)."""
    return ALL_ABLATIONS[name][1]


def twin_ablation(name: str) -> bool:
    """Whether ablation ``name`` trains against a counterfactual twin world's imagery (``counterfactual`` negatives)."""
    return name in ABLATIONS and ABLATIONS[name][1].get("latent_contrast_negatives") == "counterfactual"


STUDY_DIAGNOSTICS_LIMIT = 360
"""Held-out questions the study preset diagnoses (about a third; every family): its 7 latent arms' diagnoses took 20 min
at one thread on 360 questions (docs/quickstart.md), so all 1,072 would add about 40 more."""
GRPO_SCALE_REWARDS = ("group", "batch", "none")
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "study": {
        "output_dir": "runs/study", "num_clips": 320, "grpo_steps": 16, "imagery_size": 84,
        "families": list(STUDY_FAMILIES), "ablations": ["no_sim", "no_ce", "k1", "k2", "k8"],
        "diagnostics_limit": STUDY_DIAGNOSTICS_LIMIT,
    },
}
"""``--preset study``: more clips (enough held-out questions to resolve a 5-point paired difference), every question
family with four answers, and the paper's ablations as arms; ``imagery_size`` 84 gives 9 vision tokens per imagery
image, enough for K = 8."""


@dataclass
class QuickstartConfig:
    """Scale any of these up (more clips, a bigger model, a GPU) with flags; everything else follows."""

    preset: str = field(default="default", metadata={"help": f"Defaults to start from: {' or '.join(PRESETS)} (explicit "
                        "flags still win)."})
    output_dir: str = field(default="runs/quickstart", metadata={"help": "Everything is written under this folder."})
    num_clips: int = field(default=240, metadata={"help": "Synthetic clips (train + held-out)."})
    heldout_fraction: float = field(default=0.25, metadata={"help": "Share of clips kept for the held-out benchmark."})
    seed: int = field(default=0, metadata={"help": "Seed of the world, the model init and training."})
    seeds: list[int] = field(default_factory=list, metadata={"help": "Run everything once per seed (in place of "
                             "--seed), each into <output_dir>/seed<k>, and write spread.md / spread.json: every arm's "
                             "accuracy and paired difference per seed, mean, std and range."})
    image_size: int = field(default=84, metadata={"help": "Square frame side in pixels (multiple of 28)."})
    imagery_size: int = field(default=56, metadata={"help": "Imagery image side for the latent targets."})
    num_frames: int = field(default=8, metadata={"help": "Frames per clip."})
    input_frames: int | None = field(default=None, metadata={"help": "Frames of each clip the models see, thinned "
                                     "uniformly (default: all num_frames); questions and imagery still use every frame, "
                                     "so imagery can show moments the model's input does not."})
    visible_fraction: float = field(default=1.0, metadata={"help": "Share of each clip, from its start, the models "
                                    "see (rounded up to an even number of frames); questions and imagery still cover "
                                    "the whole clip, so answers about its end need imagery of a future the input does "
                                    "not show (docs/quickstart.md)."})
    fps: float = field(default=2.0, metadata={"help": "Frame rate of the clips (and of the model's video input)."})
    cot_style: str = field(default="concise", metadata={"help": "Template CoT: concise (imagery + conclusion, learnable "
                           "in minutes) or full (the measurements behind each label too)."})
    option_order: str = field(default="fixed", metadata={"help": "fixed: each option letter always names the same "
                              "answer of its question family (no lookup needed); rotate: DSR-Bench's balanced letters, "
                              "which need an option lookup a model trained from scratch does not learn in minutes."})
    families: list[str] = field(default_factory=lambda: list(DEFAULT_FAMILIES), metadata={
        "help": "Question types trained on and evaluated (camera types such as cam_dir included in the held-out set)."})
    perception: bool = field(default=True, metadata={"help": "Start every arm from a vision tower pretrained on the "
                             "synthetic world's dense ground truth (built once per machine and cached)."})
    perception_clips: int = field(default=480, metadata={"help": "Clips of the perception pretraining world."})
    perception_steps: int = field(default=800, metadata={"help": "Optimizer steps of perception pretraining."})
    perception_cache: str = field(default="~/.cache/trl-latent/perception", metadata={
        "help": "Where pretrained vision towers are kept, one folder per setting (like a model download)."})
    ablations: list[str] = field(default_factory=list, metadata={
        "help": f"Extra arms: DIFT {', '.join(ABLATIONS)}, text-only {', '.join(TEXT_ABLATIONS)} (without the "
        "similarity / text loss, K latents, fed-back latents rescaled to the targets' norm, the similarity loss on "
        "targets minus their mean (_raw: and on them as they are; _calib: fed-back latents' deviation from that mean "
        "rescaled to the targets'), --first_frame_share of the training rows shown only their first frame "
        "(_first_frame; text_first_frame: the text-only arm's control), motion or still imagery, the imagery contrast "
        "loss at --contrast_weight with another row's, the reversed or a counterfactual twin clip's imagery as "
        "negatives (the twin needs --visible_fraction below 1; _reasoning scores the reasoning only, not the "
        "answer)); none: no extra arm (to drop a preset's)."})
    model_family: str = field(default="qwen2_5_vl", metadata={"help": f"Random-init model family: {', '.join(FAMILIES)}."})
    model_size: str = field(default="small", metadata={"help": "Random-init model: tiny, small or 3b (GPU, Qwen2.5-VL)."})
    vocab_size: int = field(default=1024, metadata={"help": "Retrain the Qwen tokenizer's BPE on the training texts with "
                            "at most this many entries (0: the full 151k Qwen vocabulary, which dominates CPU step time)."})
    latent_size: int = field(default=4, metadata={"help": "K latent vectors per imagery image."})
    sft_steps: int = field(default=250, metadata={"help": "Optimizer steps of text-only SFT and of DIFT (same data order)."})
    base_steps: int = field(default=0, metadata={"help": "Text-only SFT steps of a shared base that every arm then "
                            "continues from for its sft_steps (0: the arms start from the initial weights): a model that "
                            "already answers from the video before imagery is taught, as the release's pretrained VLM "
                            "(docs/quickstart.md). Not with a K ablation, whose initial checkpoint is its own."})
    ce_weight: float = field(default=1.0, metadata={"help": "DIFT text-loss weight (the release's 0.1 suits a pretrained "
                             "model that already writes; a model trained from scratch needs the text signal)."})
    sim_weight: float = field(default=1.0, metadata={"help": "DIFT similarity-loss weight (the release's 1.0; the "
                              "no_sim ablation sets 0)."})
    latent_feedback_norm: str = field(default="none", metadata={"help": "DIFT arms' latent calibration: none (the "
                                      "release: hidden states fed back as they are), target (rescaled to the imagery "
                                      "targets' mean norm, recorded in the model config) or centred (their deviation "
                                      "from the mean target of their slot rescaled to the targets' mean deviation)."})
    latent_imagery: str = field(default="still", metadata={"help": "DIFT arms' latent targets: still (one imagery "
                                "image each, the release) or motion (each imagery image paired with the previous one "
                                "as a two-frame clip, so a target encodes what moved; docs/quickstart.md)."})
    contrast_weight: float = field(default=0.1, metadata={"help": "latent_contrast_weight of the contrast "
                                   "ablations' DIFT arms (docs/quickstart.md)."})
    first_frame_share: float = field(default=0.2, metadata={"help": "first_frame_share of the first_frame "
                                     "ablations' DIFT arms: the share of training rows shown only their clip's first "
                                     "frame, so that their answers must come from the imagery (docs/quickstart.md)."})
    stage2_steps: int = field(default=0, metadata={"help": "DIFT stage 2 (latent_feedback self, from the DIFT arm) as "
                              "an extra arm with this many steps (0: none)."})
    stage2_learning_rate: float = field(default=2e-4, metadata={"help": "LR of DIFT stage 2."})
    diagnostics: bool = field(default=True, metadata={"help": "Re-answer the held-out questions of every latent arm "
                              "with oracle imagery and with swapped latents (imagination gap, content dependence)."})
    diagnostics_limit: int | None = field(default=None, metadata={"help": "Diagnose only the first N held-out "
                                          "questions (default: all, or --eval_limit's); each diagnosed question is "
                                          "answered three more times per latent arm."})
    batch_size: int = field(default=8, metadata={"help": "Per-device batch of SFT and DIFT."})
    sft_learning_rate: float = field(default=1e-3, metadata={"help": "LR of SFT/DIFT (a random-init tiny model)."})
    grpo_steps: int = field(default=8, metadata={"help": "4DRL optimizer steps."})
    grpo_batch_size: int = field(default=16, metadata={"help": "Per-device 4DRL batch (completions): "
                                 "grpo_batch_size / num_generations prompts per optimizer step."})
    num_generations: int = field(default=4, metadata={"help": "Completions per prompt in 4DRL."})
    grpo_learning_rate: float = field(default=1e-5, metadata={"help": "LR of 4DRL (100x below SFT's: larger steps "
                                      "on noisy rollouts undo DIFT, docs/quickstart.md)."})
    grpo_beta: float = field(default=0.04, metadata={"help": "KL coefficient of 4DRL against the DIFT model (the "
                             "release's 0.01; 0 drops the reference model)."})
    grpo_scale_rewards: str = field(default="none", metadata={"help": "Advantage scaling of 4DRL (GRPOConfig."
                                    "scale_rewards): group (divide by each prompt's reward std, the release's), batch "
                                    "or none."})
    grpo_temperature: float = field(default=0.5, metadata={"help": "Sampling temperature of the 4DRL rollouts (the "
                                    "release's 1.0 samples a model trained from scratch far off its greedy behaviour; "
                                    "docs/quickstart.md)."})
    grpo_consistency_weight: float = field(default=1.0, metadata={"help": "Weight of the consistency reward "
                                           "(trl_latent.rewards.consistency: the answer letter is the option the "
                                           "reasoning concludes) next to accuracy 1.0 and format 0.2; 0: the "
                                           "release's rewards only."})
    grpo_conclusion_weight: float = field(default=0.0, metadata={"help": "Weight of the conclusion reward "
                                          "(trl_latent.rewards.conclusion: the reasoning concludes the right option) "
                                          "next to the others; 0: not used."})
    max_new_tokens: int = field(default=128, metadata={"help": "Longest completion in 4DRL and evaluation."})
    eval_batch_size: int = field(default=8, metadata={"help": "Questions per generation batch."})
    eval_limit: int | None = field(default=None, metadata={"help": "Only the first N held-out questions (default: all)."})
    eval_device: str = field(default="cpu", metadata={"help": "device_map of the evaluated model (cpu, auto, cuda:0)."})
    use_cpu: bool = field(default=True, metadata={"help": "Train on CPU even when a GPU is present."})
    bf16: bool = field(default=False, metadata={"help": "bf16 training and evaluation (GPU)."})
    workers: int = field(default=2, metadata={"help": "Processes rendering synthetic clips."})
    threads: int = field(default=2, metadata={"help": "torch threads of every training and evaluation stage (0: torch's "
                         "default, one per core). The numbers depend on it: the same value gives the same numbers on "
                         "any machine, whatever its core count."})
    pin_numerics: bool = field(default=True, metadata={"help": "Compute with AVX2 kernels in torch, MKL and oneDNN on "
                               "every CPU (ATEN_CPU_CAPABILITY, MKL_CBWR, ONEDNN_MAX_CPU_ISA), so machines with AVX-512 "
                               "give the same numbers as machines without."})
    no_latents: bool = field(default=False, metadata={"help": "Ablation: only the text-only arm (no imagery)."})
    progress: bool = field(default=True, metadata={"help": "Progress bars."})

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {list(PRESETS)}, got {self.preset!r}")
        if self.ablations == ["none"]:  # a command line cannot give an empty list
            self.ablations = []
        for name, allowed in (("families", QUESTION_TYPES), ("ablations", ALL_ABLATIONS)):
            unknown = sorted(set(getattr(self, name)) - set(allowed))
            if unknown:
                raise ValueError(f"{name} has unknown value(s) {unknown}; choose from {list(allowed)}")
        if self.option_order not in OPTION_ORDERS:
            raise ValueError(f"option_order must be one of {list(OPTION_ORDERS)}, got {self.option_order!r}")
        if not self.families:
            raise ValueError("families must name at least one question type")
        if self.model_family not in FAMILIES:
            raise ValueError(f"model_family must be one of {list(FAMILIES)}, got {self.model_family!r}")
        if self.model_size not in model_sizes(self.model_family):
            raise ValueError(f"model_size must be one of {sorted(model_sizes(self.model_family))} for "
                             f"{self.model_family}, got {self.model_size!r}")
        for name in ("image_size", "imagery_size"):
            if getattr(self, name) % PIXEL_UNIT:
                raise ValueError(f"{name} must be a multiple of 28 (Qwen2.5-VL patch 14 x merge 2), got {getattr(self, name)}")
        if not 0 < self.heldout_fraction < 1:
            raise ValueError(f"heldout_fraction must be in (0, 1), got {self.heldout_fraction}")
        imagery_tokens = (self.imagery_size // PIXEL_UNIT) ** 2
        for k in self.latent_sizes:
            if imagery_tokens < k:
                raise ValueError(f"imagery_size={self.imagery_size} gives {imagery_tokens} vision tokens per imagery "
                                 f"image, fewer than latent_size={k}")
        if self.cot_style not in TEMPLATE_STYLES:
            raise ValueError(f"cot_style must be one of {list(TEMPLATE_STYLES)}, got {self.cot_style!r}")
        if 0 < self.vocab_size < 300:
            raise ValueError(f"vocab_size must be 0 (full Qwen vocabulary) or at least 300 (256 bytes + specials), "
                             f"got {self.vocab_size}")
        if self.input_frames is not None and not (2 <= self.input_frames <= self.num_frames and self.input_frames % 2 == 0):
            raise ValueError(f"input_frames must be even and in [2, num_frames={self.num_frames}], got {self.input_frames}")
        if not 0 < self.visible_fraction <= 1:
            raise ValueError(f"visible_fraction must be in (0, 1], got {self.visible_fraction}")
        if self.latent_imagery not in LATENT_IMAGERY:
            raise ValueError(f"latent_imagery must be one of {list(LATENT_IMAGERY)}, got {self.latent_imagery!r}")
        if self.counterfactual_ablations and self.visible_fraction == 1:
            raise ValueError(f"{self.counterfactual_ablations[0]} contrasts the imagery with a twin clip that differs "
                             "only after the frames the model sees: set --visible_fraction below 1")
        if not self.contrast_weight > 0:
            raise ValueError(f"contrast_weight must be positive, got {self.contrast_weight}")
        if not 0 < self.first_frame_share < 1:
            raise ValueError(f"first_frame_share must be in (0, 1), got {self.first_frame_share}")
        if self.latent_feedback_norm not in LATENT_FEEDBACK_NORMS:
            raise ValueError(f"latent_feedback_norm must be one of {LATENT_FEEDBACK_NORMS}, "
                             f"got {self.latent_feedback_norm!r}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {self.seeds}")
        if self.grpo_scale_rewards not in GRPO_SCALE_REWARDS:
            raise ValueError(f"grpo_scale_rewards must be one of {list(GRPO_SCALE_REWARDS)}, got {self.grpo_scale_rewards!r}")
        for name in ("grpo_consistency_weight", "grpo_conclusion_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 (not used) or positive, got {getattr(self, name)}")
        if not self.grpo_temperature > 0:
            raise ValueError(f"grpo_temperature must be positive, got {self.grpo_temperature}")
        if self.diagnostics_limit is not None and self.diagnostics_limit < 1:
            raise ValueError(f"diagnostics_limit must be a positive number of questions, got {self.diagnostics_limit}")
        if self.base_steps < 0:
            raise ValueError(f"base_steps must be 0 (no shared base) or positive, got {self.base_steps}")
        other_k = [a for a in self.ablations if self.ablation_latent_size(a) != self.latent_size]
        if self.base_steps and other_k:
            raise ValueError(f"base_steps trains one shared base with latent_size={self.latent_size}, so it cannot "
                             f"start ablation {other_k[0]!r}, whose K differs: drop the ablation or base_steps")
        if self.threads < 0:
            raise ValueError(f"threads must be 0 (torch's default) or positive, got {self.threads}")
        if self.num_frames % 2:
            raise ValueError(f"num_frames must be even (temporal patch 2), got {self.num_frames}")

    @property
    def model_frames(self) -> int:
        """Frames per clip the models see (``input_frames``, else every frame)."""
        return self.input_frames or self.num_frames

    @property
    def counterfactual_ablations(self) -> list[str]:
        """The ablations trained with a counterfactual twin world's imagery as negatives."""
        return [a for a in self.ablations if twin_ablation(a)]

    @property
    def twin_world(self) -> bool:
        """Whether the run renders a counterfactual twin world (some ablation trains against it). The diagnoses read
        this, not which arms do, so adding a second such arm redoes no other arm's diagnosis."""
        return bool(self.counterfactual_ablations)

    def ablation_latent_size(self, name: str) -> int:
        """K of ablation ``name``'s arm: a K ablation's own, else the run's."""
        return ablation_settings(name).get("latent_size", self.latent_size)

    @property
    def latent_sizes(self) -> list[int]:
        """K of every arm: the DIFT arms' and any K ablation's."""
        return sorted({self.latent_size} | {self.ablation_latent_size(a) for a in self.ablations})

    def summary(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
