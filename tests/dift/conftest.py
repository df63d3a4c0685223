"""DIFT fixtures: a small record set on disk and a CPU training config for the tiny model."""

from __future__ import annotations

import pytest
from dift_data import dift_record, write_jsonl

from trl_latent.data import load_records
from trl_latent.dift import LatentImageryConfig


@pytest.fixture
def dift_records(tmp_path):
    """Two frame-list samples (2 and 1 imagery images) and one video-file sample (1 imagery image)."""
    rows = [dift_record(tmp_path, 0, num_imagery=2), dift_record(tmp_path, 1, num_imagery=1),
            dift_record(tmp_path, 2, num_imagery=1, video=True)]
    return load_records(write_jsonl(tmp_path / "train.jsonl", rows))


def tiny_config(output_dir, **overrides) -> LatentImageryConfig:
    settings = dict(
        output_dir=str(output_dir), use_cpu=True, bf16=False, report_to=[], save_strategy="no", logging_steps=1,
        max_pixels=56 * 56, imagery_max_pixels=56 * 56, per_device_train_batch_size=2, max_steps=2,
        activation_checkpointing=False, dataloader_num_workers=0, disable_tqdm=True,
    )
    settings.update(overrides)
    return LatentImageryConfig(**settings)
