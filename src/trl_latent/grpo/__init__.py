"""4DRL: outcome-reward GRPO for latent-imagery Qwen2.5-VL models, on image and video prompts."""

from .latent_grpo_config import LatentGRPOConfig
from .latent_grpo_trainer import LatentGRPOTrainer

__all__ = ["LatentGRPOConfig", "LatentGRPOTrainer"]
