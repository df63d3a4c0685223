"""Config fields shared by the DIFT and 4DRL recipes, so both spell, default and check them the same way."""

from __future__ import annotations

from dataclasses import field
from typing import Any

from .answers import PROMPT_SUFFIXES
from .models import POSITION_RULES


def mrope_position_rule_field() -> Any:
    """``mrope_position_rule``: Qwen's reference mRoPE rule (default) or the installed transformers' one."""
    return field(
        default="reference",
        metadata={"help": "3-D mRoPE rule: Qwen's reference or the installed transformers'.", "choices": list(POSITION_RULES)},
    )


def prompt_suffix_field() -> Any:
    """``prompt_suffix``: the name of the instruction appended to each question (``think``, ``release``, ``release_rl``)."""
    return field(
        default="think", metadata={"help": "Instruction appended to each question.", "choices": list(PROMPT_SUFFIXES)}
    )


def skip_invalid_samples_field() -> Any:
    """``skip_invalid_samples``: drop bad records at load time and samples whose media fail to decode mid-run."""
    return field(
        default=False,
        metadata={"help": "Skip invalid records, and samples whose media fail to decode mid-run (logged, counted as "
                          "`skipped_samples`), instead of stopping with an error naming file:line."},
    )


def check_recipe_fields(config: Any) -> None:
    """Reject unknown rule or suffix names when the config is built (YAML typos fail before any model loads)."""
    if config.mrope_position_rule not in POSITION_RULES:
        raise ValueError(f"mrope_position_rule must be one of {POSITION_RULES}, got {config.mrope_position_rule!r}")
    if config.prompt_suffix not in PROMPT_SUFFIXES:
        raise ValueError(f"prompt_suffix must be one of {sorted(PROMPT_SUFFIXES)}, got {config.prompt_suffix!r}")
