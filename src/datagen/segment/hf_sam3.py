"""``hf-sam3`` segmenter: transformers' own SAM3 classes from a local checkpoint (CPU or GPU).

SAM3 detects every instance of a text concept per frame; detections are linked over time by mask IoU
(:class:`PerFrameDetector`). This runs the image model (``Sam3Model``) rather than ``Sam3VideoModel``: the video
session needs torchvision's video processor and a full tracker checkpoint, while per-frame detection works with any
Sam3 checkpoint, including the tiny random ones the tests build.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .base import PerFrameDetector, SegmentConfig, register_segmenter, resolve_device


@register_segmenter("hf-sam3")
class HFSam3Segmenter(PerFrameDetector):
    def __init__(self, config: SegmentConfig):
        if not config.checkpoint:
            raise ValueError("segment.backend='hf-sam3' needs segment.checkpoint (a local folder, no hub download)")
        import torch
        from transformers import Sam3Model, Sam3Processor

        self.config = config
        self.device = resolve_device(config.device)
        self.model = Sam3Model.from_pretrained(config.checkpoint, local_files_only=True).to(self.device).eval()
        self.processor = Sam3Processor.from_pretrained(config.checkpoint, local_files_only=True)
        self._torch = torch

    def detect_frame(self, frame: Image.Image, prompts: list[str]) -> dict[str, list[tuple[np.ndarray, float]]]:
        width, height = frame.size
        found = {}
        for prompt in prompts:
            inputs = self.processor(images=[frame], text=[prompt], return_tensors="pt").to(self.device)
            with self._torch.inference_mode():
                outputs = self.model(**inputs)
            result = self.processor.post_process_instance_segmentation(
                outputs,
                threshold=self.config.score_threshold,
                mask_threshold=self.config.mask_threshold,
                target_sizes=[(height, width)],
            )[0]
            masks = result["masks"].cpu().numpy().astype(bool)
            found[prompt] = list(zip(masks, result["scores"].float().cpu().numpy().tolist()))
        return found
