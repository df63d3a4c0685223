"""padding_free=True packs DIFT's multimodal rows end to end, and the frozen tower's imagery targets are computed once:
both change the cost of a step, never its loss or gradients."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import tiny_config

from trl_latent.dift import LatentImageryConfig, LatentImageryTrainer
from trl_latent.latents import vision_backbone


def trainer_for(model, processor, records, tmp_path, **overrides):
    args = tiny_config(tmp_path / str(len(overrides)), ce_weight=1.0, **overrides)
    return LatentImageryTrainer(model, args=args, train_dataset=records, processing_class=processor)


def loss_and_gradients(trainer, batch):
    model = trainer.model
    model.train()
    model.zero_grad()
    loss = trainer.compute_loss(model, dict(batch))
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    metrics = {key: values[-1] for key, values in trainer._metrics["train"].items()}
    return loss.detach(), grads, metrics


def test_packed_rows_give_the_padded_batch_loss_and_gradients(tiny, dift_records, tmp_path):
    model, processor = tiny
    padded = trainer_for(copy.deepcopy(model), processor, dift_records, tmp_path)
    packed = trainer_for(copy.deepcopy(model), processor, dift_records, tmp_path, padding_free=True)
    rows = [dift_records[0], dift_records[1], dift_records[2]]  # image frames, frames, a video file: three lengths
    padded_batch, packed_batch = padded.data_collator(rows), packed.data_collator(rows)
    lengths = padded_batch["attention_mask"].sum(1)
    assert len(set(lengths.tolist())) > 1  # the padded batch has padding
    assert "attention_mask" not in packed_batch and packed_batch["input_ids"].shape == (1, int(lengths.sum()))
    text = packed_batch["position_ids"][0, 0]
    assert (text == 0).sum() == 3 and packed_batch["position_ids"].shape == (4, 1, int(lengths.sum()))

    loss, grads, metrics = loss_and_gradients(padded, padded_batch)
    packed_loss, packed_grads, packed_metrics = loss_and_gradients(packed, packed_batch)
    torch.testing.assert_close(packed_loss, loss, atol=1e-6, rtol=1e-5)
    for key in ("ce_loss", "sim_loss", "cos_sim", "latent_norm_ratio", "num_imagery"):
        assert packed_metrics[key] == pytest.approx(metrics[key], rel=1e-5, abs=1e-6), key
    assert grads.keys() == packed_grads.keys() and len(grads) > 10
    for name, grad in grads.items():
        torch.testing.assert_close(packed_grads[name], grad, atol=1e-6, rtol=1e-4, msg=name)


def test_packed_training_runs_through_the_trainer(tiny, dift_records, tmp_path):
    model, processor = tiny
    trainer = trainer_for(model, processor, dift_records, tmp_path, padding_free=True)
    assert trainer.args.padding_free  # restored after SFTTrainer, which refuses it for our collator
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "sim_loss" in entry]
    assert len(logs) == 2 and all(entry["loss"] == entry["loss"] for entry in logs)
    with pytest.raises(ValueError, match="cannot be packed"):
        LatentImageryConfig(str(tmp_path), padding_free=True, latent_feedback="self", use_cpu=True,
                            activation_checkpointing=False)


def test_frozen_tower_targets_are_computed_once(tiny, dift_records, tmp_path):
    model, processor = tiny
    trainer = trainer_for(model, processor, dift_records, tmp_path)
    tower = vision_backbone(trainer.model).visual
    calls = []
    handle = tower.register_forward_hook(lambda module, args, out: calls.append(1))
    batch = trainer.data_collator([dift_records[0], dift_records[1]])
    try:
        first = loss_and_gradients(trainer, batch)
        after_first = len(calls)
        second = loss_and_gradients(trainer, batch)
        assert len(calls) == 2 * after_first - 1  # the second step encodes the user images only, not the imagery
        assert len(trainer._target_cache) == 3
        torch.testing.assert_close(second[0], first[0])
        # a tower that trains invalidates the cache: its targets move with it
        tower.blocks[0].mlp.up_proj.weight.requires_grad_(True)
        loss_and_gradients(trainer, batch)
        assert len(calls) == 3 * after_first - 1 and not trainer._target_cache
    finally:
        handle.remove()
    uncached = trainer_for(copy.deepcopy(model), processor, dift_records, tmp_path, cache_latent_targets=False)
    uncached.compute_loss(uncached.model, dict(batch))
    assert not uncached._target_cache
