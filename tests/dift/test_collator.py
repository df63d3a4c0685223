"""DataCollatorForLatentImagery: shapes, label masks, imagery keys, errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from tiny_inputs import corrupt_middle

from trl_latent.data import DataRecordError, VisualOptions
from trl_latent.dift import DataCollatorForLatentImagery
from trl_latent.tokens import get_latent_spec


@pytest.fixture
def collator(tiny):
    model, processor = tiny
    return DataCollatorForLatentImagery(processor, get_latent_spec(model), VisualOptions(max_pixels=56 * 56),
                                        imagery_max_pixels=56 * 56)


def test_batch_keys_and_shapes(collator, dift_records):
    batch = collator([dift_records[0], dift_records[2]])  # frame list (4 frames) + video file (8 frames at 4 fps)
    rows, length = batch["input_ids"].shape
    assert rows == 2 and batch["labels"].shape == batch["attention_mask"].shape == (rows, length)
    # both users visuals are videos: 4 frames at 1 fps -> t=2, 2 s of video at 1 fps -> t=1; 56x56 -> 4x4 patches
    assert batch["video_grid_thw"].tolist() == [[2, 4, 4], [1, 4, 4]]
    assert batch["second_per_grid_ts"].tolist() == [2.0, 2.0]  # temporal patch 2 / 1 fps: real time, not 24 fps
    assert "pixel_values" not in batch
    assert batch["latent_image_grid_thw"].tolist() == [[1, 4, 4]] * 3  # 2 + 1 imagery images
    assert batch["latent_pixel_values"].shape[0] == 3 * 16
    assert ((batch["mm_token_type_ids"] == 2).sum(-1) == torch.tensor([8, 4])).all()


def test_label_mask(collator, dift_records, tiny):
    _, processor = tiny
    spec = collator.spec
    batch = collator([dift_records[0], dift_records[1]])
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    header = processor.tokenizer("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    for row in range(2):
        tokens = ids[row].tolist()
        start = max(i for i in range(len(tokens)) if tokens[i : i + len(header)] == header) + len(header)
        assert (labels[row, :start] == -100).all()  # system + user + video + header
        answer = slice(start, int(mask[row].sum()))
        pads = ids[row, answer] == spec.pad_id
        assert (labels[row, answer][pads] == -100).all()
        assert (labels[row, answer][~pads] == ids[row, answer][~pads]).all()  # text, start, end, <|im_end|>
        assert (labels[row, int(mask[row].sum()):] == -100).all()  # right padding
    assert int((ids == spec.start_id).sum()) == int((labels == spec.start_id).sum()) == 3
    assert int((labels == spec.end_id).sum()) == 3
    assert int((ids == spec.pad_id).sum()) == 3 * spec.latent_size
    text = processor.tokenizer.decode(labels[1][labels[1] != -100])
    assert text.startswith("<think> Look: <|latent_start|><|latent_end|>") and text.endswith("<answer>B</answer><|im_end|>\n")


def test_single_image_input_uses_image_keys(collator, dift_records):
    record = dict(dift_records[0])
    record["image"], record["frames"] = record["frames"][0], []
    batch = collator([record])
    assert batch["image_grid_thw"].tolist() == [[1, 4, 4]] and "pixel_values_videos" not in batch


def test_too_long_and_too_small_imagery_are_errors_naming_the_record(collator, dift_records):
    collator.max_length = 20
    with pytest.raises(DataRecordError, match=r"train\.jsonl:1: field '<sequence>': \d+ tokens exceed max_length=20"):
        collator([dift_records[0]])
    collator.max_length = None
    collator.imagery_max_pixels = 28 * 28 * 2  # a square image fits 28x28: one merged token < K = 4
    with pytest.raises(DataRecordError, match=r"train\.jsonl:1: field 'image_output\[0\]': gives 1 vision tokens"):
        collator([dift_records[0]])


def test_media_broken_after_loading_is_reported_at_collate_time(collator, dift_records):
    with open(dift_records[2]["video"], "wb") as handle:
        handle.write(b"garbage")
    with pytest.raises(DataRecordError, match=r"train\.jsonl:3: field 'video': unreadable video"):
        collator([dift_records[2]])


def test_undecodable_video_is_an_error_naming_the_record_or_a_counted_skip(collator, dift_records, caplog):
    corrupt_middle(Path(dift_records[2]["video"]))
    with pytest.raises(DataRecordError, match=r"train\.jsonl:3: field 'video': unreadable video .*skip_invalid_samples"):
        collator([dift_records[0], dift_records[2]])

    collator.skip_invalid = True
    with caplog.at_level(logging.WARNING, logger="trl_latent.skipping"):
        batch = collator([dift_records[0], dift_records[2]])
    assert batch["input_ids"].shape[0] == 1 and batch["num_skipped"].item() == 1  # the bad row is dropped
    assert batch["latent_image_grid_thw"].shape[0] == 2  # only the good row's two imagery images
    assert "train.jsonl:3" in caplog.text
    # a batch with nothing decodable gets the last good sample in its place, still counted as one skip
    alone = collator([dift_records[2]])
    assert alone["input_ids"].shape[0] == 1 and alone["num_skipped"].item() == 1
    assert torch.equal(alone["input_ids"], batch["input_ids"])
    # ... and before any sample decoded, the first record of spare_records that decodes
    fresh = DataCollatorForLatentImagery(collator.processor, collator.spec, collator.visual, imagery_max_pixels=56 * 56,
                                         skip_invalid=True, spare_records=dift_records)
    first = fresh([dift_records[2]])
    assert first["num_skipped"].item() == 1 and torch.equal(first["input_ids"], fresh([dift_records[0]])["input_ids"])
