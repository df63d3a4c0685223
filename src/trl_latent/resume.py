"""Resuming a run from a ``checkpoint-N`` folder with the weights that were saved there.

transformers 5 saves a model in its checkpoint's original layout: ``save_pretrained`` reverts the model's weight
conversions (for Qwen2.5-VL the legacy names ``visual.*`` and ``model.layers.*`` instead of the module names
``model.visual.*`` and ``model.language_model.*``), and ``from_pretrained`` applies them again when loading. The
Trainer's resume (``Trainer._load_from_checkpoint``, transformers 5.24; ``_load_best_model`` alike) skips that step:
it hands the saved names to ``nn.Module.load_state_dict(strict=False)``, so every weight is reported missing and
unexpected and training goes on from the weights the run started with, with the checkpoint's optimizer state
(transformers issue 43701).

:class:`ResumeWeightsMixin` loads full-model checkpoints the way ``from_pretrained`` reads them, through the model's
own conversion mapping, and refuses to go on when a weight is still missing or unexpected afterwards. Checkpoints it
does not read (LoRA adapters, FSDP and SageMaker states) take the Trainer's own path; DeepSpeed resumes from its own
states, which keep the module names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from transformers.conversion_mapping import get_model_conversion_mapping
from transformers.core_model_loading import (
    WeightConverter,
    WeightRenaming,
    rename_source_key,
)
from transformers.modeling_utils import load_state_dict
from transformers.utils import (
    SAFE_WEIGHTS_INDEX_NAME,
    SAFE_WEIGHTS_NAME,
    WEIGHTS_INDEX_NAME,
    WEIGHTS_NAME,
    is_sagemaker_mp_enabled,
)


class ResumeWeightsError(RuntimeError):
    """A checkpoint whose weights do not fit the model being trained; the message names the checkpoint."""


def checkpoint_weight_files(folder: Path) -> list[Path]:
    """The full-model weight files of a ``save_pretrained`` folder (one file or the shards of its index); ``[]``
    when it holds none (an adapter-only or FSDP checkpoint)."""
    for single, index in ((SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME), (WEIGHTS_NAME, WEIGHTS_INDEX_NAME)):
        if (folder / single).is_file():
            return [folder / single]
        if (folder / index).is_file():
            weight_map = json.loads((folder / index).read_text())["weight_map"]
            return [folder / name for name in sorted(set(weight_map.values()))]
    return []


def to_module_names(model: Any, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state_dict`` with saved names renamed to ``model``'s module names by the renamings ``from_pretrained``
    applies (``get_model_conversion_mapping``). A weight that a converter would have to split or merge cannot be
    loaded one name at a time: that is an error rather than a silently skipped weight."""
    conversions = get_model_conversion_mapping(model)
    renamings = [c for c in conversions if isinstance(c, WeightRenaming)]
    converters = [c for c in conversions if isinstance(c, WeightConverter)]
    expected = model.state_dict()
    renamed = {}
    for key, tensor in state_dict.items():
        name, converter = rename_source_key(key, renamings, converters, model.base_model_prefix, expected)
        if converter is not None:
            raise NotImplementedError(f"weight {key!r} needs a conversion ({converter}) that resuming cannot apply")
        renamed[name] = tensor
    return renamed


def _shares_storage(model: Any, key: str, loaded: set[str]) -> bool:
    """Whether the missing ``key`` is tied to a loaded weight (tied weights are saved once)."""
    pointer = model.get_parameter_or_buffer(key).data_ptr()
    return any(model.get_parameter_or_buffer(other).data_ptr() == pointer for other in loaded)


def load_checkpoint_weights(model: Any, checkpoint: str | Path) -> bool:
    """Load the full-model weights saved in ``checkpoint`` into ``model``; ``False`` when it holds none.

    Raises :class:`ResumeWeightsError` naming the checkpoint when a weight of the model is not in it (other than one
    tied to a loaded weight), when it holds a weight the model lacks, or when a shape differs.
    """
    folder = Path(checkpoint)
    files = checkpoint_weight_files(folder)
    if not files:
        return False
    state_dict = {}
    for file in files:
        state_dict.update(load_state_dict(str(file)))
    try:
        state_dict = to_module_names(model, state_dict)
        result = model.load_state_dict(state_dict, strict=False)
    except (RuntimeError, NotImplementedError) as error:  # size mismatches, conversions
        raise ResumeWeightsError(f"cannot resume from {folder}: {error}") from error
    missing = [key for key in result.missing_keys if not _shares_storage(model, key, set(state_dict))]
    if missing or result.unexpected_keys:
        raise ResumeWeightsError(
            f"cannot resume from {folder}: its weights do not fit the model ({len(missing)} missing, e.g. "
            f"{missing[:3]}; {len(result.unexpected_keys)} unexpected, e.g. {result.unexpected_keys[:3]}); "
            "was it saved from another model or with other latent tokens?"
        )
    return True


class ResumeWeightsMixin:
    """Trainer mixin: ``resume_from_checkpoint`` and ``load_best_model_at_end`` restore the full-model weights saved
    by ``save_pretrained`` (:func:`load_checkpoint_weights`); other checkpoints take the Trainer's own path."""

    def _reads_full_weights(self, model: Any) -> bool:
        """Whether the weights of ``model`` are loaded here: not sharded by FSDP / DeepSpeed / SageMaker (they keep
        their own states), not a PEFT model (adapters are saved and loaded by PEFT under the module names)."""
        distributed = self.is_fsdp_enabled or self.is_deepspeed_enabled or is_sagemaker_mp_enabled()
        return not distributed and not hasattr(model, "peft_config")

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        target = self.model if model is None else model
        if not (self._reads_full_weights(target) and load_checkpoint_weights(target, resume_from_checkpoint)):
            super()._load_from_checkpoint(resume_from_checkpoint, model)

    def _load_best_model(self) -> None:
        if not (self._reads_full_weights(self.model)
                and load_checkpoint_weights(self.model, self.state.best_model_checkpoint)):
            super()._load_best_model()
