import torch
from transformers import AutoProcessor

from trl_latent.testing import build_processor, corpus_tokenizer, save_tiny_checkpoint
from trl_latent.tokens import get_latent_spec

CORPUS = ["<think>I picture the red sphere at 0.0s, 1.5s: So: It moves left.</think><answer>B</answer>",
          "How does the camera move?\n\nA. Left\nB. Right\nC. Up\nD. Down"] * 4


def test_small_vocab_keeps_specials_and_round_trips_unseen_text():
    tokenizer = corpus_tokenizer(CORPUS, 400, whole_tokens=("<answer>", "</answer>"))
    assert len(tokenizer) < 450
    for marker in ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|video_pad|>", "<|image_pad|>", "</think>"):
        assert tokenizer.convert_ids_to_tokens(tokenizer(marker).input_ids) == [marker]
    unseen = "Zebra ü ∆ 7 QXJ {}"
    assert tokenizer.decode(tokenizer(unseen).input_ids) == unseen  # byte fallback: nothing is out of vocabulary
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("</think><answer>C</answer>").input_ids)
    assert tokens == ["</think>", "<answer>", "C", "</answer>"]  # the letter is a token of its own


def test_checkpoint_with_corpus_tokenizer_loads_and_runs(tmp_path):
    processor = build_processor(tokenizer=corpus_tokenizer(CORPUS, 400, whole_tokens=("<answer>", "</answer>")))
    path, spec = save_tiny_checkpoint(tmp_path / "ckpt", latent_size=2, processor=processor)
    loaded = AutoProcessor.from_pretrained(path)
    assert len(loaded.tokenizer) == len(processor.tokenizer)
    from transformers import Qwen2_5_VLForConditionalGeneration

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(path)
    assert model.config.text_config.vocab_size == len(loaded.tokenizer) and get_latent_spec(model) == spec
    ids = loaded.tokenizer("So: It moves left.", return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    assert logits.shape == (1, ids.shape[1], len(loaded.tokenizer))
