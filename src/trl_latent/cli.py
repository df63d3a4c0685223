"""``trl-latent`` console script: one entry, one sub-command per job, each a module with ``main(argv) -> int``.

TRL's own ``trl`` CLI has a hard-coded command list and no plugin hook, so the method ships its own script. Training
sub-commands parse with ``TrlParser`` (YAML recipes, every SFTConfig/GRPOConfig/ModelConfig field as a flag); for
several GPUs run the same module under accelerate: ``accelerate launch -m trl_latent.scripts.dift --config …``.

What every sub-command gets from this entry: ``--help`` of the training commands is answered from the configs'
source (:mod:`trl_latent.scripts.static_help`) before torch, TRL or DeepSpeed load; an error in the user's data or
recipe (``ValueError``, ``OSError``) ends in one line naming it, the traceback kept for ``trl-latent --debug …`` or
``TRL_LATENT_DEBUG=1``; DeepSpeed's "Setting accelerator to CPU" notice, printed on every CPU run, is dropped.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable

COMMANDS = {
    "dift": ("trl_latent.scripts.dift", "Dynamic-Imagery Fine-Tuning (LatentImageryTrainer)"),
    "grpo": ("trl_latent.scripts.grpo", "4D reinforcement learning (LatentGRPOTrainer)"),
    "eval": ("trl_latent.cli_eval", "evaluate on dsr_bench / dyn_bench through lmms-eval, write tables and plots"),
    "quickstart": ("trl_latent.quickstart", "synthetic world → datagen → DIFT → 4DRL → eval → report, on CPU"),
    "init-tiny": ("trl_latent.scripts.init_tiny", "save a random-weight checkpoint (Qwen2.5-VL, Qwen2-VL, Qwen3-VL) to start from offline"),
}
DEBUG_ENV = "TRL_LATENT_DEBUG"


def _usage() -> str:
    lines = ["usage: trl-latent [--debug] <command> [--config recipe.yaml] [--field value ...]", "", "commands:"]
    lines += [f"  {name:<11} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", f"--debug (or {DEBUG_ENV}=1): show the full traceback of an error instead of its one line"]
    return "\n".join(lines)


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def quiet_deepspeed() -> None:
    """Drop DeepSpeed's "Setting accelerator to CPU" warning (its logger "DeepSpeed" logs it when it is imported on a
    machine without a GPU, i.e. on every CPU command, where it says nothing the user needs). A filter, installed before
    DeepSpeed creates the logger, survives its ``setLevel``; every other DeepSpeed message still shows."""
    logger = logging.getLogger("DeepSpeed")
    if not any(isinstance(f, _CpuAcceleratorFilter) for f in logger.filters):
        logger.addFilter(_CpuAcceleratorFilter())


class _CpuAcceleratorFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Setting accelerator to CPU")


def one_line(error: BaseException) -> str:
    """The error's message on one line (its lines joined), or its type when it has none."""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return text or type(error).__name__


def run(main_: Callable[[list[str]], int | None], argv: list[str], prog: str) -> int:
    """Run a sub-command's ``main``; an error in the user's input (``ValueError``: a bad record, recipe value or
    answer; ``OSError``: a missing or unreadable file) prints ``<prog>: error: <message>`` and returns 1, unless
    debugging is on, when it propagates with its traceback."""
    quiet_deepspeed()
    if debug_enabled():
        return int(main_(argv) or 0)
    try:
        return int(main_(argv) or 0)
    except (ValueError, OSError) as error:
        print(f"{prog}: error: {one_line(error)} [traceback: {DEBUG_ENV}=1]", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    while argv and argv[0] == "--debug":  # before the command: TrainingArguments has a `--debug` field of its own
        argv.pop(0)
        os.environ[DEBUG_ENV] = "1"  # also seen by the processes a command starts
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"trl-latent: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    if "-h" in rest or "--help" in rest:
        from .scripts.static_help import static_help

        text = static_help(command)
        if text is not None:
            print(text)
            return 0
    quiet_deepspeed()  # before the import: TRL and transformers import DeepSpeed
    module = importlib.import_module(COMMANDS[command][0])
    return run(module.main, rest, f"trl-latent {command}")


if __name__ == "__main__":
    sys.exit(main())
