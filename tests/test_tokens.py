import copy

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

from trl_latent.tokens import (
    LATENT_END,
    LATENT_PAD,
    LATENT_START,
    LatentSpec,
    add_latent_tokens,
    count_output_images,
    expand_output_images,
    get_latent_spec,
    latent_blocks_well_formed,
)


def test_add_latent_tokens_resizes_and_initialises_to_mean(stock_tiny):
    model, processor = stock_tiny
    old_rows = model.get_input_embeddings().weight.shape[0]
    old_mean = model.get_input_embeddings().weight[:old_rows].mean(0).clone()
    spec = add_latent_tokens(model, processor, latent_size=3)

    assert processor.tokenizer.convert_tokens_to_ids([LATENT_START, LATENT_PAD, LATENT_END]) == list(spec.special_ids)
    weight = model.get_input_embeddings().weight
    assert weight.shape[0] == old_rows + 3 == len(processor.tokenizer)
    assert model.config.text_config.vocab_size == old_rows + 3
    for token_id in spec.special_ids:
        torch.testing.assert_close(weight[token_id], old_mean)
    # tied head follows the embeddings
    assert model.get_output_embeddings().weight.data_ptr() == weight.data_ptr()
    assert (model.config.latent_size, model.config.latent_token_id) == (3, spec.pad_id)
    assert (model.config.latent_start_id, model.config.latent_end_id) == (spec.start_id, spec.end_id)


def test_add_latent_tokens_is_idempotent_and_checks_size(tiny):
    model, processor = tiny
    spec = get_latent_spec(model)
    rows = model.get_input_embeddings().weight.shape[0]
    assert add_latent_tokens(model, processor, latent_size=4) == spec
    assert model.get_input_embeddings().weight.shape[0] == rows
    with pytest.raises(ValueError, match="latent_size=4"):
        add_latent_tokens(model, processor, latent_size=8)


def test_new_rows_reset_when_vocab_is_padded(processor_session):
    """Qwen checkpoints have more embedding rows than tokens: the new ids reuse untrained rows, which are reset."""
    from trl_latent.testing import build_tiny_qwen2_5_vl

    model, processor = build_tiny_qwen2_5_vl(latent_size=None, processor=copy.deepcopy(processor_session))
    model.resize_token_embeddings(len(processor.tokenizer) + 16)
    rows = model.get_input_embeddings().weight.shape[0]
    with torch.no_grad():
        model.get_input_embeddings().weight[len(processor.tokenizer):] = 100.0
    spec = add_latent_tokens(model, processor)
    weight = model.get_input_embeddings().weight
    assert weight.shape[0] == rows  # no resize needed
    assert weight[spec.pad_id].abs().max() < 1.0


def test_save_pretrained_round_trip(tiny, tmp_path):
    model, processor = tiny
    spec = get_latent_spec(model)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)

    loaded = Qwen2_5_VLForConditionalGeneration.from_pretrained(tmp_path)
    loaded_processor = AutoProcessor.from_pretrained(tmp_path)
    assert get_latent_spec(loaded) == spec
    assert loaded_processor.tokenizer.convert_tokens_to_ids(LATENT_PAD) == spec.pad_id
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        torch.testing.assert_close(a, b, msg=name)
    text = "a" + spec.block_text + "b"
    assert loaded_processor.tokenizer(text).input_ids == processor.tokenizer(text).input_ids


def test_peft_wrapped_model(stock_tiny):
    model, processor = stock_tiny
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    spec = add_latent_tokens(peft_model, processor, latent_size=2)
    assert get_latent_spec(peft_model) == spec
    assert peft_model.get_base_model().get_input_embeddings().weight.shape[0] == len(processor.tokenizer)
    ids = torch.tensor([[spec.start_id, spec.pad_id, spec.pad_id, spec.end_id]])
    assert peft_model(input_ids=ids).logits.shape == (1, 4, len(processor.tokenizer))


def test_released_checkpoint_keys_are_read():
    config = type("Cfg", (), {"to_dict": lambda self: {}})()
    config.latent_size, config.latent_token_id, config.latent_start_id, config.latent_end_id = 4, 11, 10, 12
    config.compress_strategy = "average"
    assert get_latent_spec(config) == LatentSpec(4, 10, 11, 12, "average")
    config.latent_end_id = None
    with pytest.raises(ValueError, match="latent_end_id"):
        get_latent_spec(config)


def test_stock_model_has_no_spec(stock_tiny):
    assert get_latent_spec(stock_tiny[0]) is None


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(latent_size=0), "latent_size"), (dict(pad_id=1), "distinct"), (dict(compress_strategy="max"), "compress")],
)
def test_spec_validation(kwargs, message):
    args = dict(latent_size=4, start_id=1, pad_id=2, end_id=3) | kwargs
    with pytest.raises(ValueError, match=message):
        LatentSpec(**args)


def test_expand_and_well_formed():
    spec = LatentSpec(2, 10, 11, 12)
    text = "<think>look <output_image><output_image> done</think>"
    assert count_output_images(text) == 2
    assert expand_output_images(text, spec).count(LATENT_PAD) == 4
    good = torch.tensor([5, 10, 11, 11, 12, 6, 10, 11, 11, 12])
    assert latent_blocks_well_formed(good, spec)
    for bad in ([10, 11, 12], [10, 11, 11, 11, 12], [11], [12], [10, 11, 11]):
        assert not latent_blocks_well_formed(torch.tensor(bad), spec), bad
