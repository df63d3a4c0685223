"""Every supported family through the user's door: ``trl-latent init-tiny --model_type`` writes a checkpoint the Auto
classes load, with the adapter and processor of its family; unsupported choices fail with a clear message."""

from __future__ import annotations

import pytest
from transformers import AutoModelForImageTextToText, AutoProcessor

from trl_latent.cli import main
from trl_latent.models import FAMILIES, adapter_for, family_module
from trl_latent.tokens import get_latent_spec


@pytest.mark.parametrize("model_type", FAMILIES)
def test_init_tiny_writes_a_loadable_checkpoint_of_the_family(model_type, tmp_path, capsys):
    out = tmp_path / model_type
    assert main(["init-tiny", "--model_type", model_type, "--latent_size", "4", str(out)]) == 0
    assert f"saved a random tiny {model_type}, latent tokens with K=4" in capsys.readouterr().out
    model = AutoModelForImageTextToText.from_pretrained(out)
    processor = AutoProcessor.from_pretrained(out)
    module = family_module(model_type)
    assert type(model) is module.MODEL_CLASS and type(processor) is module.PROCESSOR_CLASS
    assert model.config.model_type == model_type and get_latent_spec(model).latent_size == 4
    assert adapter_for(model).family in {"Qwen2.5-VL", "Qwen2-VL", "Qwen3-VL"}


def test_init_tiny_defaults_to_qwen2_5_vl_and_names_bad_sizes(tmp_path):
    assert main(["init-tiny", str(tmp_path / "default")]) == 0
    assert AutoModelForImageTextToText.from_pretrained(tmp_path / "default").config.model_type == "qwen2_5_vl"
    with pytest.raises(SystemExit, match="--size 3b is not defined for qwen3_vl"):
        main(["init-tiny", "--model_type", "qwen3_vl", "--size", "3b", str(tmp_path / "big")])
    with pytest.raises(ValueError, match="no adapter for model_type 'llava'; supported: qwen2_5_vl, qwen2_vl, qwen3_vl"):
        family_module("llava")


def test_quickstart_takes_the_model_family():
    from trl_latent.quickstart import parse_config

    config = parse_config(["--model_family", "qwen3_vl", "--model_size", "tiny"])
    assert config.model_family == "qwen3_vl"
    with pytest.raises(ValueError, match="model_size must be one of \\['small', 'tiny'\\] for qwen3_vl"):
        parse_config(["--model_family", "qwen3_vl", "--model_size", "3b"])
    with pytest.raises(ValueError, match="model_family must be one of"):
        parse_config(["--model_family", "llava"])
