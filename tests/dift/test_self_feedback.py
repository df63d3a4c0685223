"""latent_feedback='self': the training forward is the inference loop teacher-forced on the same text, and its
gradient runs through the fed-back hidden states."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_config
from dift_data import dift_record, write_jsonl
from transformers import LogitsProcessor, LogitsProcessorList

from trl_latent.data import load_records
from trl_latent.dift import LatentImageryConfig, LatentImageryTrainer, feed_back_latents
from trl_latent.generation import generate_with_latents

LATENT_KEYS = ("latent_pixel_values", "latent_image_grid_thw")


class ForceText(LogitsProcessor):
    """Make every step pick the next token of a fixed completion (latent steps ignore the choice anyway)."""

    def __init__(self, completion: torch.Tensor, prompt_length: int) -> None:
        self.completion, self.prompt_length = completion, prompt_length

    def __call__(self, input_ids, scores):
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.completion[input_ids.shape[1] - self.prompt_length]] = 0.0
        return forced


@pytest.fixture
def records(tmp_path):
    """An image prompt with two imagery blocks and a short (4-frame) video prompt with one, of different lengths."""
    image = dift_record(tmp_path, 0, num_imagery=2, num_frames=1)
    image["image_input"] = image["image_input"][0]  # a path, not a list of frames: an image prompt
    rows = [image, dift_record(tmp_path, 1, num_imagery=1)]
    return load_records(write_jsonl(tmp_path / "train.jsonl", rows))


def self_fed_trainer(tiny, records, tmp_path, **overrides):
    model, processor = tiny
    args = tiny_config(tmp_path, latent_feedback="self", **overrides)
    return LatentImageryTrainer(model, args=args, train_dataset=records, processing_class=processor)


def test_self_mode_needs_gradient_checkpointing_off(tmp_path):
    with pytest.raises(ValueError, match="gradient checkpointing"):
        LatentImageryConfig(str(tmp_path), latent_feedback="self", activation_checkpointing=True, use_cpu=True)
    with pytest.raises(ValueError, match="latent_feedback must be one of"):
        LatentImageryConfig(str(tmp_path), latent_feedback="teacher-forced", use_cpu=True)


@pytest.mark.parametrize("feedback_norm", [None, "target", "centred"])
def test_training_forward_equals_the_inference_loop_teacher_forced(family_tiny, records, tmp_path, feedback_norm):
    """Every family (self mode), with the release's feedback and calibrated (about the origin or the mean target)."""
    trainer = self_fed_trainer(family_tiny, records, tmp_path, latent_feedback_norm=feedback_norm)
    center = trainer.measure_target_mean() if feedback_norm == "centred" else 0
    if feedback_norm:  # calibrated: the loop and training both rescale to the recorded norm
        assert trainer.latent_spec.feedback_norm == pytest.approx(
            trainer.measure_target_norm(center=None if feedback_norm == "target" else center))
    if feedback_norm == "centred":
        torch.testing.assert_close(torch.tensor(trainer.latent_spec.feedback_center), center)
    model, spec = trainer.model, trainer.latent_spec
    batch = trainer.data_collator([records[0], records[1]])  # right-padded, rows of different lengths
    assert batch["input_ids"].shape[0] == 2 and not bool(batch["attention_mask"].all())
    assert "pixel_values" in batch and "pixel_values_videos" in batch
    model.eval()
    captured = []  # the hidden states of the loss forward itself (TRL's fused head returns no logits)
    handle = model.model.register_forward_hook(lambda module, args, out: captured.append(out.last_hidden_state))
    try:
        with torch.no_grad():
            trainer.compute_loss(model, dict(batch))
    finally:
        handle.remove()
    logits = model.lm_head(captured[0])
    with torch.no_grad(), feed_back_latents(model, batch["input_ids"] == spec.pad_id) as fed_back:
        plain = model(**{k: v for k, v in batch.items() if k not in LATENT_KEYS and k != "labels"}).logits
    torch.testing.assert_close(plain, logits)  # the context alone gives the same forward as compute_loss
    fed_back = torch.cat(fed_back)  # in order of the pad columns: compared as sets of rows below

    compared_blocks = 0
    for row, record in enumerate([records[0], records[1]]):
        single = trainer.data_collator([record])  # the row alone, with its own pixels
        ids, labels = single["input_ids"][0], single["labels"][0]
        answer = int((labels != -100).nonzero()[0])
        prompt, completion = ids[None, :answer], ids[answer:]
        multimodal = {k: v for k, v in single.items()
                      if k in ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw",
                               "second_per_grid_ts")}
        out = generate_with_latents(
            model, prompt, torch.ones_like(prompt), max_new_tokens=len(completion), eos_token_id=[],
            logits_processor=LogitsProcessorList([ForceText(completion, answer)]), output_logits=True, **multimodal,
        )
        assert torch.equal(out.completion_ids[0], completion)  # the loop ran the same latent blocks
        length = len(ids)
        torch.testing.assert_close(logits[row, answer - 1 : length - 1], out.logits[0], atol=1e-4, rtol=0)
        loop_vectors = out.latent_embeds[0][out.latent_mask[0]]
        for vector in loop_vectors:  # each fed-back vector of the loop was fed back in training too
            assert (fed_back - vector).abs().amax(-1).min() <= 1e-4
        if feedback_norm:  # the i-th vector of a row sits in slot i mod K: its deviation from that slot's mean
            slots = torch.arange(len(loop_vectors)) % spec.latent_size
            deviation = loop_vectors - (center[slots] if feedback_norm == "centred" else 0)
            torch.testing.assert_close(deviation.norm(dim=-1), torch.full((len(loop_vectors),),
                                       trainer.latent_spec.feedback_norm), atol=1e-4, rtol=1e-4)
        compared_blocks += int(out.num_latent_blocks[0])
    assert compared_blocks == 3 and fed_back.shape[0] == 3 * spec.latent_size


def test_gradient_flows_through_the_fed_back_states(tiny, records, tmp_path):
    trainer = self_fed_trainer(tiny, records, tmp_path)
    model, spec = trainer.model, trainer.latent_spec
    batch = trainer.data_collator([records[0]])
    inputs = {k: v for k, v in batch.items() if k not in LATENT_KEYS and k != "labels"}
    model.train()
    pads = (batch["input_ids"][0] == spec.pad_id).nonzero().flatten()
    with feed_back_latents(model, batch["input_ids"] == spec.pad_id) as fed_back:
        logits = model(**inputs).logits
    assert len(fed_back) == 2 * spec.latent_size and all(v.requires_grad for v in fed_back)
    after = logits[0, int(pads[0]) :].float().square().mean()  # the pads and everything after them
    grads = torch.autograd.grad(after, fed_back, retain_graph=True)
    assert all(float(g.abs().sum()) > 0 for g in grads)
    # negative control: positions before the first pad cannot depend on anything fed back (causal attention)
    before = logits[0, : int(pads[0])].float().square().mean()
    grads = torch.autograd.grad(before, fed_back, allow_unused=True)
    assert all(g is None or float(g.abs().sum()) == 0 for g in grads)


def test_both_modes_train_and_log_the_norm_ratio(tiny, records, tmp_path):
    """The training loss gives the weights a gradient in self mode, not the teacher-forced one, and both log
    ||h[t-1]|| / ||target||."""
    trainer = self_fed_trainer(tiny, records, tmp_path, ce_weight=1.0)
    model = trainer.model
    model.train()
    batch = trainer.data_collator([records[0], records[1]])
    weight = model.model.language_model.layers[0].mlp.up_proj.weight

    def gradient(feedback: str) -> torch.Tensor:
        trainer.args.latent_feedback = feedback
        model.zero_grad()
        trainer.compute_loss(model, dict(batch)).backward()
        return weight.grad.clone()

    self_grad, teacher_grad = gradient("self"), gradient("teacher")
    assert float(self_grad.abs().sum()) > 0 and not torch.allclose(self_grad, teacher_grad)
    metrics = trainer._metrics["train"]
    assert len(metrics["latent_norm_ratio"]) == 2 and all(r > 0 for r in metrics["latent_norm_ratio"])


@pytest.mark.slow
def test_self_mode_trains_with_lora_and_gradient_accumulation(stock_tiny, records, tmp_path):
    from peft import LoraConfig

    model, processor = stock_tiny
    trainer = LatentImageryTrainer(
        model, args=tiny_config(tmp_path, latent_feedback="self", per_device_train_batch_size=1,
                                gradient_accumulation_steps=2, learning_rate=1e-2),
        train_dataset=records, processing_class=processor,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    lora = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_B" in n}
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "sim_loss" in entry]
    assert len(logs) == 2 and all(entry["num_imagery"] == 1.5 for entry in logs)  # micro-batches of 2 and 1 images
    assert all(entry["loss"] == entry["loss"] and entry["latent_norm_ratio"] > 0 for entry in logs)
    moved = [n for n, p in trainer.model.named_parameters() if n in lora and not torch.equal(p, lora[n])]
    assert moved and "self-fed" in trainer.latent_card_details()["Method"]


def test_target_feedback_norm_is_measured_recorded_and_saved(tiny, records, tmp_path):
    """``latent_feedback_norm='target'`` records the imagery targets' mean norm in the config (saved with the model,
    read back by every generation path); ``'none'`` removes it again (the release); unset keeps the checkpoint's."""
    from trl_latent.latents import compute_latent_targets
    from trl_latent.tokens import get_latent_spec

    model, processor = tiny
    trainer = LatentImageryTrainer(model, args=tiny_config(tmp_path, latent_feedback_norm="target"),
                                   train_dataset=records, processing_class=processor)
    batch = trainer.data_collator([records[0], records[1]])
    targets = compute_latent_targets(model, batch["latent_pixel_values"], batch["latent_image_grid_thw"],
                                     trainer.latent_spec.latent_size)
    expected = float(targets.float().norm(dim=-1).mean())
    assert model.config.latent_feedback_norm == pytest.approx(expected, rel=1e-5)
    trainer.save_model(str(tmp_path / "saved"))
    from transformers import AutoConfig

    assert get_latent_spec(AutoConfig.from_pretrained(tmp_path / "saved")).feedback_norm == pytest.approx(expected, rel=1e-5)
    kept = LatentImageryTrainer(model, args=tiny_config(tmp_path), train_dataset=records, processing_class=processor)
    assert kept.latent_spec.feedback_norm == pytest.approx(expected, rel=1e-5)  # stage 2 keeps stage 1's calibration
    LatentImageryTrainer(model, args=tiny_config(tmp_path, latent_feedback_norm="none"), train_dataset=records,
                         processing_class=processor)
    assert get_latent_spec(model).feedback_norm is None and not hasattr(model.config, "latent_feedback_norm")
    with pytest.raises(ValueError, match="latent_feedback_norm must be one of"):
        tiny_config(tmp_path, latent_feedback_norm="mean")


def test_centred_feedback_records_the_mean_target_and_the_norm_about_it(tiny, records, tmp_path):
    """``latent_feedback_norm='centred'``: each slot's mean target over the sampled records (by hand) and the mean norm
    of the targets minus it, saved with the model and read back; ``'none'`` removes both (a center alone is refused)."""
    from transformers import AutoConfig

    from trl_latent.latents import compute_latent_targets
    from trl_latent.tokens import LatentSpec, get_latent_spec

    model, processor = tiny
    trainer = LatentImageryTrainer(model, args=tiny_config(tmp_path, latent_feedback_norm="centred"),
                                   train_dataset=records, processing_class=processor)
    batch = trainer.data_collator([records[0], records[1]])
    targets = compute_latent_targets(model, batch["latent_pixel_values"], batch["latent_image_grid_thw"],
                                     trainer.latent_spec.latent_size).float()  # [3 images, K, H]
    center = targets.mean(0)
    expected = float((targets - center).norm(dim=-1).mean())
    assert expected < 0.9 * float(targets.norm(dim=-1).mean())  # not the target norm: the center is taken out
    trainer.save_model(str(tmp_path / "saved"))
    spec = get_latent_spec(AutoConfig.from_pretrained(tmp_path / "saved"))
    assert spec.feedback_norm == pytest.approx(expected, rel=1e-5)
    torch.testing.assert_close(torch.tensor(spec.feedback_center), center, atol=1e-5, rtol=1e-5)
    LatentImageryTrainer(model, args=tiny_config(tmp_path, latent_feedback_norm="none"), train_dataset=records,
                         processing_class=processor)
    assert not hasattr(model.config, "latent_feedback_norm") and not hasattr(model.config, "latent_feedback_center")
    with pytest.raises(ValueError, match="latent_feedback_center needs latent_feedback_norm"):
        LatentSpec(latent_size=1, start_id=1, pad_id=2, end_id=3, feedback_center=((0.0,),))


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_lockstep_rounds_equal_rows_one_by_one(tiny, records, tmp_path, attention):
    """Rows whose pads sit in different columns advance together, one language-model pass per latent position (not
    one per pad column of the batch), and give each row's own logits and gradients, as when it runs alone."""
    trainer = self_fed_trainer(tiny, records, tmp_path)
    model, spec = trainer.model, trainer.latent_spec
    model.set_attn_implementation(attention)
    model.train()
    weight = model.model.language_model.layers[0].mlp.up_proj.weight
    layer = model.model.language_model.layers[0]

    def run(batch):
        """Per-row scores (mean square of the row's real logits), their gradient, and the language-model passes."""
        inputs = {k: v for k, v in batch.items() if k not in LATENT_KEYS and k != "labels"}
        passes = []
        handle = layer.register_forward_pre_hook(lambda module, args: passes.append(1))
        try:
            with feed_back_latents(model, batch["input_ids"] == spec.pad_id):
                logits = model(**inputs).logits
        finally:
            handle.remove()
        mask = batch["attention_mask"].bool()
        scores = torch.stack([logits[row][mask[row]].float().square().mean() for row in range(len(logits))])
        model.zero_grad()
        scores.sum().backward()
        return scores.detach(), weight.grad.clone(), len(passes), logits.detach()

    batch = trainer.data_collator([records[0], records[1]])
    pads = batch["input_ids"] == spec.pad_id
    columns = pads.any(0).sum()
    assert columns > pads.sum(1).max()  # the rows' pads are in different columns
    scores, grad, passes, logits = run(batch)
    assert passes == int(pads.sum(1).max()) + 1  # one pass per latent position of the longest row, plus the first
    total = torch.zeros_like(grad)
    for row, record in enumerate([records[0], records[1]]):
        single = trainer.data_collator([record])
        alone, alone_grad, _, alone_logits = run(single)
        length = single["input_ids"].shape[1]
        torch.testing.assert_close(logits[row, :length], alone_logits[0], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(scores[row], alone[0], atol=1e-6, rtol=1e-5)
        total += alone_grad
    torch.testing.assert_close(grad, total, atol=1e-6, rtol=1e-4)
