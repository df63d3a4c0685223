"""Shared pieces of the 4DRL tests: a small RL JSONL and a logits processor that forces one token."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from PIL import Image
from tiny_inputs import random_frames, random_image
from transformers import LogitsProcessor, LogitsProcessorList

import trl_latent.grpo.latent_grpo_trainer as trainer_module

QUESTION = "Which way does the red sphere move?\nA. left\nB. right\nC. up\nD. down"


def write_rl_jsonl(folder: Path, video: bool = True) -> Path:
    """Two records: an image question with options and, with ``video``, a 4-frame clip with a numeric answer."""
    folder.mkdir(parents=True, exist_ok=True)
    random_image(0).save(folder / "image.png")
    records = [{"image_input": "image.png", "text_input": QUESTION, "answer": "B", "type": "rel_dir"}]
    if video:
        for i, frame in enumerate(random_frames(1, num_frames=4)):
            Image.fromarray(frame).save(folder / f"frame_{i}.png")
        records.append({"image_input": [f"frame_{i}.png" for i in range(4)], "text_input": "How far, in metres?", "answer": "3.5"})
    path = folder / "rl.jsonl"
    path.write_text("\n".join(json.dumps(record) for record in records) + "\n")
    return path


class ForceTokenAt(LogitsProcessor):
    """Makes the chosen rows pick ``token`` at completion step ``step``: a stand-in for a policy that decides to imagine.

    Only the choice is forced; the latent loop, its fed-back vectors and every log-prob stay the model's own.
    """

    def __init__(self, token: int, step: int, rows: list[int], prompt_length: int) -> None:
        self.token, self.step, self.rows, self.prompt_length = token, step, rows, prompt_length

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[1] - self.prompt_length == self.step:
            scores[self.rows] = float("-inf")
            scores[self.rows, self.token] = 0.0
        return scores



def force_latent_blocks(monkeypatch) -> list:
    """Patch the trainer's rollout so its even rows open a latent block at step 1; return the list that collects every
    rollout's output (with its raw logits, for comparing recomputed log-probs)."""
    real = trainer_module.generate_with_latents
    rollouts = []

    def generate(model, input_ids, attention_mask=None, **kwargs):
        rows = list(range(0, input_ids.shape[0], 2))
        forcing = ForceTokenAt(kwargs["spec"].start_id, 1, rows, input_ids.shape[1])
        out = real(model, input_ids, attention_mask, output_logits=True, logits_processor=LogitsProcessorList([forcing]), **kwargs)
        rollouts.append(out)
        return out

    monkeypatch.setattr(trainer_module, "generate_with_latents", generate)
    return rollouts
