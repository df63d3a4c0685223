"""4DRL on long, low-fps clips: the recomputed log-probs equal the rollout's, for a batch mixing short and long clips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from tiny_inputs import random_frames

from trl_latent.data import load_records

from .helpers import force_latent_blocks
from .test_latent_grpo_trainer import rollout_logps, rollout_rows, trainer_for


def write_clips(folder: Path) -> Path:
    """A 2-frame clip (one temporal patch) and a 16-frame clip, both extracted at 0.1 fps (the long one spans 160 s)."""
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for index, (count, answer) in enumerate(((2, "A"), (16, "B"))):
        paths = []
        for i, frame in enumerate(random_frames(index, num_frames=count)):
            paths.append(f"clip{index}_{i}.png")
            Image.fromarray(frame).save(folder / paths[-1])
        records.append({"image_input": paths, "text_input": f"Clip {index}: which way?\nA. left\nB. right",
                        "answer": answer})
    path = folder / "rl.jsonl"
    path.write_text("\n".join(json.dumps(record) for record in records) + "\n")
    return path


@pytest.fixture
def long_video_rollout(family_tiny, tmp_path, monkeypatch):
    """One rollout batch (both clips x 2 generations, even rows imagining) with old log-probs recomputed, for every
    family; made in a fixture, as in ``test_latent_grpo_trainer``, because TRL's rollout reads an attribute
    transformers deprecates."""
    model, processor = family_tiny
    dataset = load_records(write_clips(tmp_path / "data"), task="rl")
    trainer = trainer_for(model, processor, tmp_path, dataset, num_iterations=2, fps=1.0, frames_fps=0.1,
                          max_completion_length=12)
    rollouts = force_latent_blocks(monkeypatch)
    return trainer, trainer._generate_and_score_completions(rollout_rows(dataset)), rollouts[-1]


def test_recompute_equals_rollout_on_long_low_fps_video(long_video_rollout):
    trainer, out, rollout = long_video_rollout
    if trainer.model.config.model_type == "qwen2_5_vl":
        assert [row["second_per_grid_ts"].item() for row in out["visual_inputs"]] == [20.0, 20.0, 20.0, 20.0]
    assert [row["video_grid_thw"][0, 0].item() for row in out["visual_inputs"]] == [1, 1, 8, 8]
    ids = out["completion_ids"]
    assert (ids == trainer.latent_spec.pad_id).any()
    scored = (out["completion_mask"] * out["tool_mask"]).bool()
    sampled = rollout_logps(rollout, ids)
    difference = (out["old_per_token_logps"][scored] - sampled[scored]).abs().max().item()
    assert difference <= 1e-4, f"recomputed vs rollout log-probs differ by {difference:.2e}"
