"""Swapped-imagery contrast (``latent_contrast_weight``): the row swap, the scored text, the loss by hand, training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_config
from dift_data import dift_record, write_image, write_jsonl

from trl_latent.data import DataRecordError, load_image, load_records
from trl_latent.dift import LatentImageryTrainer
from trl_latent.dift.contrast import (
    continuation_mask,
    differing_rows,
    reasoning_mask,
    reverse_within_rows,
    swap_between_rows,
)
from trl_latent.latents import compute_latent_targets, inject_latents


def test_each_row_takes_the_next_rows_imagery_cycling_and_rows_without_imagery_are_left_out():
    targets = torch.arange(6.0)[:, None, None].expand(6, 2, 3)  # image i is all i
    swapped, donors = swap_between_rows(targets, [2, 0, 1, 3])
    assert donors == [2, None, 3, 0]
    # rows hold images [0, 1], -, [2], [3, 4, 5]; each cycles through its donor's when it has more
    assert swapped[:, 0, 0].tolist() == [2, 2, 3, 0, 1, 0]
    same, none = swap_between_rows(targets[:2], [0, 2])
    assert none == [None, None] and torch.equal(same, targets[:2])


def test_reversed_negatives_reverse_each_rows_images_and_leave_single_images_out():
    targets = torch.arange(6.0)[:, None, None].expand(6, 2, 3)
    negatives, rows = reverse_within_rows(targets, [2, 0, 1, 3])
    assert negatives[:, 0, 0].tolist() == [1, 0, 2, 5, 4, 3] and rows.tolist() == [True, False, False, True]


def test_only_supervised_text_after_the_first_block_is_scored_and_equal_texts_are_not_contrasted():
    pad = 9
    input_ids = torch.tensor([[1, 2, 9, 9, 5, 6, 7], [1, 9, 9, 5, 6, 7, 0], [1, 9, 9, 5, 6, 8, 0]])
    labels = torch.tensor([[-100, -100, -100, -100, 5, 6, 7], [-100, -100, -100, 5, 6, 7, -100],
                           [-100, -100, -100, 5, 6, 8, -100]])
    mask = continuation_mask(input_ids, labels, pad)
    assert mask.tolist() == [[False, False, False, True, True, True], [False, False, True, True, True, False],
                             [False, False, True, True, True, False]]
    assert differing_rows(labels, mask, [1, 2, None]).tolist() == [False, True, False]


def test_the_reasoning_span_stops_at_the_token_that_begins_the_last_think_end():
    """Row 0's tokenizer joins the period to ``</`` (that token is dropped too), row 1 writes ``</think>`` twice (the
    last one ends the reasoning), row 2 has none (scored whole). Tokens outside the mask stay out."""
    vocab = {1: "<think>", 2: " it", 3: " moves", 4: " left", 5: ".</", 6: "think>", 7: "<answer>", 8: "A",
             9: "</answer>", 10: "</think>", 11: ".", 0: "<pad>"}
    labels = torch.tensor([[-100, 1, 2, 3, 4, 5, 6, 7, 8, 9],
                           [-100, 1, 10, 2, 3, 11, 10, 7, 8, 9],
                           [-100, 1, 2, 3, 4, 11, 7, 8, 9, -100]])
    mask = torch.ones(3, 9, dtype=torch.bool)
    mask[0, 0] = False  # not scored (before the block): stays out
    mask[2, 8] = False  # padding
    kept = reasoning_mask(mask, labels, lambda ids: "".join(vocab[i] for i in ids))
    assert kept.int().tolist() == [[0, 1, 1, 1, 0, 0, 0, 0, 0],
                                   [1, 1, 1, 1, 1, 0, 0, 0, 0],
                                   [1, 1, 1, 1, 1, 1, 1, 1, 0]]
    assert not kept[~mask].any()


def _records(tmp_path, counterfactual: bool = False):
    rows = [dift_record(tmp_path, 0, num_imagery=2, answer="A"), dift_record(tmp_path, 1, num_imagery=1, answer="C"),
            dift_record(tmp_path, 2, num_imagery=1, answer="A")]
    if counterfactual:  # rows 0 and 2 have a twin's imagery (other pictures), row 1 none
        for i in (0, 2):
            rows[i]["counterfactual_output"] = [
                str(write_image(tmp_path / f"twin{i}" / f"{k}.png", seed=5000 + 10 * i + k).relative_to(tmp_path))
                for k in range(len(rows[i]["image_output"]))]
    return load_records(write_jsonl(tmp_path / "train.jsonl", rows))


@pytest.mark.parametrize("negatives, span", [("other_row", "continuation"), ("reversed", "continuation"),
                                             ("counterfactual", "continuation"), ("counterfactual", "reasoning")])
def test_the_contrast_term_equals_a_hand_computation_with_full_logits(family_tiny, tmp_path, negatives, span):
    """Every family. The reasoning span is cut by hand where the decoded text reaches ``</think>``."""
    model, processor = family_tiny
    records = _records(tmp_path, counterfactual=negatives == "counterfactual")
    trainer = LatentImageryTrainer(model, args=tiny_config(tmp_path, per_device_train_batch_size=3, ce_weight=1.0,
                                                           latent_contrast_weight=0.5,
                                                           latent_contrast_negatives=negatives,
                                                           latent_contrast_span=span),
                                   train_dataset=records, processing_class=processor)
    model, spec = trainer.model, trainer.latent_spec
    batch = trainer.data_collator([records[0], records[1], records[2]])
    model.train()
    with_contrast = trainer.compute_loss(model, dict(batch))
    trainer.args.latent_contrast_weight = 0.0
    without = trainer.compute_loss(model, dict(batch))

    inputs = {k: v for k, v in batch.items() if not k.startswith("latent_") and k != "labels"}
    labels, ids = batch["labels"], batch["input_ids"]
    with torch.no_grad():
        targets = compute_latent_targets(model, batch["latent_pixel_values"], batch["latent_image_grid_thw"], 4)
        # rows hold images [0, 1], [2], [3]: each takes the next row's, or reverses its own (row 0 alone has two),
        # or has its twin's (rows 0 and 2; row 1 keeps its own)
        if negatives == "counterfactual":
            low, high = trainer.args.imagery_min_pixels, trainer.args.imagery_max_pixels
            twins = [load_image(path, low, high) for path in (*records[0]["counterfactual_output"],
                                                              records[1]["image_output"][0],
                                                              records[2]["counterfactual_output"][0])]
            encoded = processor.image_processor(images=twins, size={"shortest_edge": low, "longest_edge": high},
                                                return_tensors="pt")
            negative = compute_latent_targets(model, encoded["pixel_values"], encoded["image_grid_thw"], 4)
        else:
            negative = targets[[2, 2, 3, 0] if negatives == "other_row" else [1, 0, 2, 3]]
        scored = []
        for row in range(3):
            first_pad = int((ids[row] == spec.pad_id).nonzero()[0])
            steps = [t for t in range(first_pad + 1, ids.shape[1]) if labels[row, t] != -100]
            if span == "reasoning":  # keep the tokens whose text ends before "</think>" begins
                text = processor.tokenizer.decode(labels[row, steps])
                cut = text.rindex("</think>")
                steps = [t for i, t in enumerate(steps)
                         if len(processor.tokenizer.decode(labels[row, steps[: i + 1]])) <= cut]
                assert "</think>" not in processor.tokenizer.decode(labels[row, steps])
                assert "moves left" in processor.tokenizer.decode(labels[row, steps])
            scored.append(steps)
        scores = []
        for images in (targets, negative):
            with inject_latents(model, spec.pad_id, images.flatten(0, 1)):
                log_probs = model(**inputs).logits.float().log_softmax(-1)
            scores.append(torch.stack([sum(log_probs[row, t - 1, labels[row, t]] for t in scored[row])
                                       for row in range(3)]))
    rows = {"other_row": [0, 1, 2], "reversed": [0], "counterfactual": [0, 2]}[negatives]  # others left out
    expected = F.softplus(scores[1][rows] - scores[0][rows]).mean()
    assert (with_contrast - without).item() == pytest.approx(0.5 * expected.item(), rel=1e-4, abs=1e-6)
    margins = trainer._metrics["train"]["contrast_margin"]
    assert len(margins) == 1
    assert margins[0] == pytest.approx((scores[0][rows] - scores[1][rows]).mean().item(), rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("overrides, message", [
    ({"latent_contrast_weight": -1.0}, "latent_contrast_weight must be >= 0"),
    ({"latent_contrast_weight": 1.0, "latent_feedback": "self"}, "needs latent_feedback='teacher'"),
    ({"latent_contrast_weight": 1.0, "padding_free": True}, "set padding_free to false"),
    ({"latent_contrast_weight": 1.0, "per_device_train_batch_size": 1}, "per_device_train_batch_size >= 2"),
    ({"latent_contrast_negatives": "shuffled"}, "latent_contrast_negatives must be one of"),
    ({"latent_contrast_span": "answer"}, "latent_contrast_span must be one of"),
])
def test_settings_the_contrast_cannot_run_with_are_refused_by_name(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(tmp_path, **overrides)


@pytest.mark.slow
@pytest.mark.parametrize("weight", [0.0, 1.0])
def test_training_with_the_contrast_makes_the_text_depend_on_the_imagery(tiny, tmp_path, weight):
    """Two rows with different answers, one image each: with the contrast, a few steps make each row's text far
    likelier with its own imagery than with the other row's; without it, the
    margin stays near zero (the text ignores which imagery it got)."""
    model, processor = tiny
    records = load_records(write_jsonl(tmp_path / "train.jsonl", [
        dift_record(tmp_path, 0, num_imagery=1, answer="A"), dift_record(tmp_path, 1, num_imagery=1, answer="C")]))
    trainer = LatentImageryTrainer(model, args=tiny_config(
        tmp_path, max_steps=16, learning_rate=3e-3, warmup_steps=0, lr_scheduler_type="constant", ce_weight=1.0,
        latent_contrast_weight=weight), train_dataset=records, processing_class=processor)
    trainer.train()
    trainer.args.latent_contrast_weight = 1.0  # measure the margin of either model the same way
    trainer.model.eval()
    with torch.no_grad():
        trainer.compute_loss(trainer.model, dict(trainer.data_collator([records[0], records[1]])))
    margin = trainer._metrics["eval"]["contrast_margin"][-1]  # nats: 5.6 with the contrast, 0.01 without
    assert margin > 2.0 if weight else abs(margin) < 0.5


def test_the_contrast_trains_lora_with_gradient_checkpointing(stock_tiny, tmp_path):
    """Through PEFT's wrapper (the LM head read under it) and a checkpointed forward run twice per step."""
    from peft import LoraConfig

    model, processor = stock_tiny
    trainer = LatentImageryTrainer(
        model, args=tiny_config(tmp_path, activation_checkpointing=True, latent_contrast_weight=1.0, max_steps=1),
        train_dataset=_records(tmp_path).select([1, 2]), processing_class=processor,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    trainer.model.train()
    loss = trainer.compute_loss(trainer.model, dict(trainer.data_collator([trainer.train_dataset[i] for i in (0, 1)])))
    loss.backward()
    assert len(trainer._metrics["train"]["contrast_margin"]) == 1 and torch.isfinite(loss)
    grads = [p.grad for n, p in trainer.model.named_parameters() if "lora_B" in n]
    assert grads and all(g is not None for g in grads)


def test_counterfactual_imagery_must_give_every_image_a_twin_that_exists(tmp_path):
    row = dift_record(tmp_path, 0, num_imagery=2)
    assert load_records(write_jsonl(tmp_path / "plain.jsonl", [row]))[0]["counterfactual_output"] == []
    for paths, message in ((["s0/imagery0.png"], "1 images but image_output has 2"),
                           (["s0/imagery0.png", "s0/gone.png"], r"counterfactual_output\[1\].*file not found"),
                           ("s0/imagery0.png", "not a list")):
        with pytest.raises(DataRecordError, match=rf"bad\.jsonl:1.*{message}"):
            load_records(write_jsonl(tmp_path / "bad.jsonl", [{**row, "counterfactual_output": paths}]))


def test_counterfactual_negatives_need_records_that_have_them(tiny, tmp_path):
    model, processor = tiny
    with pytest.raises(ValueError, match="no training record has one"):
        LatentImageryTrainer(model, args=tiny_config(tmp_path, latent_contrast_weight=1.0,
                                                     latent_contrast_negatives="counterfactual"),
                             train_dataset=_records(tmp_path), processing_class=processor)
