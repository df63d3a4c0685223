"""lmms-eval model registration: the ``lmms_eval.models`` entry point of trl-latent points at :func:`manifests`.

The adapter class is named by its import path, so lmms-eval imports it (and torch / transformers) only when a run
asks for ``--model latent_qwen2_5_vl``.
"""

from __future__ import annotations

from typing import Any

MODEL_ID = "latent_qwen2_5_vl"
CLASS_PATH = "lmms_eval_dsr.models.latent_qwen2_5_vl.LatentQwen2_5_VL"


def manifests() -> list[Any]:
    """The ``ModelManifest`` list lmms-eval reads from the entry point (a simple model: prompt + visuals in)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return [ModelManifest(model_id=MODEL_ID, simple_class_path=CLASS_PATH)]
