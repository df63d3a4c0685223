"""``latent_imagery: motion``: imagery images paired with the previous one as two-frame clips, in every path that
makes latent targets (the collator, the trainer's cache, the oracle diagnostics), checked against transformers' own
video processor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_config
from PIL import Image
from transformers.image_utils import OPENAI_CLIP_MEAN

from trl_latent.data import DataRecordError, VisualOptions
from trl_latent.dift import DataCollatorForLatentImagery, LatentImageryTrainer
from trl_latent.latents import compute_latent_targets, imagery_pairs, motion_pixel_values
from trl_latent.tokens import IMAGERY_KEY, get_latent_spec, set_latent_imagery


def test_imagery_pairs_stay_inside_each_record():
    assert imagery_pairs([2, 1, 3, 0, 1]) == [None, 0, None, None, 3, 4, None]


def test_motion_pairs_are_what_the_video_processor_makes_of_two_frames(family_tiny):
    """Image i's patches with the earlier half from image i-1 equal the family's video processor's patches of the clip
    [image i-1, image i], and image 0 stays the image processor's still. Both processors normalise alike, as the real
    checkpoints' do (CLIP mean/std for Qwen2-VL and Qwen2.5-VL, 0.5 for Qwen3-VL)."""
    model, processor = family_tiny
    images = [np.random.default_rng(seed).integers(0, 256, (56, 84, 3), dtype=np.uint8) for seed in range(3)]
    image_processor = processor.image_processor
    encoded = image_processor(images=[Image.fromarray(x) for x in images], return_tensors="pt")
    pixels = motion_pixel_values(encoded["pixel_values"], encoded["image_grid_thw"], [None, 0, 1],
                                 image_processor.temporal_patch_size)
    real_mean = [0.5] * 3 if model.config.model_type == "qwen3_vl" else list(OPENAI_CLIP_MEAN)
    assert list(image_processor.image_mean) == list(processor.video_processor.image_mean) == real_mean
    assert list(image_processor.image_std) == list(processor.video_processor.image_std)
    clips = processor.video_processor(videos=[np.stack(images[:2]), np.stack(images[1:])], return_tensors="pt",
                                      do_sample_frames=False)
    per_image = int(encoded["image_grid_thw"][0].prod())
    assert clips["video_grid_thw"].tolist() == encoded["image_grid_thw"][1:].tolist()
    torch.testing.assert_close(pixels[per_image:], clips["pixel_values_videos"], rtol=0, atol=1e-5)
    assert torch.equal(pixels[:per_image], encoded["pixel_values"][:per_image])
    assert not torch.equal(pixels[per_image:], encoded["pixel_values"][per_image:])


def test_motion_pairs_need_images_of_one_size(tiny):
    _, processor = tiny
    encoded = processor.image_processor(images=[Image.new("RGB", (56, 56)), Image.new("RGB", (84, 56))],
                                        return_tensors="pt")
    with pytest.raises(ValueError, match="pairs images of one size"):
        motion_pixel_values(encoded["pixel_values"], encoded["image_grid_thw"], [None, 0], 2)


def test_latent_imagery_is_recorded_absent_for_still(tiny):
    model, _ = tiny
    set_latent_imagery(model, "motion")
    assert getattr(model.config, IMAGERY_KEY) == "motion" and get_latent_spec(model).imagery == "motion"
    set_latent_imagery(model, "still")  # the release's configs have no such key
    assert not hasattr(model.config, IMAGERY_KEY) and get_latent_spec(model).imagery == "still"
    with pytest.raises(ValueError, match="latent_imagery must be one of"):
        set_latent_imagery(model, "flow")


def test_motion_dift_targets_pair_each_records_images_and_are_recorded(tiny, dift_records, tmp_path):
    """The collator pairs images only inside a record (record 0 has 2 imagery images, records 1 and 2 one each), the
    trainer's targets are the tower's features of those pairs, its cache keys name both images, and the checkpoint
    records the setting (so diagnostics and a stage-2 run read it)."""
    model, processor = tiny
    trainer = LatentImageryTrainer(model, args=tiny_config(tmp_path, latent_imagery="motion"),
                                   train_dataset=dift_records, processing_class=processor)
    assert trainer.latent_spec.imagery == "motion" and get_latent_spec(trainer.model).imagery == "motion"
    batch = trainer.data_collator(list(dift_records))
    still = processor.image_processor(
        images=[Image.open(p).convert("RGB") for r in dift_records for p in r["image_output"]],
        size={"shortest_edge": 28 * 28, "longest_edge": 56 * 56}, return_tensors="pt")
    expected = motion_pixel_values(still["pixel_values"], still["image_grid_thw"], [None, 0, None, None], 2)
    torch.testing.assert_close(batch["latent_pixel_values"], expected)
    first, second = dift_records[0]["image_output"]
    assert batch["latent_image_keys"][:2] == (str(first), f"{first} -> {second}")
    targets = trainer._latent_targets(trainer.model, batch, batch["latent_image_keys"])
    torch.testing.assert_close(targets, compute_latent_targets(trainer.model, expected, still["image_grid_thw"], 4))
    trainer.train()
    trainer.save_model(str(tmp_path / "out"))
    continued = LatentImageryTrainer(str(tmp_path / "out"), args=tiny_config(tmp_path / "stage2"),
                                     train_dataset=dift_records)
    assert continued.latent_spec.imagery == "motion"  # unset: the checkpoint's setting is kept


def test_motion_pairs_of_different_sizes_name_the_record(tiny, dift_records):
    model, processor = tiny
    record = dict(dift_records[0])
    Image.new("RGB", (112, 28)).save(record["image_output"][1])  # 4 tokens, another grid
    set_latent_imagery(model, "motion")
    collator = DataCollatorForLatentImagery(processor, get_latent_spec(model), VisualOptions(max_pixels=56 * 56),
                                            imagery_max_pixels=56 * 56)
    with pytest.raises(DataRecordError, match=r"train\.jsonl:1: field 'image_output\[1\]'.*pairs images of one size"):
        collator([record])
