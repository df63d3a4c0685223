"""trl-latent: think with 4D imagery — latent-token DIFT and 4DRL for Qwen2.5-VL on top of TRL.

Attributes resolve lazily (as in TRL and transformers) so that importing the package, or one light module such as
``trl_latent.tokens``, does not import the trainers and all of TRL.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "LATENT_START": "tokens",
    "LATENT_PAD": "tokens",
    "LATENT_END": "tokens",
    "OUTPUT_IMAGE": "tokens",
    "LatentSpec": "tokens",
    "add_latent_tokens": "tokens",
    "get_latent_spec": "tokens",
    "expand_output_images": "tokens",
    "compute_latent_targets": "latents",
    "inject_latents": "latents",
    "generate_with_latents": "generation",
    "LatentGenerationOutput": "generation",
    "LatentImageryConfig": "dift",
    "LatentImageryTrainer": "dift",
    "LatentGRPOConfig": "grpo",
    "LatentGRPOTrainer": "grpo",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'trl_latent' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
