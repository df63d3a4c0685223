"""What every ``trl-latent <stage>`` script does around its trainer, kept in one place so the stages cannot drift.

Each stage parses a recipe into ``(script arguments, trainer config, ModelConfig)``, requires a data file and a model,
passes ``ModelConfig``'s loading options to the trainer through ``model_init_kwargs`` (options in the recipe's own
``model_init_kwargs`` win), then trains and saves weights, processor, model card and ``trainer_state.json``. What
differs between stages (which trainer, how records are loaded, quantization, rewards) stays in the stage's module.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import TypeVar

from transformers import PrinterCallback, ProgressCallback, Trainer, TrainerCallback, TrainingArguments
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
    *parsed, from_recipe, from_flags = parser.parse_args_and_config(
        argv, return_remaining_strings=True, separate_remaining_strings=True
    )
    reject_unknown(parser, from_recipe, recipe_path(argv), from_flags, command)
    script_args, training_args, model_args = parsed
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


def recipe_path(argv: list[str] | None) -> str | None:
    """The ``--config`` file named in ``argv`` (TRL's parser takes it out of the arguments it parses)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return argv[argv.index("--config") + 1] if "--config" in argv[:-1] else None


def reject_unknown(parser: TrlParser, from_recipe: list[str], recipe: str | None, from_flags: list[str],
                   command: str) -> None:
    """Exit with one line per run naming the first key of the recipe (or flag) that no config field has, and the
    closest field name, instead of TRL's ``fail_with_unknown_args`` traceback (``from_recipe`` / ``from_flags`` are
    the ``--key value`` strings TRL's parser left over)."""
    fields = sorted({action.dest for action in parser._actions if action.dest != "help"})
    for strings, kind, dashes, where in ((from_recipe, "key", "", f" in {recipe}"), (from_flags, "flag", "--", "")):
        names = [s[2:].split("=", 1)[0] for s in strings if s.startswith("--")]
        if names:
            close = difflib.get_close_matches(names[0].replace("-", "_"), fields, n=1, cutoff=0.6)
            hint = f" (did you mean {dashes}{close[0]}?)" if close else ""
            raise SystemExit(f"trl-latent {command}: unknown {kind} {dashes}{names[0]}{where}{hint}")


def _looks_like_path(name: str) -> bool:
    """Whether ``name`` can only mean a local folder: absolute, ``./`` / ``../`` / ``~``, not a valid Hub id, or
    under a folder that exists here (``outputs/dift-tiny`` when ``outputs/`` does)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if name.startswith((".", "~", "/")) or Path(name.split("/")[0]).is_dir():
        return True
    try:
        validate_repo_id(name)
    except HFValidationError:
        return True
    return False


def model_path_problem(name: str, revision: str = "main") -> str | None:
    """Why ``name`` is neither a saved model folder nor a Hub model id that resolves; ``None`` when it is one.

    Checked before anything is built, so that a mistyped path is reported as that path at once: a value that can
    only be a folder is never looked up on the Hub, a Hub id is found in the local cache first, and with
    ``HF_HUB_OFFLINE=1`` nothing else is tried (transformers would retry the Hub for ~25 s, then report a connection
    error).
    """
    from huggingface_hub import constants, try_to_load_from_cache

    path = Path(name).expanduser()
    if path.is_dir():
        return None if (path / "config.json").is_file() else f"{path.resolve()} has no config.json (not a saved model)"
    if _looks_like_path(name):
        return f"no folder {path.resolve()}"
    if isinstance(try_to_load_from_cache(name, "config.json", revision=revision), str):
        return None
    if constants.HF_HUB_OFFLINE:
        return (f"no folder {path.resolve()}, and {name!r} is not in the local Hub cache "
                "(HF_HUB_OFFLINE=1: the Hub is not asked)")
    from transformers import AutoConfig

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
    print_metrics_as_numbers(trainer)
    trainer.card_dataset_name = dataset_name
    trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    trainer.save_model(args.output_dir)
    trainer.save_state()
    if getattr(args, "skip_invalid_samples", False):
        trainer.accelerator.print(f"{stage}: {trainer.skipped_samples} samples skipped (failed to decode mid-run)")
    trainer.accelerator.print(f"{stage} model saved to {args.output_dir}")
    if args.push_to_hub:
        trainer.push_to_hub(dataset_name=dataset_name)


class _Shown:
    """A logged float as transformers shows it (4 significant digits), but printed bare: ``'loss': 1.115``."""

    def __init__(self, value: float) -> None:
        self.text = f"{value:.4g}"

    def __repr__(self) -> str:
        return self.text


def _numeric(callback: type[TrainerCallback]) -> type[TrainerCallback]:
    """``callback`` whose ``on_log`` prints floats as numbers: transformers' progress and printer callbacks turn them
    into strings (``'loss': '1.115'``), which reads as text and does not parse back as the number it is."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        shown = {key: _Shown(value) if isinstance(value, float) else value for key, value in (logs or {}).items()}
        return callback.on_log(self, args, state, control, logs=shown, **kwargs)

    return type(f"Numeric{callback.__name__}", (callback,), {"on_log": on_log})


def print_metrics_as_numbers(trainer: Trainer) -> None:
    """Swap the trainer's progress (or, with ``disable_tqdm``, printer) callback for one that prints numbers."""
    for callback in (ProgressCallback, PrinterCallback):
        if trainer.pop_callback(callback) is not None:
            trainer.add_callback(_numeric(callback))
