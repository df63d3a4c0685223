"""``latent_vlm``: the lmms-eval model for a local checkpoint of any family trl-latent supports (Qwen2.5-VL, Qwen2-VL,
Qwen3-VL), trl-latent's or stock; the family is read from the checkpoint's ``model_type``.

Usage: ``lmms-eval --model latent_vlm --model_args pretrained=/path/ckpt,dtype=bfloat16,max_frames=50 …`` with the
model arguments of ``latent_qwen2_5_vl``, which stays the Qwen2.5-VL-only name.
"""

from __future__ import annotations

from trl_latent.models import FAMILIES

from .latent_qwen2_5_vl import LatentQwen2_5_VL


class LatentVLM(LatentQwen2_5_VL):
    """:class:`~lmms_eval_dsr.models.latent_qwen2_5_vl.LatentQwen2_5_VL` for every supported family."""

    families = FAMILIES
