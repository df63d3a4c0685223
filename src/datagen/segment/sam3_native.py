"""``sam3`` segmenter: Meta's ``sam3`` package (extra ``datagen``) with a local ``sam3.pt``; needs CUDA.

sam3 0.1.4 hard-codes CUDA in several places and its wheel lacks the BPE vocabulary, hence the required
``checkpoint`` and ``bpe_path`` (open_clip ships ``bpe_simple_vocab_16e6.txt.gz``). Image features are computed once
per frame and reused for every prompt.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .base import PerFrameDetector, SegmentConfig, register_segmenter, resolve_device


@register_segmenter("sam3")
class Sam3Segmenter(PerFrameDetector):
    def __init__(self, config: SegmentConfig):
        if not config.checkpoint or not config.bpe_path:
            raise ValueError("segment.backend='sam3' needs segment.checkpoint (sam3.pt) and segment.bpe_path")
        try:
            from sam3.model.sam3_image_processor import Sam3Processor
            from sam3.model_builder import build_sam3_image_model
        except ImportError as e:
            raise ImportError("segment.backend='sam3' needs the sam3 package: pip install 'trl-latent[datagen]'") from e
        self.config = config
        device = resolve_device(config.device)
        if device != "cuda":
            raise RuntimeError("the sam3 package only runs on CUDA; use segment.backend='hf-sam3' on CPU")
        model = build_sam3_image_model(
            bpe_path=config.bpe_path, checkpoint_path=config.checkpoint, load_from_HF=False, device=device
        )
        self.processor = Sam3Processor(model, device=device, confidence_threshold=config.score_threshold)

    def detect_frame(self, frame: Image.Image, prompts: list[str]) -> dict[str, list[tuple[np.ndarray, float]]]:
        state = self.processor.set_image(frame)
        found = {}
        for prompt in prompts:
            state = self.processor.set_text_prompt(prompt=prompt, state=state)
            masks = state["masks"].squeeze(1).cpu().numpy().astype(bool)
            found[prompt] = list(zip(masks, state["scores"].float().cpu().numpy().tolist()))
        return found
