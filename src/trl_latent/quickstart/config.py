"""Settings of ``trl-latent quickstart``: defaults fit the whole run in about 10 minutes on 2 CPU cores."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from datagen.cot.template import TEMPLATE_STYLES

from ..testing import PIXEL_UNIT, QWEN2_5_VL_3B_TEXT, QWEN2_5_VL_3B_VISION, TINY_TEXT, TINY_VISION

SMALL_TEXT = dict(
    hidden_size=256, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
    rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [8, 12, 12]},
)
SMALL_VISION = dict(depth=4, hidden_size=128, intermediate_size=256, num_heads=4, window_size=56,
                    fullatt_block_indexes=[1, 3])
MODEL_SIZES: dict[str, tuple[dict, dict]] = {
    "tiny": (TINY_TEXT, TINY_VISION),
    "small": (SMALL_TEXT, SMALL_VISION),
    "3b": (QWEN2_5_VL_3B_TEXT, QWEN2_5_VL_3B_VISION),
}


@dataclass
class QuickstartConfig:
    """Scale any of these up (more clips, a bigger model, a GPU) with flags; everything else follows."""

    output_dir: str = field(default="runs/quickstart", metadata={"help": "Everything is written under this folder."})
    num_clips: int = field(default=64, metadata={"help": "Synthetic clips (train + held-out)."})
    heldout_fraction: float = field(default=0.25, metadata={"help": "Share of clips kept for the held-out benchmark."})
    seed: int = field(default=0, metadata={"help": "Seed of the world, the model init and training."})
    image_size: int = field(default=84, metadata={"help": "Square frame side in pixels (multiple of 28)."})
    imagery_size: int = field(default=56, metadata={"help": "Imagery image side for the latent targets."})
    num_frames: int = field(default=8, metadata={"help": "Frames per clip."})
    fps: float = field(default=2.0, metadata={"help": "Frame rate of the clips (and of the model's video input)."})
    cot_style: str = field(default="concise", metadata={"help": "Template CoT: concise (imagery + conclusion, learnable "
                           "in minutes) or full (the measurements behind each label too)."})
    model_size: str = field(default="small", metadata={"help": "Random-init model: tiny, small or 3b (GPU)."})
    vocab_size: int = field(default=1024, metadata={"help": "Retrain the Qwen tokenizer's BPE on the training texts with "
                            "at most this many entries (0: the full 151k Qwen vocabulary, which dominates CPU step time)."})
    latent_size: int = field(default=4, metadata={"help": "K latent vectors per imagery image."})
    sft_steps: int = field(default=250, metadata={"help": "Optimizer steps of text-only SFT and of DIFT (same data order)."})
    ce_weight: float = field(default=1.0, metadata={"help": "DIFT text-loss weight (the release's 0.1 suits a pretrained "
                             "model that already writes; a model trained from scratch needs the text signal)."})
    batch_size: int = field(default=8, metadata={"help": "Per-device batch of SFT and DIFT."})
    sft_learning_rate: float = field(default=1e-3, metadata={"help": "LR of SFT/DIFT (a random-init tiny model)."})
    grpo_steps: int = field(default=8, metadata={"help": "4DRL optimizer steps."})
    grpo_batch_size: int = field(default=4, metadata={"help": "Per-device 4DRL batch (completions)."})
    num_generations: int = field(default=4, metadata={"help": "Completions per prompt in 4DRL."})
    grpo_learning_rate: float = field(default=1e-4, metadata={"help": "LR of 4DRL."})
    max_new_tokens: int = field(default=128, metadata={"help": "Longest completion in 4DRL and evaluation."})
    eval_batch_size: int = field(default=8, metadata={"help": "Questions per generation batch."})
    eval_limit: int | None = field(default=None, metadata={"help": "Only the first N held-out questions (default: all)."})
    eval_device: str = field(default="cpu", metadata={"help": "device_map of the evaluated model (cpu, auto, cuda:0)."})
    use_cpu: bool = field(default=True, metadata={"help": "Train on CPU even when a GPU is present."})
    bf16: bool = field(default=False, metadata={"help": "bf16 training and evaluation (GPU)."})
    workers: int = field(default=2, metadata={"help": "Processes rendering synthetic clips."})
    no_latents: bool = field(default=False, metadata={"help": "Ablation: only the text-only arm (no imagery)."})
    progress: bool = field(default=True, metadata={"help": "Progress bars."})

    def __post_init__(self) -> None:
        if self.model_size not in MODEL_SIZES:
            raise ValueError(f"model_size must be one of {sorted(MODEL_SIZES)}, got {self.model_size!r}")
        for name in ("image_size", "imagery_size"):
            if getattr(self, name) % PIXEL_UNIT:
                raise ValueError(f"{name} must be a multiple of 28 (Qwen2.5-VL patch 14 x merge 2), got {getattr(self, name)}")
        if not 0 < self.heldout_fraction < 1:
            raise ValueError(f"heldout_fraction must be in (0, 1), got {self.heldout_fraction}")
        imagery_tokens = (self.imagery_size // PIXEL_UNIT) ** 2
        if imagery_tokens < self.latent_size:
            raise ValueError(f"imagery_size={self.imagery_size} gives {imagery_tokens} vision tokens per imagery image, "
                             f"fewer than latent_size={self.latent_size}")
        if self.cot_style not in TEMPLATE_STYLES:
            raise ValueError(f"cot_style must be one of {list(TEMPLATE_STYLES)}, got {self.cot_style!r}")
        if 0 < self.vocab_size < 300:
            raise ValueError(f"vocab_size must be 0 (full Qwen vocabulary) or at least 300 (256 bytes + specials), "
                             f"got {self.vocab_size}")
        if self.num_frames % 2:
            raise ValueError(f"num_frames must be even (temporal patch 2), got {self.num_frames}")

    def summary(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
