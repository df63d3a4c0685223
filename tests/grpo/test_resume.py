"""``trl-latent grpo --resume_from_checkpoint``: the resumed run ends with the uninterrupted run's weights."""

from __future__ import annotations

from pathlib import Path

import pytest
from resume_check import assert_resume_matches

from trl_latent.rewards import completion_text
from trl_latent.scripts.grpo import main
from trl_latent.testing import save_tiny_checkpoint

RECIPE = Path(__file__).resolve().parents[2] / "examples" / "grpo_tiny.yaml"


def completion_length(completions, **kwargs) -> list[float]:
    """A reward that differs between the tiny model's random completions (accuracy and format are all 0 there, and
    with LoRA the policy starts equal to the reference, so nothing would train)."""
    return [len(completion_text(c)) / 10 for c in completions]


def grpo_args(tmp_path: Path, rl_jsonl: Path) -> list[str]:
    checkpoint, _ = save_tiny_checkpoint(tmp_path / "tiny")
    return ["--config", str(RECIPE), "--model_name_or_path", str(checkpoint), "--dataset_name", str(rl_jsonl),
            "--max_completion_length", "8", "--learning_rate", "1e-3",
            "--reward_funcs", f"{__name__}.completion_length", "--reward_weights", "1.0"]


@pytest.mark.slow
def test_full_fine_tuning_resumes_to_the_same_weights(tmp_path, rl_jsonl):
    assert_resume_matches(main, grpo_args(tmp_path, rl_jsonl), tmp_path)


@pytest.mark.slow
def test_lora_resumes_to_the_same_adapter(tmp_path, rl_jsonl):
    assert_resume_matches(main, [*grpo_args(tmp_path, rl_jsonl), "--use_peft", "--lora_r", "4",
                                 "--lora_target_modules", "q_proj", "v_proj"], tmp_path)
