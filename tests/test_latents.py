import pytest
import torch
from transformers import Qwen2VLImageProcessor

from tiny_inputs import image_prompts, random_image
from trl_latent.latents import compute_latent_targets, inject_latents, pool_latents
from trl_latent.tokens import get_latent_spec


def test_pool_latents_by_hand():
    features = torch.arange(14, dtype=torch.float32).reshape(7, 2)  # 7 tokens, K=3 → groups of 2, last row dropped
    pooled = pool_latents(features, 3)
    expected = torch.tensor([[1.0, 2.0], [5.0, 6.0], [9.0, 10.0]])
    torch.testing.assert_close(pooled, expected)
    with pytest.raises(ValueError, match="fewer than latent_size=8"):
        pool_latents(features, 8)


def test_compute_latent_targets_matches_vision_tower(tiny):
    model, processor = tiny
    spec = get_latent_spec(model)
    image_processor = Qwen2VLImageProcessor(min_pixels=28 * 28, max_pixels=84 * 84)
    images = image_processor(images=[random_image(1, size=56), random_image(2, size=84)], return_tensors="pt")
    model.model.visual.train()
    targets = compute_latent_targets(model, images["pixel_values"], images["image_grid_thw"], spec.latent_size)
    assert model.model.visual.training  # mode restored
    assert targets.shape == (2, 4, model.config.text_config.hidden_size)
    assert not targets.requires_grad

    model.eval()
    merged = model.model.visual(images["pixel_values"], grid_thw=images["image_grid_thw"]).pooler_output
    sizes = (images["image_grid_thw"].prod(-1) // 4).tolist()
    assert sizes == [4, 9]
    second = merged[sizes[0]:]
    torch.testing.assert_close(targets[1, 0], second[0:2].mean(0))  # 9 tokens → 4 groups of 2, one dropped
    torch.testing.assert_close(targets[0], merged[: sizes[0]])  # 4 tokens → groups of 1


def test_inject_latents_writes_vectors_at_pads(tiny):
    model, _ = tiny
    spec = get_latent_spec(model)
    ids = torch.tensor([[1, spec.start_id, spec.pad_id, spec.pad_id, spec.end_id], [spec.pad_id, 2, 3, spec.pad_id, 4]])
    vectors = torch.randn(4, model.config.text_config.hidden_size)
    embed = model.get_input_embeddings()
    with inject_latents(model, spec.pad_id, vectors) as queue:
        out = embed(ids)
    assert queue.used == 4
    torch.testing.assert_close(out[0, 2], vectors[0])
    torch.testing.assert_close(out[0, 3], vectors[1])
    torch.testing.assert_close(out[1, 0], vectors[2])
    torch.testing.assert_close(out[1, 3], vectors[3])
    torch.testing.assert_close(out[0, 1], embed.weight[spec.start_id])
    assert not embed._forward_hooks  # removed


def test_inject_latents_count_mismatch(tiny):
    model, _ = tiny
    spec = get_latent_spec(model)
    ids = torch.tensor([[spec.pad_id, spec.pad_id]])
    hidden = model.config.text_config.hidden_size
    with pytest.raises(ValueError, match="more <\\|latent_pad\\|> positions"):
        with inject_latents(model, spec.pad_id, torch.zeros(1, hidden)):
            model.get_input_embeddings()(ids)
    with pytest.raises(ValueError, match="3 latent vectors were given but the forwards had 2"):
        with inject_latents(model, spec.pad_id, torch.zeros(3, hidden)):
            model.get_input_embeddings()(ids)


def test_injected_forward_uses_vectors(tiny):
    """The full model forward (vision + mRoPE path) sees the injected vectors, not the pad embedding."""
    model, processor = tiny
    spec = get_latent_spec(model)
    batch = image_prompts(processor, ["q"])
    block = torch.tensor([[spec.start_id] + [spec.pad_id] * 4 + [spec.end_id]])
    ids = torch.cat([batch["input_ids"], block], dim=1)
    inputs = dict(batch, input_ids=ids, attention_mask=torch.ones_like(ids),
                  mm_token_type_ids=torch.cat([batch["mm_token_type_ids"], torch.zeros_like(block)], 1))
    plain = model(**inputs).logits
    with inject_latents(model, spec.pad_id, torch.randn(4, model.config.text_config.hidden_size)):
        injected = model(**inputs).logits
    n = batch["input_ids"].shape[1]
    torch.testing.assert_close(plain[:, : n + 1], injected[:, : n + 1])
    assert (plain[:, n + 1 :] - injected[:, n + 1 :]).abs().max() > 1e-3
