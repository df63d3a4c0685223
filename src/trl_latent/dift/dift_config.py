"""Configuration of Dynamic-Imagery Fine-Tuning."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import SFTConfig

from ..checkpointing_config import ActivationCheckpointingDefault
from ..data import VisualOptions
from ..recipe_fields import (
    check_recipe_fields,
    mrope_position_rule_field,
    prompt_suffix_field,
    skip_invalid_samples_field,
)
from ..tokens import COMPRESS_STRATEGIES, LATENT_FEEDBACK_NORMS, LATENT_IMAGERY

DEFAULT_CE_WEIGHT, DEFAULT_SIM_WEIGHT = 0.1, 1.0
LATENT_FEEDBACK = ("teacher", "self")
CONTRAST_NEGATIVES = ("other_row", "reversed", "counterfactual")
CONTRAST_SPANS = ("continuation", "reasoning")
SIM_CENTERINGS = ("none", "mean", "both")


@dataclass
class LatentImageryConfig(ActivationCheckpointingDefault, SFTConfig):
    r"""
    Configuration class for the [`LatentImageryTrainer`] (DIFT).

    Only the parameters specific to DIFT are listed here; every [`~trl.SFTConfig`] field works as usual. Defaults that
    differ from `SFTConfig`: `remove_unused_columns=False` (the collator reads the record columns),
    `dataset_kwargs={"skip_prepare_dataset": True}` (records are decoded on the fly) and `max_length=None` (sequences
    are never truncated: a cut would separate vision or latent placeholders from their features; a set `max_length`
    makes over-long samples an error).

    Parameters:
        > Latent imagery

        latent_size (`int`, *optional*, defaults to `4`):
            Number K of latent vectors per imagery image (`<|latent_pad|>` tokens per block).
        compress_strategy (`str`, *optional*, defaults to `"average"`):
            How an imagery image's merged vision tokens become K vectors: the mean of K contiguous groups.
        ce_weight (`float` or `None`, *optional*, defaults to `None`):
            Weight of the next-token cross-entropy on the answer text (latent start/end included, pads excluded).
            `None`: the checkpoint's `ce_loss_weight` (the release's config key) when it has one, else `0.1`. The
            weights used are written back as `ce_loss_weight` / `sim_loss_weight` in the saved config.
        sim_weight (`float` or `None`, *optional*, defaults to `None`):
            Weight of the latent similarity loss `1 - cos(h[t-1], target[t])` at the latent pad positions. `None`:
            the checkpoint's `sim_loss_weight`, else `1.0`.
        freeze_vision_tower (`bool`, *optional*, defaults to `True`):
            Freeze the vision tower and keep it in eval mode. It also produces the latent targets, which must not
            drift towards the language model's predictions.
        latent_feedback (`str`, *optional*, defaults to `"teacher"`):
            What the latent pad positions receive as input: `"teacher"`, the imagery target vectors (one parallel
            forward); `"self"`, the model's own previous last-layer hidden state, as at inference (the sequence runs
            in lockstep rounds with the KV cache, one batched pass per latent position; needs
            `activation_checkpointing=False` and `sdpa` or `eager` attention). Both supervise the hidden state before
            each pad against the target.
        latent_feedback_norm (`str` or `None`, *optional*, defaults to `None`):
            Calibration of the fed-back latents, a departure from the release: `"target"` measures the mean norm of
            the imagery targets on the first `feedback_norm_samples` training records and records it in the model
            config (`latent_feedback_norm`), and every fed-back hidden state is then rescaled to that norm, in `self`
            mode, at inference, in 4DRL rollouts and in lmms-eval alike (the cosine loss leaves the states' norm
            free, often several times the targets'); `"centred"` records, from the same records, the mean target of
            each latent slot (`latent_feedback_center`) and the mean norm of the targets minus it, and a fed-back
            state's deviation from its slot's mean takes that norm, the mean added back (the centred similarity,
            `latent_sim_centering="mean"`, trains only that deviation's direction); `"none"` removes both (the
            release: states fed back as they are); `None` keeps what the checkpoint records (nothing, for a model
            never calibrated).
        feedback_norm_samples (`int`, *optional*, defaults to `64`):
            Training records whose imagery targets give the recorded norm (`latent_feedback_norm` `"target"` or
            `"centred"`) and the
            centring mean (`latent_sim_centering` `"mean"` or `"both"`).
        latent_sim_centering (`str`, *optional*, defaults to `"none"`):
            What the similarity loss compares: `"none"`, the hidden state with the imagery target (the release);
            `"mean"`, a departure from the release, both minus the mean target of their latent slot (measured on the
            first `feedback_norm_samples` training records), so that `1 - cos` scores the part of a target that
            differs between questions. Imagery targets share most of their direction (still targets lie within
            cosine 0.97 of their mean), so the plain cosine is nearly met by imagining the mean picture for every
            question, and the models' own latents stay closer to that mean than to their own target
            (docs/quickstart.md); `"both"`, the mean of the two terms, so that the imagined vectors also keep the part
            all targets share, which the text after a block was teacher-forced with. Changes the loss only; nothing is
            recorded for inference.
        latent_imagery (`str` or `None`, *optional*, defaults to `None`):
            What each latent block's target encodes, a departure from the release when not `"still"`: `"still"`, the
            frozen tower's features of one imagery image (the release); `"motion"`, the tower's features of that image
            paired with the previous imagery image of the same CoT as a two-frame clip (the first image of a CoT stays
            a still), so that a target encodes what moved between two moments. Recorded in the model config
            (`latent_imagery`), which the oracle diagnostics read; `None` keeps what the checkpoint records (`"still"`
            for a model never trained with motion).
        latent_contrast_weight (`float`, *optional*, defaults to `0.0`):
            Weight of the imagery contrast, a departure from the release (`0`: off, the release): each batch runs a
            second time with every row's imagery targets replaced by negatives, and the loss
            `softplus(log p(text | negative imagery) - log p(text | own imagery))` over the text after each row's first
            latent block makes that text depend on the block's content, which teacher forcing alone does not
            (docs/dift.md). Costs a second forward and backward per step; needs `latent_feedback="teacher"` and no
            `padding_free`.
        latent_contrast_negatives (`str`, *optional*, defaults to `"other_row"`):
            The contrast's negatives: `"other_row"`, the next batch row's imagery (rows whose text equals that row's
            are left out; needs at least two rows per device batch); `"reversed"`, the row's own images in reverse
            order (the same scene, only the order of events differs; rows with one image are left out);
            `"counterfactual"`, each record's `counterfactual_output`: the same question's imagery in a twin of the
            clip that agrees with it up to some moment and differs after (records without one are left out;
            `datagen.counterfactual` pairs a synthetic world's twins).
        latent_contrast_span (`str`, *optional*, defaults to `"continuation"`):
            The text the contrast scores: `"continuation"`, all the text after each row's first latent block, answer
            included; `"reasoning"`, that text up to the token that begins its last `</think>` (a row without one is
            scored whole), so that the imagery moves the written reasoning and the answer is left to the text loss,
            which ties it to the reasoning (scoring the answer too let the contrast move the answer away from the
            reasoning it follows: docs/quickstart.md).
        first_frame_share (`float`, *optional*, defaults to `0.0`):
            Share of the training rows whose user video (a frame list) is cut to its first frame, a still image, a
            departure from the release: on those rows the motion the answer names is only in the imagery, so the text
            after a latent block learns to read it (without them the video already says what the imagery says, and
            the latents' content goes unread: docs/quickstart.md). Rows are picked by a hash of their file name and
            line, so the same rows on every machine and after a resume; `0` (the release) cuts none.
        cache_latent_targets (`bool`, *optional*, defaults to `True`):
            Compute each imagery image's targets once and reuse them (keyed by path) while the vision tower has no
            trainable parameter; K x hidden values per image stay on the device (16 KiB at 3B in bf16, K=4).
        padding_free (`bool`, *optional*, defaults to `False`):
            The `SFTConfig` field, honoured here for multimodal rows (stock TRL refuses it for vision data): the
            collator packs a batch's rows end to end into one row with per-row 3-D mRoPE positions and no padding
            (flash-attention varlen when that is the attention implementation, a block-diagonal mask otherwise).
            Needs `latent_feedback="teacher"`.

        > Visual inputs

        fps (`float`, *optional*, defaults to `1.0`):
            Frame rate the user video is sampled at (video files and frame lists alike).
        frames_fps (`float`, *optional*, defaults to `1.0`):
            Frame rate an `image_input` frame list was extracted at.
        max_frames (`int`, *optional*, defaults to `50`):
            Most frames per video; longer videos are thinned uniformly (the real rate is passed to the model).
        min_pixels (`int`, *optional*, defaults to `784`):
            Least pixels per user image or video frame (sides are multiples of 28).
        max_pixels (`int`, *optional*, defaults to `200704`):
            Most pixels per user image or video frame (256 * 28 * 28).
        imagery_min_pixels (`int`, *optional*, defaults to `784`):
            Least pixels per imagery image.
        imagery_max_pixels (`int`, *optional*, defaults to `200704`):
            Most pixels per imagery image. It must give at least K merged vision tokens (K * 784 pixels).
        mrope_position_rule (`str`, *optional*, defaults to `"reference"`):
            3-D mRoPE positions: `"reference"` (Qwen's rule, which Qwen2.5-VL and the released checkpoints were
            trained with: text after a vision block resumes after its largest id on any axis) or `"upstream"` (the
            installed transformers' rule, which ignores the time axis there). Installed in the model and saved in
            its config, so generation, 4DRL and evaluation use the same rule.
        prompt_suffix (`str`, *optional*, defaults to `"think"`):
            Instruction appended to each question: `"think"` (ours), `"release"` (the release's DIFT/eval suffix,
            byte for byte, to continue a released checkpoint) or `"release_rl"` (its 4DRL suffix).
        skip_invalid_samples (`bool`, *optional*, defaults to `False`):
            Drop invalid records (logged one by one and counted) instead of stopping with an error naming `file:line`:
            at load time, and at step time for media that fail to decode (the run total is logged as
            `skipped_samples`).
    """

    latent_size: int = field(default=4, metadata={"help": "Number K of latent vectors per imagery image."})
    compress_strategy: str = field(
        default="average",
        metadata={"help": "Pooling of an imagery image's vision tokens into K vectors.", "choices": list(COMPRESS_STRATEGIES)},
    )
    ce_weight: float | None = field(
        default=None,
        metadata={"help": "Weight of the text cross-entropy loss (None: the checkpoint's ce_loss_weight, else 0.1)."},
    )
    sim_weight: float | None = field(
        default=None,
        metadata={"help": "Weight of the latent cosine loss (None: the checkpoint's sim_loss_weight, else 1.0)."},
    )
    freeze_vision_tower: bool = field(
        default=True, metadata={"help": "Freeze the vision tower (and keep it in eval mode); it also makes the targets."}
    )
    latent_feedback: str = field(
        default="teacher",
        metadata={"help": "Input at the latent pads: the targets (teacher) or the model's own hidden state (self).",
                  "choices": list(LATENT_FEEDBACK)},
    )
    latent_feedback_norm: str | None = field(
        default=None,
        metadata={"help": "Rescale fed-back latents to the imagery targets' mean norm (target), their deviation from "
                  "the mean target of their slot to the targets' mean deviation (centred), not at all as the release "
                  "(none), or keep what the checkpoint records (unset).", "choices": list(LATENT_FEEDBACK_NORMS)},
    )
    feedback_norm_samples: int = field(
        default=64, metadata={"help": "Training records whose targets give latent_feedback_norm=target's norm and "
                              "latent_sim_centering's mean."}
    )
    latent_sim_centering: str = field(
        default="none",
        metadata={"help": "Similarity loss on the hidden state and target as they are (none, the release), both minus "
                  "the mean target of their latent slot (mean), or the mean of the two terms (both).",
                  "choices": list(SIM_CENTERINGS)},
    )
    latent_imagery: str | None = field(
        default=None,
        metadata={"help": "Latent targets: one imagery image each (still, the release) or each image paired with the "
                  "previous one as a two-frame clip (motion); unset keeps what the checkpoint records.",
                  "choices": list(LATENT_IMAGERY)},
    )
    latent_contrast_weight: float = field(
        default=0.0,
        metadata={"help": "Weight of the imagery contrast: the text after a block must be likelier with the row's own "
                  "imagery than with negatives (0: off, the release)."},
    )
    latent_contrast_negatives: str = field(
        default="other_row",
        metadata={"help": "Negatives of the imagery contrast: another row's imagery (other_row), the row's own "
                  "images in reverse order (reversed) or each record's counterfactual_output imagery (counterfactual).",
                  "choices": list(CONTRAST_NEGATIVES)},
    )
    latent_contrast_span: str = field(
        default="continuation",
        metadata={"help": "Text the imagery contrast scores: all of it after the first block (continuation) or only "
                  "the reasoning, up to </think> (reasoning: the answer is left to the text loss).",
                  "choices": list(CONTRAST_SPANS)},
    )
    first_frame_share: float = field(
        default=0.0,
        metadata={"help": "Share of training rows shown only the first frame of their video (picked by file and line), "
                  "so their answers must come from the imagery (0: every row sees its video, the release)."},
    )
    cache_latent_targets: bool = field(
        default=True, metadata={"help": "Compute a frozen tower's imagery targets once per image and reuse them."}
    )
    fps: float = field(default=1.0, metadata={"help": "Frame rate the user video is sampled at."})
    frames_fps: float = field(default=1.0, metadata={"help": "Frame rate an `image_input` frame list was extracted at."})
    max_frames: int = field(default=50, metadata={"help": "Most frames per video (thinned uniformly beyond)."})
    min_pixels: int = field(default=28 * 28, metadata={"help": "Least pixels per user image / video frame."})
    max_pixels: int = field(default=256 * 28 * 28, metadata={"help": "Most pixels per user image / video frame."})
    imagery_min_pixels: int = field(default=28 * 28, metadata={"help": "Least pixels per imagery image."})
    imagery_max_pixels: int = field(default=256 * 28 * 28, metadata={"help": "Most pixels per imagery image."})
    mrope_position_rule: str = mrope_position_rule_field()
    prompt_suffix: str = prompt_suffix_field()
    skip_invalid_samples: bool = skip_invalid_samples_field()

    # Parameters whose default values are overridden from SFTConfig
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Keep the record columns: the DIFT collator reads them."}
    )
    max_length: int | None = field(
        default=None,
        metadata={"help": "Longest allowed sequence; longer samples are an error (never truncated). None: no limit."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()  # parses dict fields given as JSON strings on the command line
        # records are decoded by the collator, never tokenized up front
        self.dataset_kwargs = {"skip_prepare_dataset": True, **(self.dataset_kwargs or {})}
        if self.ce_weight is not None and self.sim_weight is not None:
            self.check_loss_weights()
        check_recipe_fields(self)
        if self.imagery_max_pixels < self.latent_size * 28 * 28:
            raise ValueError(
                f"imagery_max_pixels={self.imagery_max_pixels} gives fewer than latent_size={self.latent_size} "
                "vision tokens per imagery image"
            )
        if self.latent_feedback not in LATENT_FEEDBACK:
            raise ValueError(f"latent_feedback must be one of {LATENT_FEEDBACK}, got {self.latent_feedback!r}")
        if self.latent_feedback_norm not in (None, *LATENT_FEEDBACK_NORMS):
            raise ValueError(f"latent_feedback_norm must be one of {LATENT_FEEDBACK_NORMS} or unset, "
                             f"got {self.latent_feedback_norm!r}")
        if self.latent_imagery not in (None, *LATENT_IMAGERY):
            raise ValueError(f"latent_imagery must be one of {LATENT_IMAGERY} or unset, got {self.latent_imagery!r}")
        if self.latent_sim_centering not in SIM_CENTERINGS:
            raise ValueError(f"latent_sim_centering must be one of {SIM_CENTERINGS}, got {self.latent_sim_centering!r}")
        if not 0.0 <= self.first_frame_share < 1.0:
            raise ValueError(f"first_frame_share must be in [0, 1), got {self.first_frame_share}")
        if self.feedback_norm_samples < 1:
            raise ValueError(f"feedback_norm_samples must be >= 1, got {self.feedback_norm_samples}")
        if self.latent_contrast_negatives not in CONTRAST_NEGATIVES:
            raise ValueError(f"latent_contrast_negatives must be one of {CONTRAST_NEGATIVES}, "
                             f"got {self.latent_contrast_negatives!r}")
        if self.latent_contrast_span not in CONTRAST_SPANS:
            raise ValueError(f"latent_contrast_span must be one of {CONTRAST_SPANS}, got {self.latent_contrast_span!r}")
        if self.latent_contrast_weight < 0:
            raise ValueError(f"latent_contrast_weight must be >= 0, got {self.latent_contrast_weight}")
        if self.latent_contrast_weight:
            if self.latent_feedback != "teacher":
                raise ValueError("latent_contrast_weight replaces the teacher-forced imagery by negatives: it needs "
                                 f"latent_feedback='teacher', not {self.latent_feedback!r}")
            if self.padding_free:
                raise ValueError("latent_contrast_weight scores each batch row's text, which padding_free packs "
                                 "into one row: set padding_free to false")
            if self.latent_contrast_negatives == "other_row" and self.per_device_train_batch_size < 2:
                raise ValueError("latent_contrast_negatives='other_row' swaps imagery between the rows of a device "
                                 f"batch: set per_device_train_batch_size >= 2, not {self.per_device_train_batch_size}")
        if self.latent_feedback == "self" and self.activation_checkpointing:
            raise ValueError(
                "latent_feedback='self' runs the sequence block by block through the KV cache, which transformers "
                "drops under gradient checkpointing: set activation_checkpointing (gradient_checkpointing) to false"
            )
        if self.latent_feedback == "self" and self.padding_free:
            raise ValueError("latent_feedback='self' runs rows in lockstep rounds and cannot be packed: set "
                             "padding_free to false")
        _ = self.visual_options  # validates fps / frames / pixel budgets now rather than at the first batch

    def resolve_loss_weights(self, recorded: tuple[float, float] | None) -> None:
        """Fill unset weights from a checkpoint's recorded ``(ce_loss_weight, sim_loss_weight)``, else the defaults."""
        ce, sim = recorded or (DEFAULT_CE_WEIGHT, DEFAULT_SIM_WEIGHT)
        self.ce_weight = ce if self.ce_weight is None else self.ce_weight
        self.sim_weight = sim if self.sim_weight is None else self.sim_weight
        self.check_loss_weights()

    def check_loss_weights(self) -> None:
        if self.ce_weight < 0 or self.sim_weight < 0 or self.ce_weight + self.sim_weight == 0:
            raise ValueError(f"need ce_weight, sim_weight >= 0 and not both 0, got {self.ce_weight}, {self.sim_weight}")

    @property
    def visual_options(self) -> VisualOptions:
        return VisualOptions(self.fps, self.max_frames, self.min_pixels, self.max_pixels, self.frames_fps)
