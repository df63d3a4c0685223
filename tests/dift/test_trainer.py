"""LatentImageryTrainer: the loss against a hand computation, frozen vision tower, training, LoRA, model card."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_config
from dift_data import dift_record, write_jsonl

from trl_latent.data import load_records
from trl_latent.dift import LatentImageryTrainer, latent_similarity_loss
from trl_latent.latents import compute_latent_targets, inject_latents


def test_similarity_loss_matches_a_loop():
    torch.manual_seed(0)
    hidden = torch.randn(2, 9, 5)
    input_ids = torch.tensor([[1, 7, 9, 9, 8, 1, 7, 9, 9], [1, 1, 7, 9, 9, 8, 0, 0, 0]])  # pad id 9, K = 2
    targets = torch.randn(3, 2, 5)
    loss, cosine = latent_similarity_loss(hidden, input_ids, targets, pad_id=9)
    positions = [(0, 2), (0, 3), (0, 7), (0, 8), (1, 3), (1, 4)]
    cosines = [F.cosine_similarity(hidden[r, t - 1].double(), targets.reshape(6, 5)[i].double(), dim=0)
               for i, (r, t) in enumerate(positions)]
    per_image = [(2 - cosines[2 * n] - cosines[2 * n + 1]) / 2 for n in range(3)]
    assert loss.item() == pytest.approx(sum(per_image).item() / 3, abs=1e-6)
    assert cosine.item() == pytest.approx(sum(cosines).item() / 6, abs=1e-6)
    with pytest.raises(ValueError, match=re.escape("6 <|latent_pad|> positions but 4 target vectors (2 imagery images")):
        latent_similarity_loss(hidden, input_ids, targets[:2], pad_id=9)


def test_centred_similarity_scores_what_differs_between_targets():
    """Targets sharing most of their direction: the plain cosine is nearly met by predicting their mean, the centred
    one (``center``) is not, and both equal a per-position computation."""
    torch.manual_seed(0)
    input_ids = torch.tensor([[7, 9, 9, 8, 7, 9, 9, 8], [7, 9, 9, 8, 0, 0, 0, 0]])  # pad id 9, K = 2, 3 images
    shared = torch.randn(2, 16) * 5
    targets = shared + torch.randn(3, 2, 16)
    center = targets.mean(0)
    hidden = torch.randn(2, 8, 16)
    loss, cosine = latent_similarity_loss(hidden, input_ids, targets, pad_id=9, center=center)
    rows, cols = torch.nonzero(input_ids == 9, as_tuple=True)
    slots = torch.arange(6) % 2
    cosines = F.cosine_similarity((hidden[rows, cols - 1] - center[slots]).double(),
                                  (targets.reshape(6, 16) - center[slots]).double())
    assert loss.item() == pytest.approx((1 - cosines).mean().item(), abs=1e-6)
    assert cosine.item() == pytest.approx(cosines.mean().item(), abs=1e-6)

    mean_guess = hidden.clone()
    mean_guess[rows, cols - 1] = center[slots]  # the same picture imagined for every question
    plain, _ = latent_similarity_loss(mean_guess, input_ids, targets, pad_id=9)
    centred, _ = latent_similarity_loss(mean_guess, input_ids, targets, pad_id=9, center=center)
    assert plain.item() < 0.05 and centred.item() == pytest.approx(1.0)
    exact = hidden.clone()
    exact[rows, cols - 1] = targets.reshape(6, 16)
    assert latent_similarity_loss(exact, input_ids, targets, pad_id=9, center=center)[0].item() == pytest.approx(
        0.0, abs=1e-6)


@pytest.mark.parametrize("centering", ["mean", "both"])
def test_centred_loss_subtracts_the_training_records_mean_target(tiny, dift_records, tmp_path, centering):
    """``latent_sim_centering``: the mean target per slot over the first ``feedback_norm_samples`` records, each record
    encoded alone here (a tower image attends within itself), subtracted in ``compute_loss`` (``both``: averaged with
    the raw term); on the card."""
    trainer = _trainer(tiny, dift_records, tmp_path, latent_sim_centering=centering, feedback_norm_samples=2)
    model, spec = trainer.model, trainer.latent_spec
    with torch.no_grad():
        alone = [trainer.data_collator([record]) for record in (dift_records[0], dift_records[1])]
        center = torch.cat([compute_latent_targets(model, b["latent_pixel_values"], b["latent_image_grid_thw"], 4)
                            for b in alone]).mean(0)  # 2 + 1 images, not the third record's
    batch = trainer.data_collator([dift_records[1], dift_records[2]])
    inputs = {k: v for k, v in batch.items() if not k.startswith("latent_")}
    model.train()
    trainer.compute_loss(model, dict(batch))
    with torch.no_grad():
        targets = compute_latent_targets(model, batch["latent_pixel_values"], batch["latent_image_grid_thw"], 4)
        with inject_latents(model, spec.pad_id, targets.flatten(0, 1)):
            hidden = model.model(**{k: v for k, v in inputs.items() if k != "labels"}).last_hidden_state
    rows, cols = torch.nonzero(batch["input_ids"] == spec.pad_id, as_tuple=True)
    slots = torch.arange(len(rows)) % 4
    flat = targets.reshape(-1, targets.shape[-1]).double()
    centred = F.cosine_similarity((hidden[rows, cols - 1] - center[slots]).double(), flat - center[slots].double())
    raw = F.cosine_similarity(hidden[rows, cols - 1].double(), flat)
    cosines = centred if centering == "mean" else (centred + raw) / 2
    assert trainer._metrics["train"]["sim_loss"][-1] == pytest.approx((1 - cosines).view(-1, 4).mean(1).mean().item(),
                                                                      rel=1e-4)
    assert "cos(h[t−1] − μ, imagery target[t] − μ; μ the slot's mean target" in trainer.latent_card_details()["Loss"]
    with pytest.raises(ValueError, match="latent_sim_centering must be one of"):
        tiny_config(tmp_path, latent_sim_centering="median")


def test_calibration_and_centring_encode_the_sampled_imagery_once(tiny, dift_records, tmp_path, monkeypatch):
    """With ``latent_feedback_norm='target'`` and centring both on, the sampled records' imagery is encoded once at
    start-up and both statistics equal their own measurement; without imagery the error names both settings."""
    from trl_latent.dift import dift_trainer

    calls = []
    encode = dift_trainer.compute_latent_targets
    monkeypatch.setattr(dift_trainer, "compute_latent_targets", lambda *a: calls.append(1) or encode(*a))
    trainer = _trainer(tiny, dift_records, tmp_path, latent_feedback_norm="target", latent_sim_centering="both",
                       feedback_norm_samples=2)
    assert len(calls) == 1  # one batch of the two sampled records (per_device_train_batch_size 2)
    assert trainer.latent_spec.feedback_norm == pytest.approx(trainer.measure_target_norm())
    assert torch.equal(trainer._target_center, trainer.measure_target_mean())
    text_only = load_records(write_jsonl(tmp_path / "text.jsonl", [dift_record(tmp_path, 0, num_imagery=0)]))
    with pytest.raises(ValueError, match="latent_feedback_norm='target' and latent_sim_centering='both' needs imagery"):
        _trainer(tiny, text_only, tmp_path, latent_feedback_norm="target", latent_sim_centering="both")


def test_first_frame_rows_train_on_their_first_frame_alone(tiny, tmp_path):
    """``first_frame_share``: the rows :func:`trl_latent.data._picked` picks reach the collator as their first frame,
    an image (no video tokens), the others as their video; the card counts them."""
    from trl_latent.data import _picked

    rows = [dift_record(tmp_path, i, num_imagery=1) for i in range(6)]
    records = load_records(write_jsonl(tmp_path / "train.jsonl", rows))
    picked = [_picked(record["source"], 0.5) for record in records]
    assert 0 < sum(picked) < 6
    trainer = _trainer(tiny, records, tmp_path, first_frame_share=0.5)
    for n, record in enumerate(trainer.train_dataset):
        batch = trainer.data_collator([record])
        assert ("pixel_values_videos" in batch) != picked[n] and ("pixel_values" in batch) == picked[n], n
        assert record["image"] == (records[n]["frames"][0] if picked[n] else "")
    assert trainer.latent_card_details()["First-frame rows"].startswith(f"{sum(picked)} of 6 training rows")
    assert "First-frame rows" not in _trainer(tiny, records, tmp_path).latent_card_details()


def _trainer(tiny, records, output_dir, **overrides):
    model, processor = tiny
    return LatentImageryTrainer(model, args=tiny_config(output_dir, **overrides), train_dataset=records,
                                processing_class=processor)


def test_compute_loss_equals_hand_computation(family_tiny, dift_records, tmp_path):
    """Every family (teacher mode)."""
    trainer = _trainer(family_tiny, dift_records, tmp_path, ce_weight=0.3, sim_weight=2.0)
    model, spec = trainer.model, trainer.latent_spec
    batch = trainer.data_collator([dift_records[0], dift_records[2]])
    inputs = {k: v for k, v in batch.items() if not k.startswith("latent_")}
    model.train()
    loss = trainer.compute_loss(model, dict(batch))

    with torch.no_grad():
        targets = compute_latent_targets(model, batch["latent_pixel_values"], batch["latent_image_grid_thw"], 4)
        with inject_latents(model, spec.pad_id, targets.flatten(0, 1)):
            ce = model(**inputs).loss  # transformers' own shifted CE over the labels
        with inject_latents(model, spec.pad_id, targets.flatten(0, 1)):
            hidden = model.model(**{k: v for k, v in inputs.items() if k != "labels"}).last_hidden_state
    rows, cols = torch.nonzero(batch["input_ids"] == spec.pad_id, as_tuple=True)
    cosines = F.cosine_similarity(hidden[rows, cols - 1].double(), targets.reshape(-1, targets.shape[-1]).double())
    sim = (1 - cosines).view(-1, 4).mean(1).mean()
    assert loss.item() == pytest.approx(0.3 * ce.item() + 2.0 * sim.item(), rel=1e-4)
    metrics = trainer._metrics["train"]
    assert metrics["ce_loss"][-1] == pytest.approx(ce.item(), rel=1e-4)
    assert metrics["sim_loss"][-1] == pytest.approx(sim.item(), rel=1e-4)
    assert metrics["cos_sim"][-1] == pytest.approx(cosines.mean().item(), rel=1e-4)
    assert metrics["num_imagery"][-1] == 3  # 2 + 1 imagery images


def test_no_gradient_reaches_the_frozen_vision_tower(tiny, dift_records, tmp_path):
    trainer = _trainer(tiny, dift_records, tmp_path)
    visual = trainer.model.model.visual
    assert not any(p.requires_grad for p in visual.parameters())
    trainer.model.train()
    loss = trainer.compute_loss(trainer.model, dict(trainer.data_collator([dift_records[0], dift_records[1]])))
    assert not visual.training  # kept in eval mode although the model trains
    loss.backward()
    assert all(p.grad is None for p in visual.parameters())
    assert trainer.model.model.language_model.layers[0].mlp.up_proj.weight.grad.abs().sum() > 0


def test_latent_targets_never_carry_gradient_even_with_a_trainable_tower(tiny, dift_records, tmp_path):
    trainer = _trainer(tiny, dift_records, tmp_path, freeze_vision_tower=False, ce_weight=0.0)
    visual = trainer.model.model.visual
    assert all(p.requires_grad for p in visual.parameters())
    batch = trainer.data_collator([dift_records[0]])
    targets = compute_latent_targets(trainer.model, batch["latent_pixel_values"], batch["latent_image_grid_thw"], 4)
    assert not targets.requires_grad


@pytest.mark.slow
def test_a_few_steps_lower_both_losses_on_a_fixed_batch(tiny, dift_records, tmp_path):
    fixed = dift_records.select([0, 1])  # batch size 2: every step sees the same batch
    trainer = _trainer(tiny, fixed, tmp_path, max_steps=6, learning_rate=3e-3, warmup_steps=0,
                       lr_scheduler_type="constant", ce_weight=1.0)
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "ce_loss" in entry]
    assert len(logs) == 6
    assert logs[-1]["ce_loss"] < 0.9 * logs[0]["ce_loss"]
    assert logs[-1]["sim_loss"] < 0.8 * logs[0]["sim_loss"]
    assert logs[-1]["cos_sim"] > logs[0]["cos_sim"]


@pytest.mark.slow
def test_lora_with_gradient_checkpointing_trains_the_latent_rows(stock_tiny, dift_records, tmp_path):
    from peft import LoraConfig

    model, processor = stock_tiny  # no latent tokens yet: the trainer adds them
    trainer = LatentImageryTrainer(
        model, args=tiny_config(tmp_path, activation_checkpointing=True, learning_rate=1e-2),
        train_dataset=dift_records.select([0, 1]), processing_class=processor,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    spec = trainer.latent_spec
    embed = trainer.model.get_input_embeddings()
    before = embed.weight[[spec.start_id, spec.end_id]].detach().clone()
    trainer.train()
    after = embed.weight[[spec.start_id, spec.end_id]].detach()
    assert not torch.allclose(before, after)  # the new rows learn under LoRA
    assert all(entry["loss"] == entry["loss"] for entry in trainer.state.log_history if "loss" in entry)
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert any("lora_A" in n for n in trainable) and not any(".visual." in n for n in trainable)


def test_save_model_writes_a_latent_model_card(tiny, dift_records, tmp_path):
    trainer = _trainer(tiny, dift_records, tmp_path / "run", max_steps=1)
    trainer.train()
    trainer.save_model(str(tmp_path / "final"))
    card = (tmp_path / "final" / "README.md").read_text()
    assert "## Thinking with 4D imagery" in card and "| Latent size K | 4 |" in card
    assert "0.1 × CE" in card and "1.0 × mean(1 − cos" in card and "train.jsonl" in card
    assert "generate_with_latents" in card and "trained with DIFT from trl-latent" in card
    assert card.index("## Thinking with 4D imagery") < card.index("## Training procedure") < card.index("## Citations")
    assert "| learning_rate |" in card and "| train_loss |" in card  # the procedure is no longer empty


def test_an_interrupted_run_leaves_no_card_without_weights(tiny, dift_records, tmp_path):
    """A run stopped after its checkpoints: the card sits next to the checkpoint's weights, not in an output_dir
    that holds none (TRL writes it there before saving the checkpoint)."""
    from huggingface_hub import ModelCard

    trainer = _trainer(tiny, dift_records, tmp_path / "run", max_steps=1, save_strategy="steps", save_steps=1)
    trainer.train()  # ends without save_model, as a run killed after its last checkpoint
    assert not (tmp_path / "run" / "README.md").exists()
    card = ModelCard.load(tmp_path / "run" / "checkpoint-1" / "README.md")
    assert (tmp_path / "run" / "checkpoint-1" / "model.safetensors").is_file() and card.data.library_name


def test_a_video_that_fails_mid_run_is_skipped_and_counted_or_named(tiny, tmp_path):
    from dift_data import dift_record, write_jsonl
    from tiny_inputs import corrupt_middle

    from trl_latent.data import DataRecordError, load_records

    rows = [dift_record(tmp_path, 0, num_imagery=1, video=True), dift_record(tmp_path, 1, num_imagery=1),
            dift_record(tmp_path, 2, num_imagery=1)]
    corrupt_middle(tmp_path / "s0" / "clip.mp4")
    records = load_records(write_jsonl(tmp_path / "train.jsonl", rows))  # the header is fine: it loads
    overrides = dict(per_device_train_batch_size=1, max_steps=3, skip_invalid_samples=True)
    trainer = _trainer(tiny, records, tmp_path / "skip", **overrides)
    trainer.train()  # one epoch: every record once, the corrupt one at some step
    assert trainer.skipped_samples == 1
    history = trainer.state.log_history
    assert history[-1]["skipped_samples"] == 1 and "train_runtime" in history[-1]  # in the final metrics
    assert sum("loss" in entry for entry in history) == 3

    strict = _trainer(tiny, records, tmp_path / "strict", **{**overrides, "skip_invalid_samples": False})
    with pytest.raises(DataRecordError, match=r"train\.jsonl:1: field 'video': unreadable video"):
        strict.train()
