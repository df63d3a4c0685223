"""Per-family adapters: everything trl-latent needs that depends on the vision-language model family.

An adapter is the module ``trl_latent.models.<config.model_type>`` with a class ``Adapter(config)`` offering
``family`` (its display name), ``backbone(model)``, ``vision_tower(model)``, ``image_features(model, pixel_values,
grid_thw)``, ``select_encoder_items(output, items)``, ``gather_language_model_kwargs(kwargs, columns, valid)``,
``token_types(ids)``, ``positions(ids, attention_mask, multimodal, rule)`` and ``install_positions(model, rule)``, plus what builds a random checkpoint of the family: ``MODEL_CLASS``,
``PROCESSOR_CLASS``, ``VISION_TOWER_CLASS``, ``CHAT_TEMPLATE``, ``SIZES``, ``build_config``, ``build_processor`` and
``video_budget`` (see :mod:`trl_latent.models.qwen2_5_vl`). The rest of the package reaches the model only through
these, so supporting another family is one more module here, found by its ``model_type``, and its name in
:data:`FAMILIES` (docs/architecture.md, "Adding a family").

The mRoPE position rule is part of the run-time patch: :func:`apply_position_rule` records it in ``model.config``
(``mrope_position_rule``, saved with the checkpoint) and installs it in the model, and every position our code
computes reads it from there, so the model's forward, the latent loop, DIFT, the GRPO recompute and evaluation agree.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..tokens import _config_of, _unwrap
from .qwen2_5_vl import POSITION_RULES

POSITION_RULE_KEY = "mrope_position_rule"
DEFAULT_POSITION_RULE = "reference"
FAMILIES = ("qwen2_5_vl", "qwen2_vl", "qwen3_vl")
"""The supported ``model_type`` values, default first (``init-tiny --model_type``, ``quickstart --model_family``)."""


def family_module(model_type: str) -> Any:
    """The adapter module of ``model_type``; a clear error for a family trl-latent does not support."""
    if model_type not in FAMILIES:
        raise ValueError(f"trl-latent has no adapter for model_type {model_type!r}; supported: {', '.join(FAMILIES)}")
    return importlib.import_module(f"{__name__}.{model_type}")


def video_budget(processor: Any, min_pixels: int, max_pixels: int, num_frames: int) -> dict[str, Any]:
    """``videos_kwargs`` for ``processor`` that keep frames already fitted one by one into ``[min_pixels,
    max_pixels]`` as they are (families budget a frame or a whole clip)."""
    for model_type in FAMILIES:
        module = family_module(model_type)
        if isinstance(processor, module.PROCESSOR_CLASS):
            return module.video_budget(min_pixels, max_pixels, num_frames)
    raise TypeError(f"no trl-latent family uses a processor of type {type(processor).__name__}")


def adapter_for(model_or_config: Any) -> Any:
    """The adapter of a model (plain, PEFT or wrapped) or config, chosen by its ``model_type``."""
    config = _config_of(model_or_config)
    model_type = getattr(config, "model_type", None)
    try:
        module = importlib.import_module(f"{__name__}.{model_type}")
    except ModuleNotFoundError as error:
        raise ValueError(
            f"trl-latent has no adapter for model_type {model_type!r} (add trl_latent/models/{model_type}.py)"
        ) from error
    return module.Adapter(config)


def position_rule(model_or_config: Any) -> str:
    """The mRoPE rule recorded in the config; Qwen's reference rule when none is (stock and released checkpoints)."""
    rule = getattr(_config_of(model_or_config), POSITION_RULE_KEY, None) or DEFAULT_POSITION_RULE
    if rule not in POSITION_RULES:
        raise ValueError(f"{POSITION_RULE_KEY} must be one of {POSITION_RULES}, got {rule!r}")
    return rule


def apply_position_rule(model: Any, rule: str | None = None) -> str:
    """Install ``rule`` (default: the one the config records, else ``"reference"``) in ``model`` and record it in its
    config; return it. Idempotent, and cheap enough to call before every use."""
    rule = rule or position_rule(model)
    if rule not in POSITION_RULES:
        raise ValueError(f"{POSITION_RULE_KEY} must be one of {POSITION_RULES}, got {rule!r}")
    base = _unwrap(model)
    adapter_for(base).install_positions(base, rule)
    setattr(base.config, POSITION_RULE_KEY, rule)
    return rule


__all__ = [
    "FAMILIES", "POSITION_RULES", "POSITION_RULE_KEY", "adapter_for", "apply_position_rule", "family_module",
    "position_rule", "video_budget",
]
