"""What trl-latent needs to know about Qwen2.5-VL: its 3-D mRoPE positions, its vision features, its modules.

**Positions.** Qwen2.5-VL gives every token three position ids (time, height, width). Text tokens carry the same id on
all three axes and count up by one. A vision block of ``t × h × w`` merged patches starting at ``s`` gets
``(s + time(i), s + row, s + column)``, where ``time(i) = int(i × second_per_grid_ts × tokens_per_second)`` for video
(``0`` for an image): frames are placed by real time, so a clip sampled at 0.1 fps spreads over far more temporal ids
than it has frames. What happens *after* the block is where the two rules below differ:

* ``"reference"`` — Qwen's own rule (the ``get_rope_index`` Qwen2.5-VL was pretrained with, the one in transformers 4.x
  and in the 4DThinker release's vendored copy): the next text token sits at the block's largest id over all three
  axes, plus one. Positions never go backwards.
* ``"upstream"`` — transformers 5.x: the next text token sits at ``s + max(h, w)``, ignoring the time axis. For a video
  whose temporal extent exceeds its spatial one, the text after it reuses ids the video already holds (transformers
  issues 45381 and 45325).

Both rules agree on images (``t`` is 0 there). ``"reference"`` is the default everywhere; ``"upstream"`` keeps the
installed transformers' behaviour, for comparison or for checkpoints fine-tuned under it.

:func:`mrope_positions` implements both and also returns each row's *next* position: where a text token appended to
the sequence would go in a teacher-forced forward. The latent loop continues from there, so a sampled completion sits
at exactly the positions DIFT trained on and the GRPO recompute scores.

The patch (:meth:`Adapter.install_positions`) binds the chosen rule as the backbone's ``get_rope_index`` on the model
instance, so the model's own forward (DIFT, ``model.generate``, any plain ``model(**batch)``) uses it too, with no
change to the installed transformers.
"""

from __future__ import annotations

import itertools
import types
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from transformers import (
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
)
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
    Qwen2_5_VisionTransformerPretrainedModel,
)

from ..tokens import _unwrap

TEXT, IMAGE, VIDEO = 0, 1, 2
POSITION_RULES = ("reference", "upstream")


def _vision_block(
    grid_thw: torch.Tensor, start: int, merge: int, seconds_per_grid: Any, tokens_per_second: int, rule: str
) -> torch.Tensor:
    """``[3, t*h*w]`` ids of one vision block starting at ``start``; ``seconds_per_grid`` is ``None`` for an image."""
    t, h, w = (int(v) for v in grid_thw)
    h, w = h // merge, w // merge
    frames = torch.arange(t)
    if seconds_per_grid is None:
        time = frames * 0 if rule == "reference" else frames
    elif rule == "reference":  # Qwen's order of operations, in float32: (index × seconds) × tokens per second
        time = (frames * torch.as_tensor(seconds_per_grid, dtype=torch.float32) * tokens_per_second).long()
    else:  # transformers 5.x: index × (tokens per second × seconds)
        time = (frames * (tokens_per_second * torch.as_tensor(seconds_per_grid, dtype=torch.float32))).long()
    grid = torch.meshgrid(time, torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack(grid).reshape(3, -1) + start


def mrope_positions(
    token_types: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    image_grid_thw: torch.Tensor | None = None,
    video_grid_thw: torch.Tensor | None = None,
    second_per_grid_ts: torch.Tensor | None = None,
    *,
    spatial_merge_size: int,
    tokens_per_second: int,
    rule: str = "reference",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(position_ids [3, B, L], next_positions [B])`` for left- or right-padded rows.

    ``token_types`` is ``0`` text, ``1`` image placeholder, ``2`` video placeholder (Qwen's ``mm_token_type_ids``).
    Images and videos are consumed in order across rows, as the processor lays out ``image_grid_thw`` /
    ``video_grid_thw``; a run of placeholders may hold several consecutive blocks. Padding gets position 0.
    ``second_per_grid_ts`` missing means 1 s per temporal patch, as in both upstream implementations.
    """
    if rule not in POSITION_RULES:
        raise ValueError(f"mrope position rule must be one of {POSITION_RULES}, got {rule!r}")
    batch, length = token_types.shape
    device = token_types.device
    mask = torch.ones_like(token_types, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    grids: dict[int, Iterator] = {
        IMAGE: iter(image_grid_thw.tolist() if image_grid_thw is not None else []),
        VIDEO: iter(video_grid_thw.tolist() if video_grid_thw is not None else []),
    }
    seconds = iter(second_per_grid_ts.tolist() if second_per_grid_ts is not None else itertools.repeat(1.0))
    positions = torch.zeros(3, batch, length, dtype=torch.long)
    next_positions = torch.zeros(batch, dtype=torch.long)
    for row in range(batch):
        kept = mask[row].cpu()
        row_types = token_types[row].cpu()[kept].tolist()
        pieces, current = [], 0
        for kind, run in itertools.groupby(row_types):
            count = len(list(run))
            if kind == TEXT:
                pieces.append(torch.arange(count).expand(3, -1) + current)
                current += count
                continue
            while count > 0:
                grid = next(grids[kind], None)
                if grid is None:
                    name = "image_grid_thw" if kind == IMAGE else "video_grid_thw"
                    raise ValueError(f"row {row} has more {'image' if kind == IMAGE else 'video'} blocks than {name}")
                size = grid[0] * (grid[1] // spatial_merge_size) * (grid[2] // spatial_merge_size)
                if size > count:
                    raise ValueError(f"row {row}: a vision block of grid {grid} needs {size} placeholders, found {count}")
                block_seconds = next(seconds) if kind == VIDEO else None
                block = _vision_block(
                    torch.tensor(grid), current, spatial_merge_size, block_seconds, tokens_per_second, rule
                )
                pieces.append(block)
                if rule == "reference":
                    current = int(block.max()) + 1
                else:
                    current += max(grid[1], grid[2]) // spatial_merge_size
                count -= size
        if pieces:
            positions[:, row, kept] = torch.cat(pieces, dim=1)
        next_positions[row] = current
    return positions.to(device), next_positions.to(device)


class Adapter:
    """Qwen2.5-VL (``model_type == "qwen2_5_vl"``). One instance per model config; see the module docstring."""

    family = "Qwen2.5-VL"

    def __init__(self, config: Any) -> None:
        self.config = config
        self.spatial_merge_size = int(config.vision_config.spatial_merge_size)
        self.tokens_per_second = int(config.vision_config.tokens_per_second)
        self.image_token_id = int(config.image_token_id)
        self.video_token_id = int(config.video_token_id)

    # ----- modules --------------------------------------------------------------------------------------------
    @staticmethod
    def backbone(model: Any) -> Any:
        """``Qwen2_5_VLModel`` (vision tower + language model, no LM head) under PEFT / DDP / DeepSpeed wrappers."""
        return _unwrap(model).model

    def vision_tower(self, model: Any) -> torch.nn.Module:
        return self.backbone(model).visual

    def image_features(self, model: Any, pixel_values: torch.Tensor, image_grid_thw: torch.Tensor) -> list[torch.Tensor]:
        """Each image's merged vision tokens ``[N_i, hidden]``, in the language model's width (the latent targets)."""
        return list(self.backbone(model).get_image_features(pixel_values, image_grid_thw, return_dict=True).pooler_output)

    @staticmethod
    def select_encoder_items(output: Any, items: Sequence[int]) -> Any:
        """The vision encoder's per-item outputs (``get_image_features`` / ``get_video_features``) at ``items``, in
        that order, as ``mm_encoder_outputs`` takes them: 4DRL encodes each prompt once and hands every rollout row its
        prompt's features. Qwen2.5-VL's forward reads only the merged features (``pooler_output``)."""
        return type(output)(pooler_output=tuple(output.pooler_output[i] for i in items))

    @staticmethod
    def gather_language_model_kwargs(
        kwargs: dict[str, Any], columns: torch.Tensor, valid: torch.Tensor
    ) -> dict[str, Any]:
        """The language model's extra keyword inputs for one lockstep round of DIFT's self-fed latents: the sequence's
        columns ``columns [B, W]`` of each row, of which ``valid [B, W]`` are real. Qwen2.5-VL's has none that follow
        the sequence."""
        return kwargs

    # ----- positions ------------------------------------------------------------------------------------------
    def token_types(self, input_ids: torch.Tensor) -> torch.Tensor:
        """``mm_token_type_ids``: 0 text, 1 image placeholder, 2 video placeholder."""
        types_ = torch.zeros_like(input_ids, dtype=torch.int)
        types_[input_ids == self.image_token_id] = IMAGE
        types_[input_ids == self.video_token_id] = VIDEO
        return types_

    def positions(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, multimodal: dict[str, Any], rule: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`mrope_positions` for a batch and the processor outputs that came with it."""
        types_ = multimodal.get("mm_token_type_ids")
        if types_ is None or types_.shape != input_ids.shape:
            types_ = self.token_types(input_ids)
        return mrope_positions(
            types_, attention_mask, multimodal.get("image_grid_thw"), multimodal.get("video_grid_thw"),
            multimodal.get("second_per_grid_ts"), spatial_merge_size=self.spatial_merge_size,
            tokens_per_second=self.tokens_per_second, rule=rule,
        )

    def install_positions(self, model: Any, rule: str) -> None:
        """Make the backbone's own ``get_rope_index`` follow ``rule`` on this model instance (``"upstream"``: the
        installed transformers' method, unpatched)."""
        backbone = self.backbone(model)
        backbone.__dict__.pop("get_rope_index", None)
        if rule == "reference":
            backbone.get_rope_index = types.MethodType(_reference_get_rope_index, self)


def _reference_get_rope_index(
    adapter: Adapter,
    input_ids: torch.Tensor,
    mm_token_type_ids: torch.Tensor,
    image_grid_thw: torch.Tensor | None = None,
    video_grid_thw: torch.Tensor | None = None,
    second_per_grid_ts: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The backbone's ``get_rope_index`` with Qwen's reference rule (bound to the family's adapter); same signature and
    return convention (deltas are the next position minus the unpadded length, which cached decoding adds to its
    running text position)."""
    multimodal = {"mm_token_type_ids": mm_token_type_ids, "image_grid_thw": image_grid_thw,
                  "video_grid_thw": video_grid_thw, "second_per_grid_ts": second_per_grid_ts}
    positions, next_positions = adapter.positions(input_ids, attention_mask, multimodal, "reference")
    lengths = attention_mask.sum(-1) if attention_mask is not None else torch.full_like(next_positions, input_ids.shape[1])
    return positions, (next_positions - lengths.to(next_positions.device)).unsqueeze(1)


# ----- building: random-weight checkpoints (trl_latent.testing, ``trl-latent init-tiny``) ------------------------------
MODEL_CLASS = Qwen2_5_VLForConditionalGeneration
PROCESSOR_CLASS = Qwen2_5_VLProcessor
VISION_TOWER_CLASS = Qwen2_5_VisionTransformerPretrainedModel
CHAT_TEMPLATE = "qwen2_5_vl.jinja"  # the stock template, as TRL ships it
PATCH_SIZE, MERGE_SIZE, TEMPORAL_PATCH_SIZE = 14, 2, 2

TINY_TEXT = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
)
SMALL_TEXT = dict(
    hidden_size=256, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
    rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [8, 12, 12]},
)
SIZES: dict[str, tuple[dict, dict]] = {  # (text, vision) config values by name
    "tiny": (TINY_TEXT, dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, window_size=56,
                             fullatt_block_indexes=[1])),
    "small": (SMALL_TEXT, dict(depth=4, hidden_size=128, intermediate_size=256, num_heads=4, window_size=56,
                               fullatt_block_indexes=[1, 3])),
    "3b": (  # Qwen2.5-VL-3B
        dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
             num_key_value_heads=2, max_position_embeddings=128000,
             rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]}),
        dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, window_size=112,
             fullatt_block_indexes=[7, 15, 23, 31]),
    ),
}


def special_token_ids(tokenizer: Any) -> dict[str, int]:
    """The vision placeholder and delimiter ids a Qwen-VL config names, read from ``tokenizer``."""
    names = {"image_token_id": "<|image_pad|>", "video_token_id": "<|video_pad|>",
             "vision_start_token_id": "<|vision_start|>", "vision_end_token_id": "<|vision_end|>"}
    return {key: int(tokenizer.convert_tokens_to_ids(token)) for key, token in names.items()}


def text_ids(tokenizer: Any) -> dict[str, Any]:
    """The text config's vocabulary size and special ids, read from ``tokenizer``."""
    return dict(vocab_size=len(tokenizer), bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)


def build_config(tokenizer: Any, text: dict, vision: dict, config_class: type = Qwen2_5_VLConfig,
                 width_key: str = "out_hidden_size", **overrides: Any) -> Any:
    """A ``config_class`` (Qwen2.5-VL's; Qwen2-VL's has the same layout) with ``text`` / ``vision`` values whose special
    ids match ``tokenizer``; the vision tower's output width (``width_key``) defaults to the language model's."""
    text, vision = dict(text), dict(vision)
    vision.setdefault(width_key, text["hidden_size"])
    vision.update(patch_size=PATCH_SIZE, spatial_merge_size=MERGE_SIZE, temporal_patch_size=TEMPORAL_PATCH_SIZE)
    text.update(text_ids(tokenizer))
    return config_class(text_config=text, vision_config=vision, **special_token_ids(tokenizer),
                        tie_word_embeddings=True, **overrides)


def build_processor(tokenizer: Any, template: str, min_pixels: int, max_pixels: int, video_max_pixels: int,
                    processor_class: type = Qwen2_5_VLProcessor) -> Any:
    """A stock ``processor_class`` (``Qwen2_5_VLProcessor``; Qwen2-VL's has the same parts) around ``tokenizer``;
    pixel budgets as in Qwen's processors."""
    common = dict(patch_size=PATCH_SIZE, merge_size=MERGE_SIZE, temporal_patch_size=TEMPORAL_PATCH_SIZE)
    return processor_class(
        image_processor=Qwen2VLImageProcessor(min_pixels=min_pixels, max_pixels=max_pixels, **common),
        video_processor=Qwen2VLVideoProcessor(min_pixels=min_pixels, max_pixels=video_max_pixels,
                                              do_sample_frames=False, **common),
        tokenizer=tokenizer, chat_template=template,
    )


def video_budget(min_pixels: int, max_pixels: int, num_frames: int) -> dict[str, Any]:
    """``videos_kwargs`` that keep frames already fitted one by one into ``[min_pixels, max_pixels]`` as they are:
    the Qwen2-VL video processor's ``size`` is per frame, and its per-frame cap is transformers' future default."""
    return {"size": {"shortest_edge": min_pixels, "longest_edge": max_pixels}, "cap_pixels_per_frame": True}
