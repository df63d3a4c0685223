"""The eval adapter positions video prompts with the checkpoint's mRoPE rule, installed in the model itself."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("lmms_eval")
pytest.importorskip("torchvision")

from lmms_eval_dsr.models.latent_qwen2_5_vl import LatentQwen2_5_VL  # noqa: E402
from trl_latent.models import apply_position_rule  # noqa: E402
from trl_latent.testing import save_tiny_checkpoint  # noqa: E402


def _video_positions(model) -> list[int]:
    """Time-axis ids of ``text, 4 video placeholders (4 patches at 2 s), text`` under the model's own get_rope_index."""
    config = model.config
    ids = torch.tensor([[100, *[config.video_token_id] * 4, 100]])
    types = (ids == config.video_token_id).int() * 2
    positions, _ = model.model.get_rope_index(ids, types, video_grid_thw=torch.tensor([[4, 2, 2]]),
                                              second_per_grid_ts=torch.tensor([2.0]))
    return positions[0, 0].tolist()


def test_rule_comes_from_the_checkpoint_unless_overridden(tmp_path):
    path, _ = save_tiny_checkpoint(tmp_path / "ckpt", latent_size=4)
    reference = [0, 1, 9, 17, 25, 26]  # tokens_per_second 4: the text resumes after the time span
    assert _video_positions(LatentQwen2_5_VL(str(path), device="cpu", dtype="float32").model) == reference
    evaluator = LatentQwen2_5_VL(str(path), device="cpu", dtype="float32", mrope_position_rule="upstream")
    assert _video_positions(evaluator.model) == [0, 1, 9, 17, 25, 2]

    # a checkpoint trained under the upstream rule records it, and evaluation follows
    evaluator.model.save_pretrained(tmp_path / "upstream")
    evaluator.processor.save_pretrained(tmp_path / "upstream")
    reloaded = LatentQwen2_5_VL(str(tmp_path / "upstream"), device="cpu", dtype="float32").model
    assert reloaded.config.mrope_position_rule == "upstream" and _video_positions(reloaded)[-1] == 2
    apply_position_rule(reloaded, "reference")
    assert _video_positions(reloaded) == reference
