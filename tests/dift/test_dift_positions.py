"""DIFT trains at the positions the latent loop samples at: the model's own forward uses the installed mRoPE rule."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_config
from dift_data import dift_record, write_jsonl

from trl_latent.data import load_records
from trl_latent.dift import LatentImageryTrainer
from trl_latent.generation import rope_positions
from trl_latent.tokens import set_loss_weights


@pytest.mark.parametrize("rule", ["reference", "upstream"])
def test_dift_forward_uses_the_configured_rule_on_long_video(tiny, tmp_path, rule):
    """A 16-frame clip extracted at 0.1 fps: the positions reaching the language model are those of
    :func:`rope_positions` under the configured rule (the loop and the GRPO recompute use the same function)."""
    model, processor = tiny
    records = load_records(write_jsonl(tmp_path / "d.jsonl", [dift_record(tmp_path, 0, num_imagery=1, num_frames=16)]))
    trainer = LatentImageryTrainer(
        model, processing_class=processor, train_dataset=records,
        args=tiny_config(tmp_path / "out", frames_fps=0.1, max_frames=16, mrope_position_rule=rule),
    )
    batch = trainer.data_collator([records[0]])
    assert batch["second_per_grid_ts"].tolist() == [20.0]
    seen = {}

    def keep_positions(module, args, kwargs):
        seen.setdefault("p", kwargs["position_ids"])

    handle = trainer.model.model.language_model.register_forward_pre_hook(keep_positions, with_kwargs=True)
    try:
        with torch.no_grad():
            trainer.compute_loss(trainer.model, dict(batch))
    finally:
        handle.remove()
    expected, _ = rope_positions(trainer.model, batch["input_ids"], batch["attention_mask"], batch)
    assert trainer.model.config.mrope_position_rule == rule
    assert torch.equal(seen["p"], expected)
    after_video = (batch["mm_token_type_ids"][0] == 2).nonzero().max() + 1
    time_span = int(expected[0, 0, after_video - 1])
    assert (int(expected[0, 0, after_video]) > time_span) == (rule == "reference")


def test_loss_weights_round_trip(tiny, dift_records, tmp_path):
    """Weights recorded under the release's keys are read when the recipe leaves them unset; set ones win; both are
    written back."""
    model, processor = tiny
    set_loss_weights(model, 0.2, 0.5)
    trainer = LatentImageryTrainer(model, args=tiny_config(tmp_path / "a"), train_dataset=dift_records,
                                   processing_class=processor)
    assert (trainer.args.ce_weight, trainer.args.sim_weight) == (0.2, 0.5)
    trainer = LatentImageryTrainer(model, args=tiny_config(tmp_path / "b", ce_weight=0.3), train_dataset=dift_records,
                                   processing_class=processor)
    assert (trainer.args.ce_weight, trainer.args.sim_weight) == (0.3, 0.5)
    trainer.save_model(tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert (saved["ce_loss_weight"], saved["sim_loss_weight"]) == (0.3, 0.5)
    with pytest.raises(ValueError, match="need ce_weight, sim_weight >= 0"):
        LatentImageryTrainer(model, args=tiny_config(tmp_path / "c", ce_weight=0.0, sim_weight=0.0),
                             train_dataset=dift_records, processing_class=processor)
