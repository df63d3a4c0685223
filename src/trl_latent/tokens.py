"""Latent imagery tokens, registered into a stock Qwen2.5-VL at run time.

A latent block in a sequence is ``<|latent_start|>`` followed by ``latent_size`` ``<|latent_pad|>`` placeholders and
``<|latent_end|>``. The placeholders are never predicted as tokens: their input embeddings are continuous vectors (the
pooled vision features of an imagery image during DIFT, the model's own fed-back hidden states at inference).

The settings live in ``model.config`` under the keys the released 4DThinker checkpoints use (``latent_size``,
``latent_token_id``, ``latent_start_id``, ``latent_end_id``, ``compress_strategy``; DIFT adds the loss weights as
``ce_loss_weight`` / ``sim_loss_weight``, ``latent_feedback_norm`` when trained with feedback calibration and
``latent_feedback_center`` when calibrated about the mean target, see :func:`trl_latent.latents.feedback_vector`,
and ``latent_imagery: motion`` when its targets were motion pairs, see
:func:`trl_latent.latents.motion_pixel_values`), so those checkpoints load as they are and ours round-trip through
``save_pretrained`` / ``from_pretrained`` with no custom config class. The release adds the tokens in the order
pad, start, end (ids 151665-151667 with the Qwen2.5 tokenizer) and this code in the order start, pad, end; nothing
depends on the order, since every id is read from the config.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch

LATENT_START = "<|latent_start|>"
LATENT_PAD = "<|latent_pad|>"
LATENT_END = "<|latent_end|>"
OUTPUT_IMAGE = "<output_image>"
"""Placeholder in DIFT ``text_output`` marking where one imagery image is "thought"."""

_CONFIG_KEYS = ("latent_size", "latent_token_id", "latent_start_id", "latent_end_id", "compress_strategy")
COMPRESS_STRATEGIES = ("average",)
FEEDBACK_NORM_KEY = "latent_feedback_norm"
"""Config key of the norm fed-back latent vectors are rescaled to (absent: the release's raw hidden states)."""
LATENT_FEEDBACK_NORMS = ("none", "target", "centred")
"""DIFT's ``latent_feedback_norm`` calibrations: none (the release), the targets' norm, or their norm about the mean."""
FEEDBACK_CENTER_KEY = "latent_feedback_center"
"""Config key of the ``K x H`` mean imagery target per latent slot that a fed-back state's deviation is measured from
(absent: the origin); only with a recorded norm."""
IMAGERY_KEY = "latent_imagery"
"""Config key of what a latent target encodes (absent: ``still``, the release's one image per block)."""
LATENT_IMAGERY = ("still", "motion")
LOSS_WEIGHT_KEYS = ("ce_loss_weight", "sim_loss_weight")
"""Config keys of the DIFT loss weights (text cross-entropy, latent similarity), named as in the release."""


@dataclass(frozen=True)
class LatentSpec:
    """Token ids and size of a latent block, as stored in the model config."""

    latent_size: int
    start_id: int
    pad_id: int
    end_id: int
    compress_strategy: str = "average"
    feedback_norm: float | None = None
    """The norm every fed-back hidden state is rescaled to before it becomes a latent input (``None``: fed back as it
    is, as in the release); :func:`trl_latent.latents.feedback_vector` applies it."""
    feedback_center: tuple[tuple[float, ...], ...] | None = None
    """With ``feedback_norm``: the mean imagery target of each latent slot (``K`` rows); the norm is then that of the
    state's deviation from its slot's row, which is added back (:func:`trl_latent.latents.feedback_vector`)."""
    imagery: str = "still"
    """What a block's target encodes: ``still``, one imagery image (the release); ``motion``, an image paired with the
    previous one of its CoT (:func:`trl_latent.latents.motion_pixel_values`). DIFT and the oracle diagnostics read it."""

    def __post_init__(self) -> None:
        if self.latent_size < 1:
            raise ValueError(f"latent_size must be >= 1, got {self.latent_size}")
        if len({self.start_id, self.pad_id, self.end_id}) != 3:
            raise ValueError(f"latent token ids must be distinct, got {self.start_id}, {self.pad_id}, {self.end_id}")
        if self.compress_strategy not in COMPRESS_STRATEGIES:
            raise ValueError(f"compress_strategy must be one of {COMPRESS_STRATEGIES}, got {self.compress_strategy!r}")
        if self.feedback_norm is not None and not self.feedback_norm > 0:
            raise ValueError(f"{FEEDBACK_NORM_KEY} must be a positive number or absent, got {self.feedback_norm!r}")
        if self.imagery not in LATENT_IMAGERY:
            raise ValueError(f"{IMAGERY_KEY} must be one of {LATENT_IMAGERY}, got {self.imagery!r}")
        if self.feedback_center is not None and (self.feedback_norm is None
                                                 or len(self.feedback_center) != self.latent_size):
            raise ValueError(f"{FEEDBACK_CENTER_KEY} needs {FEEDBACK_NORM_KEY} and one row per latent slot "
                             f"(latent_size={self.latent_size}), got {len(self.feedback_center)} rows")

    @property
    def block_text(self) -> str:
        """The text one ``<output_image>`` expands to."""
        return LATENT_START + LATENT_PAD * self.latent_size + LATENT_END

    @property
    def special_ids(self) -> tuple[int, int, int]:
        return (self.start_id, self.pad_id, self.end_id)


def _unwrap(model: Any) -> Any:
    """Return the transformers model under PEFT / DDP / DeepSpeed wrappers."""
    while True:
        if hasattr(model, "get_base_model"):  # peft.PeftModel
            model = model.get_base_model()
        elif hasattr(model, "module") and isinstance(model.module, torch.nn.Module):  # DDP / DeepSpeed engine
            model = model.module
        else:
            return model


def _config_of(model_or_config: Any) -> Any:
    if hasattr(model_or_config, "to_dict") and not isinstance(model_or_config, torch.nn.Module):
        return model_or_config
    return _unwrap(model_or_config).config


def get_latent_spec(model_or_config: Any) -> LatentSpec | None:
    """Read the latent settings from a model (plain, PEFT or wrapped) or a config; ``None`` for a stock checkpoint."""
    config = _config_of(model_or_config)
    if getattr(config, "latent_token_id", None) is None:
        return None
    missing = [key for key in _CONFIG_KEYS[:4] if getattr(config, key, None) is None]
    if missing:
        raise ValueError(f"model config has latent_token_id but lacks {missing}: the checkpoint's latent settings are incomplete")
    return LatentSpec(
        latent_size=int(config.latent_size),
        start_id=int(config.latent_start_id),
        pad_id=int(config.latent_token_id),
        end_id=int(config.latent_end_id),
        compress_strategy=getattr(config, "compress_strategy", None) or "average",
        feedback_norm=None if getattr(config, FEEDBACK_NORM_KEY, None) is None else float(getattr(config, FEEDBACK_NORM_KEY)),
        feedback_center=None if getattr(config, FEEDBACK_CENTER_KEY, None) is None
        else tuple(tuple(float(x) for x in row) for row in getattr(config, FEEDBACK_CENTER_KEY)),
        imagery=getattr(config, IMAGERY_KEY, None) or "still",
    )


def set_feedback_norm(model: Any, norm: float | None, center: torch.Tensor | None = None) -> None:
    """Record (or, with ``None``, remove) the fed-back latent norm and, when given, the ``[K, H]`` center it is
    measured from, in the config (saved with the checkpoint)."""
    config = _unwrap(model).config
    for key, value in ((FEEDBACK_NORM_KEY, None if norm is None else float(norm)),
                       (FEEDBACK_CENTER_KEY, None if norm is None or center is None else center.float().tolist())):
        if value is not None:
            setattr(config, key, value)
        elif hasattr(config, key):
            delattr(config, key)


def set_latent_imagery(model: Any, imagery: str) -> None:
    """Record what the latent targets encode in the config (``still`` is recorded as absent, as the release has it)."""
    if imagery not in LATENT_IMAGERY:
        raise ValueError(f"latent_imagery must be one of {LATENT_IMAGERY}, got {imagery!r}")
    config = _unwrap(model).config
    if imagery == "still":
        if hasattr(config, IMAGERY_KEY):
            delattr(config, IMAGERY_KEY)
    else:
        setattr(config, IMAGERY_KEY, imagery)


def get_loss_weights(model_or_config: Any) -> tuple[float, float] | None:
    """``(ce_loss_weight, sim_loss_weight)`` a checkpoint was DIFT-trained with (ours or the release's); ``None`` when
    its config does not record them."""
    config = _config_of(model_or_config)
    values = [getattr(config, key, None) for key in LOSS_WEIGHT_KEYS]
    return None if None in values else (float(values[0]), float(values[1]))


def set_loss_weights(model: Any, ce_weight: float, sim_weight: float) -> None:
    """Record the DIFT loss weights in the config under the release's keys (saved with the checkpoint)."""
    config = _unwrap(model).config
    config.ce_loss_weight, config.sim_loss_weight = float(ce_weight), float(sim_weight)


def tokenizer_of(processor: Any) -> Any:
    """The text tokenizer of a processor (a bare tokenizer is its own)."""
    return getattr(processor, "tokenizer", processor)


def _init_rows_to_mean(weight: torch.Tensor, rows: list[int], num_trained: int) -> None:
    """Set ``rows`` to the mean of the first ``num_trained`` rows.

    Random rows destabilise bf16 training. The release means to do the same but does not: it first resizes the
    151,936-row matrix down to ``len(tokenizer)``, so its count of new rows is negative and they keep the values of the
    untrained padding rows they land in. Qwen checkpoints pad the vocabulary past the tokenizer, so here too the new ids
    may land in existing but untrained rows: those are reset to the mean.
    """
    with torch.no_grad():
        weight[rows] = weight[:num_trained].float().mean(dim=0, keepdim=True).to(weight.dtype)


def add_latent_tokens(
    model: Any, processor: Any, latent_size: int = 4, compress_strategy: str = "average"
) -> LatentSpec:
    """Register the three latent tokens in ``processor``'s tokenizer and in ``model``; return the resulting spec.

    Works on a plain ``Qwen2_5_VLForConditionalGeneration`` and on a PEFT-wrapped one (the base model is resized in
    place). Idempotent: calling it on a model that already has the tokens only checks that the settings agree.
    """
    tokenizer = tokenizer_of(processor)
    base = _unwrap(model)
    existing = get_latent_spec(base)
    if existing is not None:
        if existing.latent_size != latent_size:
            raise ValueError(f"model already has latent_size={existing.latent_size}, asked for {latent_size}")
        ids = tokenizer.convert_tokens_to_ids([LATENT_START, LATENT_PAD, LATENT_END])
        if tuple(ids) != existing.special_ids:
            raise ValueError(f"tokenizer latent ids {ids} disagree with the model config {existing.special_ids}")
        return existing

    num_trained = len(tokenizer)
    tokenizer.add_special_tokens({"additional_special_tokens": [LATENT_START, LATENT_PAD, LATENT_END]})
    start_id, pad_id, end_id = tokenizer.convert_tokens_to_ids([LATENT_START, LATENT_PAD, LATENT_END])
    spec = LatentSpec(latent_size, start_id, pad_id, end_id, compress_strategy)

    needed = max(spec.special_ids) + 1
    if needed > base.get_input_embeddings().weight.shape[0]:
        base.resize_token_embeddings(needed, mean_resizing=False)
    new_rows = [i for i in spec.special_ids if i >= num_trained]
    input_weight = base.get_input_embeddings().weight
    _init_rows_to_mean(input_weight, new_rows, num_trained)
    output_embeddings = base.get_output_embeddings()
    if output_embeddings is not None and output_embeddings.weight is not input_weight:
        _init_rows_to_mean(output_embeddings.weight, new_rows, num_trained)

    config = base.config
    config.latent_size = latent_size
    config.latent_token_id = pad_id
    config.latent_start_id = start_id
    config.latent_end_id = end_id
    config.compress_strategy = compress_strategy
    return spec


_OUTPUT_IMAGE_RE = re.compile(re.escape(OUTPUT_IMAGE))


def count_output_images(text: str) -> int:
    return len(_OUTPUT_IMAGE_RE.findall(text))


def expand_output_images(text: str, spec: LatentSpec) -> str:
    """Replace each ``<output_image>`` with a full latent block (start, K pads, end)."""
    return _OUTPUT_IMAGE_RE.sub(spec.block_text, text)


def latent_blocks_well_formed(ids: torch.Tensor, spec: LatentSpec) -> bool:
    """True when every start is followed by exactly K pads and an end, and no pad or end stands outside a block."""
    state = 0  # 0: outside; 1..K: pads seen + 1; K+1: expecting end
    for token in ids.tolist():
        if state == 0:
            if token == spec.start_id:
                state = 1
            elif token in (spec.pad_id, spec.end_id):
                return False
        elif state <= spec.latent_size:
            if token != spec.pad_id:
                return False
            state += 1
        else:
            if token != spec.end_id:
                return False
            state = 0
    return state == 0
