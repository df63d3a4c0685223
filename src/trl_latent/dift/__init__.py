"""Dynamic-Imagery Fine-Tuning (DIFT): the first 4DThinker stage, as a TRL ``SFTTrainer`` subclass."""

from .collator import DataCollatorForLatentImagery
from .dift_config import LatentImageryConfig
from .dift_trainer import LatentImageryTrainer, feed_back_latents, latent_norm_ratio, latent_similarity_loss

__all__ = [
    "DataCollatorForLatentImagery",
    "LatentImageryConfig",
    "LatentImageryTrainer",
    "feed_back_latents",
    "latent_norm_ratio",
    "latent_similarity_loss",
]
