"""Batches of DIFT records: the user video as a video, latent blocks in the answer, imagery images on the side.

TRL's ``DataCollatorForVisionLanguageModeling`` handles images only and knows nothing of latent blocks, so DIFT has
its own collator. It reads the normalised records of :func:`trl_latent.data.load_records` and decodes the media on
the fly (the dataset keeps paths, not pixels).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from ..data import DataRecordError, Visual, VisualOptions, load_image, load_visual
from ..latents import MotionPairError, imagery_pairs, motion_pixel_values
from ..models import video_budget
from ..skipping import skip_or_raise
from ..tokens import LatentSpec, expand_output_images

IGNORE_INDEX = -100
ASSISTANT_HEADER = "<|im_start|>assistant\n"
_Decoded = tuple[dict[str, Any], Visual, list[Image.Image], list[Image.Image]]  # record, visual, imagery, negatives


def _last_occurrence(row: list[int], pattern: list[int]) -> int:
    """Index just past the last occurrence of ``pattern`` in ``row``; -1 when absent."""
    width = len(pattern)
    for start in range(len(row) - width, -1, -1):
        if row[start : start + width] == pattern:
            return start + width
    return -1


@dataclass
class DataCollatorForLatentImagery:
    """Collate DIFT records into model inputs, labels and the imagery images.

    Output keys: ``input_ids``, ``attention_mask``, ``mm_token_type_ids``, ``labels``, the processor's vision keys
    (``pixel_values_videos``, ``video_grid_thw``, ``second_per_grid_ts`` for videos; ``pixel_values``,
    ``image_grid_thw`` for single images) and ``latent_pixel_values`` / ``latent_image_grid_thw`` for the imagery
    images, in order of their ``<|latent_pad|>`` blocks (row by row). With ``counterfactual`` (the imagery contrast's
    ``counterfactual`` negatives) also ``latent_negative_pixel_values`` / ``latent_negative_image_grid_thw`` /
    ``latent_negative_image_keys``, the same blocks' images from each record's ``counterfactual_output`` (a record
    without one repeats its own imagery), and ``latent_negative_rows`` (``[B]`` bool: the rows that have one).
    Labels are ``-100`` on the prompt (through ``<|im_start|>assistant\\n``), on padding and on latent pads; latent
    start/end and the answer text are supervised.
    Sequences are right-padded and never truncated: cutting one would separate vision or latent placeholders from
    their features, so a sequence over ``max_length`` is an error naming its record.

    With ``positions`` (the trainer sets it when ``padding_free=True``) the batch is packed padding-free: one row of
    the rows' real tokens end to end (``input_ids``, ``labels``, ``mm_token_type_ids`` of shape ``[1, T]``), no
    ``attention_mask``, and ``position_ids [4, 1, T]``: each row's own text positions (restarting at 0, which is how
    transformers tells the rows apart) over the 3-D mRoPE positions that ``positions(input_ids, attention_mask,
    multimodal)`` computed for the padded batch. Computing them here, on the CPU of the data loader, keeps the
    forward free of host syncs. ``latent_image_keys`` names each imagery image (its path), for the trainer's cache
    of frozen-tower targets. When the spec's ``imagery`` is ``motion``, each imagery image after a record's first
    is paired with the previous one as a two-frame clip (:func:`trl_latent.latents.motion_pixel_values`) and named
    by both paths.

    A sample whose media fail to decode is an error naming its ``file:line``; with ``skip_invalid`` it is dropped from
    the batch instead (logged, and counted in the ``num_skipped`` key the trainer reads). A batch in which every
    sample fails gets the last sample that decoded (or the first of ``spare_records`` that does) in their place, so
    that every process still takes its step.
    """

    processor: Any
    spec: LatentSpec
    visual: VisualOptions = field(default_factory=VisualOptions)
    imagery_min_pixels: int = 28 * 28
    imagery_max_pixels: int = 256 * 28 * 28
    max_length: int | None = None
    skip_invalid: bool = False
    spare_records: Any = None
    positions: Callable[[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]], torch.Tensor] | None = None
    counterfactual: bool = False
    _spare: _Decoded | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        tokenizer = self.processor.tokenizer
        self._header = tokenizer(ASSISTANT_HEADER, add_special_tokens=False)["input_ids"]
        merge = getattr(self.processor.image_processor, "merge_size", 2)
        self._merge_area = merge * merge

    def _conversation(self, example: dict[str, Any], kind: str) -> str:
        messages = [
            {"role": "user", "content": [{"type": kind}, {"type": "text", "text": example["prompt"]}]},
            {"role": "assistant",
             "content": [{"type": "text", "text": expand_output_images(example["text_output"], self.spec)}]},
        ]
        return self.processor.apply_chat_template(messages, tokenize=False)

    def _decode(self, example: dict[str, Any]) -> _Decoded:
        """The record, its visual, its imagery and (``counterfactual``) its counterfactual imagery, or []."""
        visual = load_visual(example, self.visual)
        imagery = self._images(example, "image_output")
        negatives = self._images(example, "counterfactual_output") if self.counterfactual else []
        return example, visual, imagery, negatives

    def _images(self, example: dict[str, Any], name: str) -> list[Image.Image]:
        return [load_image(path, self.imagery_min_pixels, self.imagery_max_pixels, example["source"], f"{name}[{i}]")
                for i, path in enumerate(example.get(name) or ())]

    def _decode_all(self, examples: list[dict[str, Any]]) -> tuple[list[_Decoded], int]:
        """The decoded samples of the batch (the spare when none decodes) and how many failed."""
        decoded = []
        for example in examples:
            try:
                decoded.append(self._decode(example))
            except DataRecordError as error:
                skip_or_raise(error, self.skip_invalid)
        if decoded:
            self._spare = decoded[-1]
        elif self._spare is None:
            self._spare = self._first_decodable_spare()
        return decoded or [self._spare], len(examples) - len(decoded)

    def _first_decodable_spare(self) -> _Decoded:
        for example in self.spare_records if self.spare_records is not None else ():
            try:
                return self._decode(example)
            except DataRecordError:
                continue
        raise ValueError("every sample of a batch failed to decode and no record of the dataset decodes to stand in")

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        decoded, num_skipped = self._decode_all(examples)
        examples = [example for example, *_ in decoded]
        texts, images, videos, metadata, imagery, imagery_sources, keys, counts = [], [], [], [], [], [], [], []
        for example, visual, example_imagery, _ in decoded:
            if visual.is_video:
                videos.append(visual.frames)
                metadata.append(visual.video_metadata)
            else:
                images.append(visual.image)
            texts.append(self._conversation(example, "video" if visual.is_video else "image"))
            imagery += example_imagery
            imagery_sources += [(example["source"], "image_output", i) for i in range(len(example_imagery))]
            keys += [str(path) for path in example["image_output"]]
            counts.append(len(example_imagery))

        budget = {"shortest_edge": self.visual.min_pixels, "longest_edge": self.visual.max_pixels}
        batch = self.processor(
            text=texts,
            images=images or None,
            videos=videos or None,
            images_kwargs={"size": budget},
            # frames are already fitted to the budget one by one, which is what the per-frame cap does
            videos_kwargs={**video_budget(self.processor, budget["shortest_edge"], budget["longest_edge"],
                                          max((len(v) for v in videos), default=1)),
                           **({"video_metadata": metadata} if videos else {})},
            padding=True,
            padding_side="right",
            return_tensors="pt",
        )
        self._check_length(batch["attention_mask"], examples)
        batch["labels"] = self._labels(batch["input_ids"], batch["attention_mask"], examples)
        if imagery:
            batch.update(self._encode_imagery("latent", imagery, imagery_sources, keys, counts))
            if self.counterfactual:
                batch.update(self._negatives(decoded, counts))
        if self.positions is not None:
            batch = self._pack(batch)
        if self.skip_invalid:
            batch["num_skipped"] = torch.tensor(num_skipped)
        return dict(batch)

    def _encode_imagery(self, prefix: str, imagery: list[Image.Image], sources: list[tuple[str, str, int]],
                        keys: list[str], counts: list[int]) -> dict[str, Any]:
        """``<prefix>_pixel_values`` / ``_image_grid_thw`` / ``_image_keys`` of a batch's imagery images."""
        budget = {"shortest_edge": self.imagery_min_pixels, "longest_edge": self.imagery_max_pixels}
        encoded = self.processor.image_processor(images=imagery, size=budget, return_tensors="pt")
        self._check_imagery_tokens(encoded["image_grid_thw"], sources)
        if self.spec.imagery == "motion":
            encoded["pixel_values"], keys = self._motion(encoded, keys, counts, sources)
        return {f"{prefix}_pixel_values": encoded["pixel_values"],
                f"{prefix}_image_grid_thw": encoded["image_grid_thw"], f"{prefix}_image_keys": tuple(keys)}

    def _negatives(self, decoded: list[_Decoded], counts: list[int]) -> dict[str, Any]:
        """The counterfactual imagery of the batch's blocks (a row without any repeats its own) and which rows have
        it."""
        imagery, sources, keys, rows = [], [], [], []
        for example, _, own, negatives in decoded:
            field = "counterfactual_output" if negatives else "image_output"
            imagery += negatives or own
            sources += [(example["source"], field, i) for i in range(len(own))]
            keys += [str(path) for path in example[field]]
            rows.append(bool(negatives))
        return {**self._encode_imagery("latent_negative", imagery, sources, keys, counts),
                "latent_negative_rows": torch.tensor(rows)}

    def _motion(self, encoded: Any, keys: list[str], counts: list[int], sources: list[tuple[str, str, int]]
                ) -> tuple[torch.Tensor, list[str]]:
        """The imagery as motion pairs, and each pair's cache key (both paths)."""
        previous = imagery_pairs(counts)
        grids = encoded["image_grid_thw"]
        temporal = self.processor.image_processor.temporal_patch_size
        try:
            pixels = motion_pixel_values(encoded["pixel_values"], grids, previous, temporal)
        except MotionPairError as error:
            (source, name, index), earlier = sources[error.index], previous[error.index]
            raise DataRecordError(source, f"{name}[{index}]",
                                  f"is {grids[error.index].tolist()} patches but {name}[{index - 1}] is "
                                  f"{grids[earlier].tolist()}: latent_imagery=motion pairs images of one size"
                                  ) from None
        return pixels, [key if j is None else f"{keys[j]} -> {key}" for key, j in zip(keys, previous)]

    def _pack(self, batch: Any) -> dict[str, Any]:
        """The padded batch as one padding-free row with per-row positions (see the class docstring)."""
        batch = dict(batch)
        mask = batch.pop("attention_mask").bool()
        multimodal = {key: batch[key] for key in ("image_grid_thw", "video_grid_thw", "second_per_grid_ts",
                                                  "mm_token_type_ids") if key in batch}
        rope = self.positions(batch["input_ids"], mask.long(), multimodal)  # [3, B, L]
        text = torch.cat([torch.arange(int(length)) for length in mask.sum(1)])
        for key in ("input_ids", "labels", "mm_token_type_ids"):
            if key in batch:
                batch[key] = batch[key][mask][None]
        batch["position_ids"] = torch.cat([text[None, None], rope[:, mask][:, None]])
        return batch

    def _check_length(self, attention_mask: torch.Tensor, examples: list[dict[str, Any]]) -> None:
        if self.max_length is None:
            return
        for length, example in zip(attention_mask.sum(-1).tolist(), examples):
            if length > self.max_length:
                raise DataRecordError(example["source"], "<sequence>",
                                      f"{length} tokens exceed max_length={self.max_length}; raise max_length or "
                                      "lower the pixel budget / max_frames (sequences are never truncated)")

    def _labels(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, examples: list[dict[str, Any]]) -> torch.Tensor:
        labels = input_ids.clone()
        for row, example in enumerate(examples):
            end = _last_occurrence(input_ids[row].tolist(), self._header)
            if end == -1:
                raise DataRecordError(example["source"], "text_output", "the chat template produced no assistant turn")
            labels[row, :end] = IGNORE_INDEX
        labels[attention_mask == 0] = IGNORE_INDEX
        labels[input_ids == self.spec.pad_id] = IGNORE_INDEX
        return labels

    def _check_imagery_tokens(self, grid_thw: torch.Tensor, sources: list[tuple[str, str, int]]) -> None:
        for tokens, (source, name, index) in zip((grid_thw.prod(-1) // self._merge_area).tolist(), sources):
            if tokens < self.spec.latent_size:
                raise DataRecordError(source, f"{name}[{index}]",
                                      f"gives {tokens} vision tokens, fewer than latent_size={self.spec.latent_size}; "
                                      "raise imagery_max_pixels / imagery_min_pixels")
