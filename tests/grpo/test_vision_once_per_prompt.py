"""4DRL's vision-once path: each prompt's video is encoded once per log-prob chunk and shared by its rollouts, with the
per-token log-probs, the loss and every gradient (vision tower included) of the per-row path."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from tiny_inputs import random_frames

from trl_latent.data import load_records
from trl_latent.grpo.latent_grpo_trainer import _RowBatch, unpack_latents
from trl_latent.latents import vision_backbone
from trl_latent.testing import build_tiny

from .helpers import force_latent_blocks
from .test_latent_grpo_trainer import trainer_for

GENERATIONS = 3


def write_videos(folder: Path) -> Path:
    """Two 4-frame clips with different questions."""
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for index in range(2):
        paths = []
        for i, frame in enumerate(random_frames(10 + index, num_frames=4)):
            paths.append(f"clip{index}_{i}.png")
            Image.fromarray(frame).save(folder / paths[-1])
        records.append({"image_input": paths, "text_input": f"Clip {index}: which way?\nA. left\nB. right", "answer": "A"})
    path = folder / "rl.jsonl"
    path.write_text("\n".join(json.dumps(record) for record in records) + "\n")
    return path


@pytest.fixture(scope="module", params=["qwen2_5_vl", "qwen3_vl"])
def video_batch(request, tiny_session, tmp_path_factory):
    """Two video prompts x 3 generations (even rows imagining), shuffled as TRL shuffles a generation batch; one
    rollout per family for the module (the tests only read it, and restore what they change on the trainer). Qwen3-VL
    also shares its DeepStack features, which its forward adds inside the language model."""
    if request.param == "qwen2_5_vl":
        model, processor = (copy.deepcopy(x) for x in tiny_session)
    else:
        model, processor = build_tiny(request.param, latent_size=4, seed=0)
    tmp_path = tmp_path_factory.mktemp("video_batch")
    dataset = load_records(write_videos(tmp_path / "data"), task="rl")
    trainer = trainer_for(model, processor, tmp_path, dataset, num_generations=GENERATIONS,
                          per_device_train_batch_size=2 * GENERATIONS, num_iterations=2)
    with pytest.MonkeyPatch.context() as patch:
        force_latent_blocks(patch)
        out = trainer._generate_and_score_completions([dataset[0]] * GENERATIONS + [dataset[1]] * GENERATIONS)
    order = torch.tensor([4, 0, 2, 5, 1, 3])
    out = {key: [value[i] for i in order] if isinstance(value, list) else
           value[order] if isinstance(value, torch.Tensor) and value.dim() and value.shape[0] == len(order) else value
           for key, value in out.items()}
    out["advantages"] = torch.linspace(-1.0, 1.0, len(order))
    return trainer, out


class TowerCalls:
    """Counts vision-tower forwards and the videos (grid rows) each one encodes."""

    def __init__(self, model) -> None:
        self.videos: list[int] = []
        self.handle = vision_backbone(model).visual.register_forward_pre_hook(self.hook, with_kwargs=True)

    def hook(self, module, args, kwargs):
        self.videos.append(kwargs["grid_thw"].shape[0])


def logps_and_grads(trainer, out, share: bool) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor], list[int]]:
    trainer.args.vision_once_per_prompt = share
    ids = out["completion_ids"]
    input_ids = torch.cat([out["prompt_ids"], ids], dim=1)
    attention_mask = torch.cat([out["prompt_mask"], out["completion_mask"]], dim=1)
    latents = unpack_latents(out["latent_embeds"], ids, trainer.latent_spec)
    calls = TowerCalls(trainer.model)
    try:
        with trainer._using_rows(_RowBatch(inputs=out["visual_inputs"], latents=latents)):
            logps, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, input_ids, attention_mask, ids.shape[1])
        trainer.model.zero_grad()
        loss = trainer.compute_loss(trainer.model, out)
        loss.backward()
    finally:
        calls.handle.remove()
    grads = {name: p.grad.clone() for name, p in trainer.model.named_parameters() if p.grad is not None}
    return logps.detach(), loss.detach(), grads, calls.videos


def assert_same(trainer, out) -> dict[str, torch.Tensor]:
    per_row = logps_and_grads(trainer, out, share=False)
    shared = logps_and_grads(trainer, out, share=True)
    scored = out["completion_mask"].bool()
    assert (shared[0][scored] - per_row[0][scored]).abs().max().item() <= 1e-5
    assert (shared[1] - per_row[1]).abs().item() <= 1e-5
    assert shared[2].keys() == per_row[2].keys()
    for name, grad in per_row[2].items():
        assert torch.allclose(shared[2][name], grad, atol=1e-5, rtol=1e-4), name
    # one log-prob pass, then the policy pass of the loss: each encodes all six rows, or the two prompts once
    assert per_row[3] == [2 * GENERATIONS] * 2
    assert shared[3] == [2, 2]
    return shared[2]


def test_shared_vision_gives_the_per_row_logps_loss_and_gradients(video_batch):
    trainer, out = video_batch
    assert len({id(row) for row in out["visual_inputs"]}) == 2  # the generations of a prompt share its tensors
    grads = assert_same(trainer, out)
    tower = [name for name in grads if ".visual." in name]
    assert tower and any(grads[name].abs().sum() > 0 for name in tower)  # the trainable tower is trained through them
    deepstack = [name for name in tower if "deepstack_merger" in name]  # Qwen3-VL: the DeepStack path is shared too
    assert bool(deepstack) == (trainer.model.config.model_type == "qwen3_vl")
    assert not deepstack or any(grads[name].abs().sum() > 0 for name in deepstack)


def test_frozen_tower_is_shared_without_a_graph(video_batch):
    trainer, out = video_batch
    tower = vision_backbone(trainer.model).visual
    trainable = {name: p.requires_grad for name, p in tower.named_parameters()}
    tower.requires_grad_(False)
    try:
        grads = assert_same(trainer, out)
    finally:
        for name, p in tower.named_parameters():
            p.requires_grad_(trainable[name])
    assert not [name for name in grads if ".visual." in name]
