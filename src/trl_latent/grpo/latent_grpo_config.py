"""Configuration of 4DRL: GRPOConfig plus how user videos and images are decoded for rollouts."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig

from ..checkpointing_config import ActivationCheckpointingDefault
from ..data import VisualOptions
from ..recipe_fields import (
    check_recipe_fields,
    mrope_position_rule_field,
    prompt_suffix_field,
    skip_invalid_samples_field,
)


@dataclass
class LatentGRPOConfig(ActivationCheckpointingDefault, GRPOConfig):
    r"""
    Configuration class for [`LatentGRPOTrainer`]: every [`~trl.GRPOConfig`] field, plus the decoding of user visuals.

    Rollouts run the latent generation loop of `trl_latent.generation` (continuous "mental image" vectors fed back at
    `<|latent_pad|>` positions), which vLLM and transformers' continuous batching cannot do, so both stay off.

    Parameters:
        fps (`float`, *optional*, defaults to `1.0`):
            Rate at which user videos are sampled. The real rate reaches the processor, so the temporal mRoPE spacing
            of the frames matches the time between them.
        max_frames (`int`, *optional*, defaults to `16`):
            Most frames per video; longer videos are thinned uniformly (the sampled rate is reported accordingly).
        frames_fps (`float`, *optional*, defaults to `1.0`):
            Rate at which an `image_input` list of frame files was extracted.
        min_pixels (`int`, *optional*, defaults to `784`):
            Smallest pixel count of an image or video frame (sides are multiples of 28).
        max_pixels (`int`, *optional*, defaults to `200704`):
            Largest pixel count of an image or video frame (`256 * 28 * 28`, as in the release).
        skip_invalid_samples (`bool`, *optional*, defaults to `False`):
            Drop invalid records at load time and, at rollout time, mask out of the loss the rows of a prompt whose
            media fail to decode (logged, counted as `skipped_samples`), instead of stopping with an error naming
            `file:line`.
        mask_latent_start (`bool`, *optional*, defaults to `False`):
            Also leave `<|latent_start|>` out of the policy loss, KL and entropy, as the release does (it masks all
            three latent tokens). Off by default: the start token is sampled by the policy, it is the decision to
            imagine, so its log-prob is the only handle the reward has on when the model imagines. The pads (fed-back
            vectors) and the end (forced after K pads) are never scored.
        mrope_position_rule (`str`, *optional*, defaults to `"reference"`):
            3-D mRoPE rule for rollouts and every log-prob recomputation: `"reference"` (Qwen's, which Qwen2.5-VL and
            the released checkpoints were trained with) or `"upstream"` (the installed transformers'). Installed in
            the policy and reference models and saved in the checkpoint's config.
        vision_once_per_prompt (`bool`, *optional*, defaults to `True`):
            In every log-prob pass (old, reference, policy), run the vision tower once per prompt in each chunk and
            reuse its features for all the prompt's rollouts, instead of once per rollout row (`num_generations`
            times the vision compute and activations). Same log-probs and gradients: a trainable tower gets, through
            the shared features, the sum of the rows' gradients. Off only to compare (`benchmarks/bench_grpo.py`).
        prompt_suffix (`str`, *optional*, defaults to `"think"`):
            Instruction appended to each question: `"think"` (ours), `"release_rl"` (the release's 4DRL suffix, byte
            for byte, to continue its checkpoints as they were trained) or `"release"` (its DIFT/eval suffix).
    """

    fps: float = field(default=1.0, metadata={"help": "Rate at which user videos are sampled (frames per second)."})
    max_frames: int = field(default=16, metadata={"help": "Most frames per video; longer videos are thinned."})
    frames_fps: float = field(
        default=1.0, metadata={"help": "Rate at which an `image_input` list of frame files was extracted."}
    )
    min_pixels: int = field(default=28 * 28, metadata={"help": "Smallest pixel count of an image or frame."})
    max_pixels: int = field(default=256 * 28 * 28, metadata={"help": "Largest pixel count of an image or frame."})
    skip_invalid_samples: bool = skip_invalid_samples_field()
    mask_latent_start: bool = field(
        default=False, metadata={"help": "Leave <|latent_start|> out of the policy loss too, as the release does."}
    )
    vision_once_per_prompt: bool = field(
        default=True,
        metadata={"help": "Run the vision tower once per prompt in each log-prob chunk and share its features among "
                          "the prompt's rollouts (off: once per rollout row)."},
    )
    mrope_position_rule: str = mrope_position_rule_field()
    prompt_suffix: str = prompt_suffix_field()

    def __post_init__(self) -> None:
        if self.use_vllm:
            raise ValueError(
                "LatentGRPOConfig: use_vllm=True is not supported. Latent rollouts feed hidden states back as input "
                "embeddings mid-sequence, which vLLM cannot do; set use_vllm=False (rollouts use the HF model)."
            )
        if self.use_transformers_continuous_batching or self.use_transformers_paged:
            raise ValueError(
                "LatentGRPOConfig: use_transformers_continuous_batching is not supported: latent rollouts run their "
                "own per-row decoding loop (trl_latent.generation.generate_with_latents)."
            )
        if self.min_p is not None:
            raise ValueError("LatentGRPOConfig: min_p is not supported by the latent generation loop; use top_k/top_p.")
        if self.generation_kwargs:
            raise ValueError(
                f"LatentGRPOConfig: generation_kwargs {self.generation_kwargs} cannot be honoured by the latent "
                "generation loop; use the temperature, top_k, top_p and repetition_penalty fields."
            )
        check_recipe_fields(self)
        super().__post_init__()
        self.visual_options  # noqa: B018 - validates fps, frames and pixel budgets now, not at the first rollout

    @property
    def visual_options(self) -> VisualOptions:
        """The decoding settings as `trl_latent.data` takes them."""
        return VisualOptions(
            fps=self.fps,
            max_frames=self.max_frames,
            min_pixels=self.min_pixels,
            max_pixels=self.max_pixels,
            frames_fps=self.frames_fps,
        )
