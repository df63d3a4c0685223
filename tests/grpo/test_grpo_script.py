"""``trl-latent grpo`` end to end: the shipped CPU recipe, a saved tiny checkpoint, two training steps."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from trl_latent.scripts import grpo as grpo_script
from trl_latent.testing import save_tiny_checkpoint

RECIPE = Path(__file__).resolve().parents[2] / "examples" / "grpo_tiny.yaml"


@pytest.mark.slow
def test_two_steps_from_the_tiny_recipe(tmp_path, rl_jsonl):
    checkpoint, spec = save_tiny_checkpoint(tmp_path / "tiny")
    assert spec is not None
    output = tmp_path / "run"
    code = grpo_script.main([
        "--config", str(RECIPE),
        "--model_name_or_path", str(checkpoint),
        "--dataset_name", str(rl_jsonl),
        "--output_dir", str(output),
        "--max_completion_length", "8",
        "--save_strategy", "steps", "--save_steps", "2",
    ])
    assert code == 0
    state = json.loads((output / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    steps = [entry for entry in state["log_history"] if "loss" in entry]
    assert len(steps) == 2 and all(math.isfinite(entry["loss"]) for entry in steps)
    assert {"rewards/accuracy/mean", "rewards/format/mean", "kl"} <= set(steps[-1])
    assert (output / "model.safetensors").is_file()
    assert "Thinking with 4D imagery" in (output / "README.md").read_text()


def test_bad_reward_path_is_named():
    with pytest.raises(ValueError, match="trl_latent.rewards.nope"):
        grpo_script.resolve_reward("trl_latent.rewards.nope")
    with pytest.raises(ValueError, match="dotted import path"):
        grpo_script.resolve_reward("accuracy")
