"""``trl_latent.scripts._common``: the recipe parsing both training scripts share (training itself: tests/dift, tests/grpo)."""

from __future__ import annotations

import pytest

from trl_latent.dift import LatentImageryConfig
from trl_latent.grpo import LatentGRPOConfig
from trl_latent.scripts._common import parse_recipe
from trl_latent.scripts.dift import LatentImageryScriptArguments
from trl_latent.scripts.grpo import LatentGRPOScriptArguments


@pytest.mark.parametrize(
    ("script_class", "config_class"),
    [(LatentImageryScriptArguments, LatentImageryConfig), (LatentGRPOScriptArguments, LatentGRPOConfig)],
)
def test_model_options_reach_model_init_kwargs(script_class, config_class, tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")  # only looked up: parse_recipe checks the path, it loads nothing
    argv = ["--model_name_or_path", str(model), "--dataset_name", "d.jsonl", "--output_dir", str(tmp_path),
            "--dtype", "float32", "--use_cpu", "true", "--report_to", "none"]
    script_args, args, model_args = parse_recipe(script_class, config_class, argv, command="x", dataset_help="x",
                                                 model_help="y")
    assert isinstance(script_args, script_class) and isinstance(args, config_class)
    assert model_args.model_name_or_path == str(model)
    assert args.model_init_kwargs == {"revision": "main", "attn_implementation": None, "dtype": "float32"}


def test_missing_dataset_and_model_are_usage_errors(tmp_path, capsys):
    common = ["--output_dir", str(tmp_path), "--use_cpu", "true", "--report_to", "none"]
    with pytest.raises(SystemExit):
        parse_recipe(LatentImageryScriptArguments, LatentImageryConfig, ["--model_name_or_path", "m", *common],
                     command="dift", dataset_help="the DIFT data file", model_help="a checkpoint")
    assert "dataset_name (the DIFT data file) is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_recipe(LatentImageryScriptArguments, LatentImageryConfig, ["--dataset_name", "d.jsonl", *common],
                     command="dift", dataset_help="the DIFT data file", model_help="a checkpoint")
    assert "model_name_or_path (a checkpoint) is required" in capsys.readouterr().err


def test_a_mistyped_model_path_is_named(tmp_path, capsys):
    common = ["--dataset_name", "d.jsonl", "--output_dir", str(tmp_path), "--use_cpu", "true", "--report_to", "none"]
    for name, needle in [(str(tmp_path / "chekpoint"), f"no folder {tmp_path / 'chekpoint'}"),
                         ("runs/dfit", "'runs/dfit' is not a model id the Hub resolves"),
                         (str(tmp_path), f"{tmp_path} has no config.json")]:
        with pytest.raises(SystemExit):
            parse_recipe(LatentGRPOScriptArguments, LatentGRPOConfig, ["--model_name_or_path", name, *common],
                         command="grpo", dataset_help="the 4DRL data file", model_help="the DIFT checkpoint")
        error = capsys.readouterr().err
        assert "model_name_or_path (the DIFT checkpoint): " in error and needle in error, error


@pytest.mark.parametrize(("module", "command"), [("trl_latent.scripts.dift", "dift"), ("trl_latent.scripts.grpo", "grpo")])
def test_help_names_the_command_and_config_and_every_flag_has_help(module, command, capsys):
    import importlib

    with pytest.raises(SystemExit):
        importlib.import_module(module).main(["--help"])
    text = capsys.readouterr().out
    assert text.startswith(f"usage: trl-latent {command} [-h] [--config RECIPE.yaml]")
    assert "--per_device_train_batch_size PER_DEVICE_TRAIN_BATCH_SIZE, --per-device-train-batch-size" in text
    assert "--skip_invalid_samples [SKIP_INVALID_SAMPLES], --skip-invalid-samples" in text


@pytest.mark.parametrize(
    ("script_class", "config_class"),
    [(LatentImageryScriptArguments, LatentImageryConfig), (LatentGRPOScriptArguments, LatentGRPOConfig)],
)
def test_every_flag_has_help_text(script_class, config_class):
    from trl import ModelConfig, TrlParser

    parser = TrlParser((script_class, config_class, ModelConfig))
    assert [a.option_strings[0] for a in parser._actions if not (a.help or "").strip()] == []


def test_quickstart_flags_have_help_text_and_the_usage_names_the_command(capsys):
    from trl_latent.quickstart import main

    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert text.startswith("usage: trl-latent quickstart [-h] [--preset PRESET] [--output_dir OUTPUT_DIR]")
    assert "--num_clips NUM_CLIPS, --num-clips NUM_CLIPS" in text
    from transformers import HfArgumentParser

    from trl_latent.quickstart.config import QuickstartConfig

    parser = HfArgumentParser(QuickstartConfig)
    assert [a.option_strings[0] for a in parser._actions if not (a.help or "").strip()] == []
