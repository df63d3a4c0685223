"""What trl-latent needs to know about Qwen2-VL: Qwen2.5-VL's adapter with frame-index time.

Qwen2-VL is Qwen2.5-VL's predecessor with the same backbone layout (``model.visual``, ``model.language_model``), the
same placeholders and the same 3-D mRoPE, except for the time axis of a video: temporal patch ``i`` of a block starting
at ``s`` sits at ``s + i`` whatever the frame rate (no ``second_per_grid_ts``, no ``tokens_per_second``). Both rules of
:mod:`trl_latent.models.qwen2_5_vl` apply unchanged: ``"reference"`` (Qwen's 4.x ``get_rope_index``: the text after a
block resumes at the block's largest id + 1) and ``"upstream"`` (transformers 5.x: at ``s + max(h, w)``, ignoring time,
so the text after a video of more temporal patches than spatial rows reuses the video's ids). The latent targets are
the merger output, as for Qwen2.5-VL: the vectors the language model receives in place of the image placeholders.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import (
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLProcessor,
)
from transformers.models.qwen2_vl.modeling_qwen2_vl import (
    Qwen2VisionTransformerPretrainedModel,
)

from . import qwen2_5_vl
from .qwen2_5_vl import (
    video_budget,  # noqa: F401  (the same per-frame budget: this family reads it here)
)

FRAME_INDEX_TIME = 1
"""``tokens_per_second`` that, with one second per temporal patch, puts patch ``i`` at time id ``i``."""


class Adapter(qwen2_5_vl.Adapter):
    """Qwen2-VL (``model_type == "qwen2_vl"``)."""

    family = "Qwen2-VL"

    def __init__(self, config: Any) -> None:
        self.config = config
        self.spatial_merge_size = int(config.vision_config.spatial_merge_size)
        self.tokens_per_second = FRAME_INDEX_TIME
        self.image_token_id = int(config.image_token_id)
        self.video_token_id = int(config.video_token_id)

    def positions(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, multimodal: dict[str, Any], rule: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`~trl_latent.models.qwen2_5_vl.mrope_positions` with frame-index time."""
        return super().positions(input_ids, attention_mask, {**multimodal, "second_per_grid_ts": None}, rule)


# ----- building ---------------------------------------------------------------------------------------------------
MODEL_CLASS = Qwen2VLForConditionalGeneration
PROCESSOR_CLASS = Qwen2VLProcessor
VISION_TOWER_CLASS = Qwen2VisionTransformerPretrainedModel
CHAT_TEMPLATE = "qwen2_5_vl.jinja"  # Qwen2-VL's chat template is Qwen2.5-VL's

SIZES: dict[str, tuple[dict, dict]] = {
    "tiny": (qwen2_5_vl.TINY_TEXT, dict(depth=2, embed_dim=32, mlp_ratio=2, num_heads=2)),
    "small": (qwen2_5_vl.SMALL_TEXT, dict(depth=4, embed_dim=128, mlp_ratio=2, num_heads=4)),
    "2b": (  # Qwen2-VL-2B
        dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
             num_key_value_heads=2, max_position_embeddings=32768,
             rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]}),
        dict(depth=32, embed_dim=1280, mlp_ratio=4, num_heads=16),
    ),
}


def build_config(tokenizer: Any, text: dict, vision: dict, **overrides: Any) -> Qwen2VLConfig:
    """A Qwen2-VL config built as Qwen2.5-VL's (its vision tower's ``hidden_size`` is its output width)."""
    return qwen2_5_vl.build_config(tokenizer, text, vision, config_class=Qwen2VLConfig, width_key="hidden_size",
                                   **overrides)


def build_processor(tokenizer: Any, template: str, min_pixels: int, max_pixels: int, video_max_pixels: int) -> Any:
    """A stock ``Qwen2VLProcessor`` around ``tokenizer``, built as Qwen2.5-VL's (the same processor parts)."""
    return qwen2_5_vl.build_processor(tokenizer, template, min_pixels, max_pixels, video_max_pixels,
                                      processor_class=Qwen2VLProcessor)
