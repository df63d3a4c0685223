"""Small image / video inputs for the tiny model, built in memory."""

from __future__ import annotations

import numpy as np
from PIL import Image


def random_image(seed: int, size: int = 56) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))


def random_frames(seed: int, num_frames: int = 4, size: int = 56) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (num_frames, size, size, 3), dtype=np.uint8)


def image_prompts(processor, questions: list[str], seed: int = 0):
    """Left-padded chat prompts with one image each, as generation expects."""
    messages = [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q}]}] for q in questions]
    texts = [processor.apply_chat_template(m, add_generation_prompt=True) for m in messages]
    images = [random_image(seed + i) for i in range(len(questions))]
    processor.tokenizer.padding_side = "left"
    return processor(text=texts, images=images, return_tensors="pt", padding=True)


def video_prompt(processor, question: str, seed: int = 0, fps: float = 1.0):
    frames = random_frames(seed)
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    return processor(
        text=[text], videos=[frames], return_tensors="pt",
        videos_kwargs={"video_metadata": [{"fps": fps, "total_num_frames": len(frames)}]},
    )
