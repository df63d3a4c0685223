"""``trl-latent`` console script: one entry, one sub-command per job, each a module with ``main(argv) -> int``.

TRL's own ``trl`` CLI has a hard-coded command list and no plugin hook, so the method ships its own script. Training
sub-commands parse with ``TrlParser`` (YAML recipes, every SFTConfig/GRPOConfig/ModelConfig field as a flag); for
several GPUs run the same module under accelerate: ``accelerate launch -m trl_latent.scripts.dift --config …``.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "dift": ("trl_latent.scripts.dift", "Dynamic-Imagery Fine-Tuning (LatentImageryTrainer)"),
    "grpo": ("trl_latent.scripts.grpo", "4D reinforcement learning (LatentGRPOTrainer)"),
    "eval": ("trl_latent.cli_eval", "evaluate on dsr_bench / dyn_bench through lmms-eval, write tables and plots"),
    "quickstart": ("trl_latent.quickstart", "synthetic world → datagen → DIFT → 4DRL → eval → report, on CPU"),
    "init-tiny": ("trl_latent.scripts.init_tiny", "save a random-weight checkpoint (Qwen2.5-VL, Qwen2-VL, Qwen3-VL) to start from offline"),
}


def _usage() -> str:
    lines = ["usage: trl-latent <command> [--config recipe.yaml] [--field value ...]", "", "commands:"]
    lines += [f"  {name:<11} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"trl-latent: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
