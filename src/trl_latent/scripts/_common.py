"""What every ``trl-latent <stage>`` script does around its trainer, kept in one place so the stages cannot drift.

Each stage parses a recipe into ``(script arguments, trainer config, ModelConfig)``, requires a data file and a model,
passes ``ModelConfig``'s loading options to the trainer through ``model_init_kwargs`` (options in the recipe's own
``model_init_kwargs`` win), then trains and saves weights, processor, model card and ``trainer_state.json``. What
differs between stages (which trainer, how records are loaded, quantization, rewards) stays in the stage's module.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from transformers import AutoConfig, Trainer, TrainingArguments
from trl import ModelConfig, ScriptArguments, TrlParser

ScriptArgs = TypeVar("ScriptArgs", bound=ScriptArguments)
Config = TypeVar("Config", bound=TrainingArguments)


def parse_recipe(
    script_class: type[ScriptArgs],
    config_class: type[Config],
    argv: list[str] | None,
    *,
    command: str,
    dataset_help: str,
    model_help: str,
) -> tuple[ScriptArgs, Config, ModelConfig]:
    """Parse ``--config`` and flags; exit with a usage error when ``dataset_name`` or ``model_name_or_path`` is missing
    or the model cannot be found.

    ``command`` names the sub-command in the usage line (``trl-latent <command>``); ``dataset_help`` / ``model_help``
    say in the error what the stage expects (e.g. ``"the DIFT data file"``). The returned config's
    ``model_init_kwargs`` already carries the ``ModelConfig`` revision, attention implementation and dtype.
    """
    parser = TrlParser((script_class, config_class, ModelConfig))
    parser.prog = f"trl-latent {command}"
    parser.usage = "%(prog)s [-h] [--config RECIPE.yaml] [--<field> VALUE ...]"
    parser.description = (
        "Every field below can be set in the YAML recipe given with --config (same names); a flag overrides the "
        "recipe. Flags use underscores like TRL (--per_device_train_batch_size); dashed aliases also work."
    )
    script_args, training_args, model_args = parser.parse_args_and_config(argv)
    if not script_args.dataset_name:
        parser.error(f"dataset_name ({dataset_help}) is required")
    if not model_args.model_name_or_path:
        parser.error(f"model_name_or_path ({model_help}) is required")
    problem = model_path_problem(model_args.model_name_or_path, model_args.model_revision)
    if problem:
        parser.error(f"model_name_or_path ({model_help}): {problem}")
    training_args.model_init_kwargs = {
        "revision": model_args.model_revision,
        "attn_implementation": model_args.attn_implementation,
        "dtype": model_args.dtype,
        **(training_args.model_init_kwargs or {}),
    }
    return script_args, training_args, model_args


def model_path_problem(name: str, revision: str = "main") -> str | None:
    """Why ``name`` is neither a saved model folder nor a Hub model id that resolves; ``None`` when it is one.

    Checked before anything is built, so that a mistyped path is reported as that path (transformers would report an
    offline hub connection error without it).
    """
    path = Path(name).expanduser()
    if path.is_dir():
        return None if (path / "config.json").is_file() else f"{path.resolve()} has no config.json (not a saved model)"
    try:
        AutoConfig.from_pretrained(name, revision=revision)
    except (OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return f"no folder {path.resolve()}, and {name!r} is not a model id the Hub resolves ({reason})"
    return None


def train_and_save(trainer: Trainer, args: TrainingArguments, stage: str, dataset_name: str) -> None:
    """Train (resuming from ``args.resume_from_checkpoint`` when set), save to ``args.output_dir``, push when asked.

    ``save_model`` writes the weights, the processor (with the latent tokens) and the model card; ``save_state`` writes
    ``trainer_state.json`` with the logged metrics, which plots and reports read.
    """
    trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    trainer.save_model(args.output_dir)
    trainer.save_state()
    if getattr(args, "skip_invalid_samples", False):
        trainer.accelerator.print(f"{stage}: {trainer.skipped_samples} samples skipped (failed to decode mid-run)")
    trainer.accelerator.print(f"{stage} model saved to {args.output_dir}")
    if args.push_to_hub:
        trainer.push_to_hub(dataset_name=dataset_name)
