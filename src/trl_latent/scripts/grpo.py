"""``trl-latent grpo``: 4DRL from a recipe, like ``trl grpo`` but with latent rollouts and video prompts.

    trl-latent grpo --config examples/grpo_qwen2_5_vl_3b.yaml
    accelerate launch --config_file examples/accelerate/zero2.yaml -m trl_latent.scripts.grpo --config …

``dataset_name`` is a 4DRL data file (JSONL with ``image_input`` / ``video``, ``text_input``, ``answer``, optional
``type``; or the release's rows with ``video_path`` / ``frame_paths``, ``Question``, ``A``-``D``, ``Correct``; paths
relative to the file) or a ``datasets`` folder / parquet file with the same columns; it is validated
up front by :func:`trl_latent.data.load_records`. ``reward_funcs`` are dotted import paths.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from trl import ScriptArguments, get_peft_config, get_quantization_config

from ..data import load_records
from ..grpo import LatentGRPOConfig, LatentGRPOTrainer
from ._common import parse_recipe, train_and_save


@dataclass
class LatentGRPOScriptArguments(ScriptArguments):
    """``ScriptArguments`` plus the reward functions."""

    reward_funcs: list[str] = field(
        default_factory=lambda: ["trl_latent.rewards.accuracy", "trl_latent.rewards.format"],
        metadata={"help": "Reward functions as dotted import paths, e.g. `trl_latent.rewards.accuracy`."},
    )


def resolve_reward(path: str) -> Callable:
    """Import ``package.module.function``; a clear error when the path does not name a callable."""
    module_name, _, name = path.rpartition(".")
    if not module_name:
        raise ValueError(f"reward_funcs: {path!r} is not a dotted import path such as 'trl_latent.rewards.accuracy'")
    try:
        function = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"reward_funcs: cannot import {path!r}: {error}") from error
    if not callable(function):
        raise ValueError(f"reward_funcs: {path!r} is not callable")
    return function


def main(argv: list[str] | None = None) -> int:
    script_args, training_args, model_args = parse_recipe(
        LatentGRPOScriptArguments, LatentGRPOConfig, argv, command="grpo",
        dataset_help="the 4DRL data file", model_help="the DIFT checkpoint",
    )
    dataset = load_records(script_args.dataset_name, task="rl", skip_invalid=training_args.skip_invalid_samples,
                           split=script_args.dataset_train_split, config=script_args.dataset_config,
                           prompt_suffix=training_args.prompt_suffix)
    trainer = LatentGRPOTrainer(
        model=model_args.model_name_or_path,
        reward_funcs=[resolve_reward(path) for path in script_args.reward_funcs],
        args=training_args,
        train_dataset=dataset,
        peft_config=get_peft_config(model_args),
        quantization_config=get_quantization_config(model_args),
    )
    train_and_save(trainer, training_args, "4DRL", script_args.dataset_name)
    return 0


if __name__ == "__main__":
    from ..cli import run

    sys.exit(run(main, sys.argv[1:], "trl-latent grpo"))
