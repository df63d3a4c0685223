"""Per-row visual inputs of a GRPO batch, and their feeding into every log-prob forward.

TRL 1.16's GRPO keeps images as one flat ``pixel_values`` tensor and has no video path at all. Here every row of a
rollout batch carries its own processor tensors (``pixel_values`` / ``image_grid_thw`` for an image,
``pixel_values_videos`` / ``video_grid_thw`` / ``second_per_grid_ts`` for a video), as a plain list with one dict per
row. A list survives TRL's ``shuffle_sequence_dict`` / ``split_tensor_dict`` untouched, so the rows stay paired with
their completions whatever the shuffle and gradient-accumulation split.

:func:`feed_row_inputs` hands those tensors to the backbone through a keyword forward pre-hook, in row order
across forwards, exactly like :func:`trl_latent.latents.inject_latents` hands out latent vectors. TRL's chunked
``_get_per_token_logps_and_entropies`` therefore runs unchanged for images, videos and latents alike. The hook also
sets the 3-D mRoPE ``position_ids`` with :func:`trl_latent.generation.rope_positions`, the function the rollout used:
prompt + completion recomputed as one teacher-forced sequence sits at the positions the loop sampled it at, because
the loop continues each row where this function puts its first completion token (tested with 0.1 fps clips, whose
temporal ids reach far past the text after them).

**Vision once per prompt.** The ``num_generations`` rows of a prompt share one dict of tensors (the trainer processes
each prompt once), and TRL's shuffle and split keep that identity. With ``share_vision`` the hook runs the vision tower
once per distinct dict in a forward's chunk and hands the merged features to every row of that prompt through the
backbone's ``mm_encoder_outputs`` (transformers scatters them at the placeholder tokens exactly as it scatters the
features it computes from ``pixel_values``). A frozen tower builds no graph; a trainable one is run once with its
graph, and the gradient of each shared feature is the sum over the rows that read it, as in the per-row path.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from ..data import Visual
from ..generation import rope_positions
from ..latents import vision_backbone
from ..models import adapter_for, apply_position_rule, video_budget

ENCODED = (("pixel_values", "image_grid_thw", "image"), ("pixel_values_videos", "video_grid_thw", "video"))
"""Each modality's pixel key, grid key and ``mm_encoder_outputs`` key in the backbone's forward."""

VISUAL_KEYS = ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw", "second_per_grid_ts")

RowInputs = dict[str, torch.Tensor]
"""One row's processor tensors (a subset of :data:`VISUAL_KEYS`; empty for a text-only prompt)."""


def process_row(processor: Any, prompt_text: str, visual: Visual | None) -> tuple[list[int], RowInputs]:
    """Tokenise one templated prompt with its visual; return its token ids and its visual tensors.

    Frames arrive already sampled at the configured fps (``trl_latent.data.load_visual``), so the processor must not
    resample them, and it gets their real rate as ``video_metadata`` (it would assume 24 fps otherwise).
    """
    if visual is None:
        encoded = processor(text=[prompt_text], return_tensors="pt")
    elif visual.is_video:
        frame_pixels = visual.frames.shape[1] * visual.frames.shape[2]
        encoded = processor(
            text=[prompt_text],
            videos=[visual.frames],
            # frames are fitted one by one already (load_visual): a budget of their own size keeps them
            videos_kwargs={"video_metadata": [visual.video_metadata], "do_sample_frames": False,
                           **video_budget(processor, frame_pixels, frame_pixels, len(visual.frames))},
            return_tensors="pt",
        )
    else:
        encoded = processor(text=[prompt_text], images=[visual.image], return_tensors="pt")
    return encoded["input_ids"][0].tolist(), {key: encoded[key] for key in VISUAL_KEYS if key in encoded}


def concat_rows(rows: Sequence[RowInputs], device: torch.device | None = None) -> dict[str, torch.Tensor]:
    """Concatenate the rows' tensors key by key (rows without a key add nothing), as one processor call would."""
    merged = {}
    for key in VISUAL_KEYS:
        parts = [row[key] for row in rows if key in row]
        if parts:
            merged[key] = torch.cat(parts).to(device) if device is not None else torch.cat(parts)
    return merged


def encode_once(backbone: Any, rows: Sequence[RowInputs], device: torch.device) -> dict[str, Any]:
    """``mm_encoder_outputs`` for ``rows``: the vision tower runs once (one call per modality) over the distinct row
    dicts, and each row gets its prompt's encoder outputs (merged features, and whatever else the family's forward
    reads, e.g. Qwen3-VL's DeepStack levels), in row order."""
    distinct = list({id(row): row for row in rows}.values())
    adapter = adapter_for(backbone)
    outputs = {}
    for pixel_key, grid_key, modality in ENCODED:
        encoded = [row for row in distinct if pixel_key in row]
        if not encoded:
            continue
        encode = backbone.get_image_features if modality == "image" else backbone.get_video_features
        output = encode(
            torch.cat([row[pixel_key] for row in encoded]).to(device),
            torch.cat([row[grid_key] for row in encoded]).to(device),
            return_dict=True,
        )
        first, start = {}, 0
        for row in encoded:
            first[id(row)] = start
            start += row[grid_key].shape[0]
        items = [first[id(row)] + i for row in rows if pixel_key in row for i in range(row[grid_key].shape[0])]
        outputs[modality] = adapter.select_encoder_items(output, items)
    return outputs


class _RowFeeder:
    """Adds the next rows' visual tensors (or, with ``share_vision``, their prompts' features encoded once),
    ``mm_token_type_ids`` and ``position_ids`` to each backbone forward."""

    def __init__(self, rows: Sequence[RowInputs], share_vision: bool) -> None:
        self.rows = rows
        self.share_vision = share_vision
        self.used = 0

    def hook(self, module: torch.nn.Module, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
        input_ids = kwargs.get("input_ids")
        if input_ids is None or args:
            raise TypeError("feed_row_inputs needs the backbone called with keyword input_ids (as TRL's forward does)")
        count = input_ids.shape[0]
        if self.used + count > len(self.rows):
            raise ValueError(f"a forward over {self.used + count} rows so far, but only {len(self.rows)} rows of inputs")
        chunk = self.rows[self.used : self.used + count]
        self.used += count
        attention_mask = kwargs.get("attention_mask")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        pixels = {pixel_key for pixel_key, _, _ in ENCODED} if self.share_vision else set()
        multimodal = concat_rows([{k: v for k, v in row.items() if k not in pixels} for row in chunk], input_ids.device)
        multimodal["mm_token_type_ids"] = adapter_for(module).token_types(input_ids)
        positions, _ = rope_positions(module, input_ids, attention_mask, multimodal)
        if self.share_vision and (encoded := encode_once(module, chunk, input_ids.device)):
            multimodal["mm_encoder_outputs"] = encoded
        return args, {**kwargs, **multimodal, "position_ids": positions}


@contextmanager
def feed_row_inputs(
    model: Any, rows: Sequence[RowInputs], *, strict: bool = True, share_vision: bool = True
) -> Iterator[_RowFeeder]:
    """Feed ``rows`` (one dict per batch row) to the forwards of ``model`` run inside the block, in row order.

    ``model`` may be PEFT-, DDP- or DeepSpeed-wrapped: the hook sits on the backbone, which every forward
    (plain, fused-LM-head, adapter disabled) reaches through ``__call__``. With ``strict`` the block raises when rows
    were left unused, since a row/sequence mismatch would silently pair a completion with another row's video.
    ``share_vision`` encodes each prompt's visual once per forward (see the module docstring); off, every row runs the
    tower on its own copy.
    """
    feeder = _RowFeeder(rows, share_vision)
    apply_position_rule(model)
    handle = vision_backbone(model).register_forward_pre_hook(feeder.hook, with_kwargs=True)
    try:
        yield feeder
    finally:
        handle.remove()
    if strict and feeder.used != len(rows):
        raise ValueError(f"{len(rows)} rows of visual inputs were given but the forwards covered {feeder.used} rows")
