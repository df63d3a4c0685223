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
    argv = ["--model_name_or_path", "m", "--dataset_name", "d.jsonl", "--output_dir", str(tmp_path),
            "--dtype", "float32", "--use_cpu", "true", "--report_to", "none"]
    script_args, args, model_args = parse_recipe(script_class, config_class, argv, dataset_help="x", model_help="y")
    assert isinstance(script_args, script_class) and isinstance(args, config_class)
    assert model_args.model_name_or_path == "m"
    assert args.model_init_kwargs == {"revision": "main", "attn_implementation": None, "dtype": "float32"}


def test_missing_dataset_and_model_are_usage_errors(tmp_path, capsys):
    common = ["--output_dir", str(tmp_path), "--use_cpu", "true", "--report_to", "none"]
    with pytest.raises(SystemExit):
        parse_recipe(LatentImageryScriptArguments, LatentImageryConfig, ["--model_name_or_path", "m", *common],
                     dataset_help="the DIFT data file", model_help="a checkpoint")
    assert "dataset_name (the DIFT data file) is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_recipe(LatentImageryScriptArguments, LatentImageryConfig, ["--dataset_name", "d.jsonl", *common],
                     dataset_help="the DIFT data file", model_help="a checkpoint")
    assert "model_name_or_path (a checkpoint) is required" in capsys.readouterr().err
