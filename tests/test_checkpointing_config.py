"""Our configs default activation checkpointing on (TRL's default) without transformers' deprecated name."""

from __future__ import annotations

import warnings

import pytest

from trl_latent.dift.dift_config import LatentImageryConfig
from trl_latent.grpo.latent_grpo_config import LatentGRPOConfig

COMMON = dict(output_dir="unused", use_cpu=True, bf16=False, report_to="none")


@pytest.mark.parametrize("config_class", [LatentImageryConfig, LatentGRPOConfig])
def test_default_is_on_and_silent(config_class):
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        config = config_class(**COMMON)
    assert config.activation_checkpointing is True and config.gradient_checkpointing is True


@pytest.mark.user_deprecation
@pytest.mark.parametrize("config_class", [LatentImageryConfig, LatentGRPOConfig])
def test_explicit_settings_win(config_class):
    assert config_class(**COMMON, activation_checkpointing=False).activation_checkpointing is False
    with pytest.warns(FutureWarning, match="gradient_checkpointing"):  # the user's own deprecated spelling
        config = config_class(**COMMON, gradient_checkpointing=False)
    assert config.activation_checkpointing is False and config.gradient_checkpointing is False
