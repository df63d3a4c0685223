"""``trl-latent dift --resume_from_checkpoint``: the resumed run ends with the uninterrupted run's weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dift_data import dift_record, write_jsonl
from resume_check import assert_resume_matches, saved_weights
from safetensors.torch import load_file, save_file

from trl_latent.resume import ResumeWeightsError
from trl_latent.scripts.dift import main
from trl_latent.testing import save_tiny_checkpoint

RECIPE = Path(__file__).resolve().parents[2] / "examples" / "dift_tiny.yaml"


def dift_args(tmp_path: Path) -> list[str]:
    checkpoint, _ = save_tiny_checkpoint(tmp_path / "tiny", latent_size=None)
    data = write_jsonl(tmp_path / "data" / "train.jsonl",
                       [dift_record(tmp_path / "data", i, num_imagery=1) for i in range(3)])
    return ["--config", str(RECIPE), "--model_name_or_path", str(checkpoint), "--dataset_name", str(data),
            "--per_device_train_batch_size", "1"]


@pytest.mark.slow
def test_full_fine_tuning_resumes_to_the_same_weights(tmp_path):
    args = dift_args(tmp_path)
    checkpoint = assert_resume_matches(main, args, tmp_path)

    # a checkpoint whose weights do not fit the model stops the run, naming the checkpoint
    weights = load_file(checkpoint / "model.safetensors")
    weights.pop(next(k for k in weights if "layers.1.mlp" in k))
    save_file(weights, checkpoint / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ResumeWeightsError, match=rf"cannot resume from {checkpoint}: .*1 missing"):
        main([*args, "--output_dir", str(tmp_path / "again"), "--max_steps", "3",
              "--resume_from_checkpoint", str(checkpoint)])


@pytest.mark.slow
def test_lora_resumes_to_the_same_adapter(tmp_path):
    assert_resume_matches(main, [*dift_args(tmp_path), "--use_peft", "--lora_r", "4",
                                 "--lora_target_modules", "q_proj", "v_proj"], tmp_path)


@pytest.mark.slow
def test_best_model_at_end_is_the_best_checkpoint(tmp_path):
    """``load_best_model_at_end`` reads a checkpoint the same way (it restored nothing either)."""
    args = dift_args(tmp_path)
    data = args[args.index("--dataset_name") + 1]
    out = tmp_path / "best"
    # the *highest* eval loss is "best" here, so the best checkpoint is not the last one
    assert main([*args, "--output_dir", str(out), "--eval_dataset_name", data, "--eval_strategy", "steps",
                 "--eval_steps", "1", "--save_strategy", "steps", "--save_steps", "1", "--max_steps", "2",
                 "--load_best_model_at_end", "true", "--metric_for_best_model", "eval_loss",
                 "--greater_is_better", "true"]) == 0
    best = Path(json.loads((out / "trainer_state.json").read_text())["best_model_checkpoint"])
    assert best.name != "checkpoint-2"
    final, expected = saved_weights(out), saved_weights(best)
    assert max((final[k] - expected[k]).abs().max().item() for k in expected) <= 1e-5
