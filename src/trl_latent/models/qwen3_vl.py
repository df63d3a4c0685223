"""What trl-latent needs to know about Qwen3-VL: per-frame video blocks with timestamps, DeepStack, interleaved mRoPE.

**Positions.** Qwen3-VL writes a video as one block per temporal patch, each preceded by its timestamp as text
(``<0.5 seconds><|vision_start|><|video_pad|>…<|vision_end|>``), instead of spreading the frames over the time axis:
real time reaches the model through the timestamp tokens, and every block is a one-patch-thick grid whose ids are
``(s, s + row, s + column)``. Its ``get_rope_index`` (transformers 5.24, the family's reference: Qwen's own 4.57
implementation gives the same ids) splits ``video_grid_thw`` into ``t`` grids of one temporal patch and lets the text
after each block resume at ``s + max(h, w)``. For one-patch-thick blocks that *is* the block's largest id + 1, so
Qwen2.5-VL's two rules coincide here and no video can push its time ids past the text after it: both ``"reference"``
and ``"upstream"`` are transformers' own method, which :meth:`Adapter.install_positions` leaves in place.
The interleaving of the three axes over the rotary frequencies (``mrope_interleaved``) happens inside the model's
rotary embedding and does not change the ids.

**Latent targets.** The merger output (``pooler_output``), not the DeepStack levels. A latent vector takes the place of
an input embedding, and the merger output is exactly what Qwen3-VL puts at its image placeholders' input embeddings;
the DeepStack features are residual additions to the hidden states of the first decoder layers at vision positions,
which the latent loop (feed the last hidden state back as the next *input* embedding) has no slot for. Images and video
keep their DeepStack injection everywhere (the model's own forward adds it), and 4DRL's shared encoder outputs carry
the DeepStack levels along (:meth:`Adapter.select_encoder_items`), so the vision-once path is the model's forward.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import (
    Qwen2VLImageProcessor,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
    Qwen3VLProcessor,
)
from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLVisionModel
from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

from . import qwen2_5_vl
from .qwen2_5_vl import (
    MERGE_SIZE,
    PATCH_SIZE,
    TEMPORAL_PATCH_SIZE,
    special_token_ids,
    text_ids,
)

MAX_FRAMES = 768
"""The video processor's frame limit (Qwen3-VL's default), used to size its whole-video pixel budget."""


def split_video_grids(video_grid_thw: torch.Tensor | None) -> torch.Tensor | None:
    """``[n, 3]`` video grids → one ``(1, h, w)`` grid per temporal patch, in order (one block per timestamp)."""
    if video_grid_thw is None:
        return None
    grids = torch.repeat_interleave(video_grid_thw, video_grid_thw[:, 0], dim=0)
    grids[:, 0] = 1
    return grids


class Adapter(qwen2_5_vl.Adapter):
    """Qwen3-VL (``model_type == "qwen3_vl"``); backbone ``Qwen3VLModel`` (``visual`` + ``language_model``)."""

    family = "Qwen3-VL"

    def __init__(self, config: Any) -> None:
        self.config = config
        self.spatial_merge_size = int(config.vision_config.spatial_merge_size)
        self.tokens_per_second = 1  # unused: every block is one temporal patch thick, at time offset 0
        self.image_token_id = int(config.image_token_id)
        self.video_token_id = int(config.video_token_id)

    @staticmethod
    def select_encoder_items(output: Any, items: Sequence[int]) -> Any:
        """The merged features and every DeepStack level at ``items``: Qwen3-VL's forward reads both from
        ``mm_encoder_outputs``."""
        return type(output)(
            pooler_output=tuple(output.pooler_output[i] for i in items),
            deepstack_features=[tuple(level[i] for i in items) for level in output.deepstack_features],
        )

    @staticmethod
    def gather_language_model_kwargs(
        kwargs: dict[str, Any], columns: torch.Tensor, valid: torch.Tensor
    ) -> dict[str, Any]:
        """DeepStack inputs of one lockstep round (the columns ``columns [B, W]`` of each row, ``valid [B, W]`` real):
        ``visual_pos_masks`` gathered to ``[B, W]`` (padding entries off), and each level's features ``[N, H]`` (one row
        per vision position, row-major over the whole sequence) taken for the round's vision positions in its own
        row-major order, as the decoder layers add them."""
        masks = kwargs.get("visual_pos_masks")
        if masks is None:
            return kwargs
        order = torch.zeros(masks.shape, dtype=torch.long, device=masks.device)
        order[masks] = torch.arange(int(masks.sum()), device=masks.device)
        piece = masks.gather(1, columns) & valid
        rows = order.gather(1, columns)[piece]
        levels = kwargs.get("deepstack_visual_embeds")
        return {**kwargs, "visual_pos_masks": piece,
                "deepstack_visual_embeds": None if levels is None else [level[rows] for level in levels]}

    def positions(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, multimodal: dict[str, Any], rule: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions of ``Qwen3VLModel.get_rope_index`` for either rule (they coincide; see the module docstring)."""
        split = {**multimodal, "video_grid_thw": split_video_grids(multimodal.get("video_grid_thw")),
                 "second_per_grid_ts": None}
        return super().positions(input_ids, attention_mask, split, rule)

    def install_positions(self, model: Any, rule: str) -> None:
        """Both rules are the installed transformers' ``get_rope_index``: drop any instance override."""
        self.backbone(model).__dict__.pop("get_rope_index", None)


# ----- building ---------------------------------------------------------------------------------------------------
MODEL_CLASS = Qwen3VLForConditionalGeneration
PROCESSOR_CLASS = Qwen3VLProcessor
VISION_TOWER_CLASS = Qwen3VLVisionModel
CHAT_TEMPLATE = "qwen3_vl.jinja"


def _text(hidden: int, intermediate: int, layers: int, heads: int, kv_heads: int, head_dim: int,
          section: list[int]) -> dict[str, Any]:
    return dict(hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim,
                rope_parameters={"rope_type": "default", "rope_theta": 5e6, "mrope_section": section,
                                 "mrope_interleaved": True})


SIZES: dict[str, tuple[dict, dict]] = {
    # patch 14 (real Qwen3-VL: 16) keeps trl-latent's 28-pixel budget unit exact on the tiny models
    "tiny": (_text(64, 128, 2, 4, 2, 16, [4, 2, 2]),
             dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, num_position_embeddings=64,
                  deepstack_visual_indexes=[0, 1])),
    "small": (_text(256, 512, 4, 4, 2, 64, [12, 10, 10]),
              dict(depth=4, hidden_size=128, intermediate_size=256, num_heads=4, num_position_embeddings=256,
                   deepstack_visual_indexes=[1, 2, 3])),
}


def build_config(tokenizer: Any, text: dict, vision: dict, **overrides: Any) -> Qwen3VLConfig:
    """A Qwen3-VL config with ``text`` / ``vision`` values whose special ids match ``tokenizer``."""
    text, vision = dict(text), dict(vision)
    vision.setdefault("out_hidden_size", text["hidden_size"])
    vision.setdefault("patch_size", PATCH_SIZE)
    vision.update(spatial_merge_size=MERGE_SIZE, temporal_patch_size=TEMPORAL_PATCH_SIZE)
    text.update(text_ids(tokenizer))
    return Qwen3VLConfig(text_config=text, vision_config=vision, **special_token_ids(tokenizer),
                         tie_word_embeddings=True, **overrides)


def build_processor(tokenizer: Any, template: str, min_pixels: int, max_pixels: int, video_max_pixels: int) -> Any:
    """A stock ``Qwen3VLProcessor`` around ``tokenizer``. Its video processor budgets a whole clip; with the per-frame
    cap (``max_video_tokens``) set to ``video_max_pixels`` each frame gets at most that, as with Qwen2.5-VL.

    Qwen3-VL normalises images and video alike (mean = std = 0.5, its checkpoints' preprocessor config and the video
    processor's default); the stock image processor class defaults to CLIP's, so it is given the video processor's,
    or imagery would reach the tower scaled differently from the clips it learnt on."""
    common = dict(patch_size=PATCH_SIZE, merge_size=MERGE_SIZE, temporal_patch_size=TEMPORAL_PATCH_SIZE)
    unit = (PATCH_SIZE * MERGE_SIZE) ** 2
    video_processor = Qwen3VLVideoProcessor(
        size={"shortest_edge": min_pixels, "longest_edge": video_max_pixels * MAX_FRAMES},
        cap_pixels_per_frame=True, max_video_tokens=max(1, video_max_pixels // unit), do_sample_frames=False,
        **common,
    )
    return Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=min_pixels, max_pixels=max_pixels, **common,
                                              image_mean=video_processor.image_mean,
                                              image_std=video_processor.image_std),
        video_processor=video_processor, tokenizer=tokenizer, chat_template=template,
    )


def video_budget(min_pixels: int, max_pixels: int, num_frames: int) -> dict[str, Any]:
    """``videos_kwargs`` that keep ``num_frames`` frames already fitted one by one into ``[min_pixels, max_pixels]``
    as they are: Qwen3-VL's ``size`` bounds the whole clip (frames rounded up to a whole temporal patch)."""
    return {"size": {"shortest_edge": min_pixels, "longest_edge": max_pixels * (num_frames + TEMPORAL_PATCH_SIZE)},
            "cap_pixels_per_frame": False}
