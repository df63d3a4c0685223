"""Latent vectors: the DIFT targets pooled from imagery images, and their injection into the input embeddings.

Injection is a forward hook on the input-embedding module rather than an ``inputs_embeds`` argument because every
caller (TRL's fused-LM-head forward in SFT, GRPO's chunked log-prob passes, lmms-eval, a plain ``model(**batch)``)
already goes through ``embed_tokens(input_ids)``; the hook keeps all of them unchanged and keeps ``input_ids`` available
for the mRoPE and placeholder logic of Qwen2.5-VL.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from .models import adapter_for
from .tokens import LatentSpec, _unwrap


def vision_backbone(model: Any) -> Any:
    """The backbone under PEFT / DDP / DeepSpeed wrappers (``Qwen2_5_VLModel``: vision tower + language model)."""
    return adapter_for(model).backbone(model)


def pool_latents(features: torch.Tensor, latent_size: int) -> torch.Tensor:
    """Average ``features [N, H]`` over ``latent_size`` contiguous groups of ``N // latent_size`` rows → ``[K, H]``.

    The trailing ``N % K`` rows are dropped, as in the release, so every group has the same weight.
    """
    num_tokens = features.shape[0]
    if num_tokens < latent_size:
        raise ValueError(
            f"an imagery image gives {num_tokens} merged vision tokens, fewer than latent_size={latent_size}: "
            "raise its pixel budget or lower latent_size"
        )
    group = num_tokens // latent_size
    return features[: group * latent_size].reshape(latent_size, group, -1).mean(dim=1)


def imagery_pairs(counts: Sequence[int]) -> list[int | None]:
    """For records with ``counts[r]`` imagery images each, listed record after record: the index of every image's
    previous image in its own record (``None`` for a record's first), as :func:`motion_pixel_values` takes them."""
    previous: list[int | None] = []
    for count in counts:
        start = len(previous)
        previous += [None, *range(start, start + count - 1)][:count]
    return previous


class MotionPairError(ValueError):
    """Two images paired by :func:`motion_pixel_values` differ in size; ``index`` is the later one's."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


def motion_pixel_values(
    pixel_values: torch.Tensor, image_grid_thw: torch.Tensor, previous: list[int | None], temporal_patch_size: int,
    channels: int = 3,
) -> torch.Tensor:
    """Imagery images as motion pairs: image ``i``'s patches with their earlier frames taken from image
    ``previous[i]`` (``None``: kept, a still).

    Qwen's image processors repeat an image ``temporal_patch_size`` times so that the vision tower, built for video,
    sees a still clip; each row of ``pixel_values`` is one patch laid out ``(channels, time, patch, patch)``. Putting
    the previous key frame in the earlier half makes every latent target the tower's features of the motion between
    two moments — what it computes for two frames of a video (the video processor's layout; tested equal) — instead
    of one still image, whose features barely encode what moved (``latent_imagery: motion``).
    """
    counts = image_grid_thw.prod(-1).tolist()
    starts = [0, *torch.tensor(counts).cumsum(0).tolist()]
    out = pixel_values.clone()
    half = temporal_patch_size // 2
    for i, j in enumerate(previous):
        if j is None:
            continue
        if not torch.equal(image_grid_thw[i], image_grid_thw[j]) or int(image_grid_thw[i][0]) != 1:
            raise MotionPairError(i, f"motion imagery pairs images of one size: image {j} has grid "
                                     f"{image_grid_thw[j].tolist()}, image {i} {image_grid_thw[i].tolist()}")
        current = out[starts[i] : starts[i + 1]].view(counts[i], channels, temporal_patch_size, -1)
        earlier = pixel_values[starts[j] : starts[j + 1]].reshape_as(current)
        current[:, :, :half] = earlier[:, :, :half]
    return out


@torch.no_grad()
def compute_latent_targets(
    model: Any, pixel_values: torch.Tensor, image_grid_thw: torch.Tensor, latent_size: int
) -> torch.Tensor:
    """Encode imagery images with the frozen vision tower and pool each to ``latent_size`` vectors.

    Returns ``[num_images, latent_size, hidden]`` in the language model's dtype. No gradient reaches the tower: the
    targets are what the language model must learn to imagine, not something to move towards it.
    """
    adapter = adapter_for(model)
    tower = adapter.vision_tower(model)
    was_training = tower.training
    tower.eval()
    try:
        features = adapter.image_features(model, pixel_values, image_grid_thw)
    finally:
        tower.train(was_training)
    return torch.stack([pool_latents(per_image, latent_size) for per_image in features])


def feedback_vector(hidden: torch.Tensor, spec: LatentSpec | None, slot: torch.Tensor | int | None = None
                    ) -> torch.Tensor:
    """The latent input made from a last-layer hidden state ``hidden [..., H]``: the one place every path (inference
    loop, DIFT ``self`` mode, 4DRL rollouts; recompute re-reads what the rollout fed) turns a state into a latent.

    Without a recorded ``feedback_norm`` this is the state itself (the release). With one (a departure from the
    release, ``latent_feedback_norm: target`` in DIFT) the state keeps its direction and takes that norm, the mean
    norm of the imagery targets the model saw as teacher-forced inputs: the cosine loss trains only the direction, so
    without it a model whose states are several times the targets' norm is fed vectors unlike any it was trained on.
    With a recorded ``feedback_center`` as well (``latent_feedback_norm: centred``), the same holds for the state's
    deviation from the mean target of its latent slot (``slot``, the position in its block, 0 to K − 1, one per state
    or one for all), and that mean is added back: the centred similarity trains only that deviation's direction, and
    leaves the part every target shares unlearnt. Differentiable, so self-fed training backpropagates through it.
    """
    if spec is None or spec.feedback_norm is None:
        return hidden
    state = hidden.float()
    center = None
    if spec.feedback_center is not None:
        if slot is None:
            raise ValueError("a checkpoint with a recorded latent_feedback_center needs each fed-back state's slot")
        center = _center(spec.feedback_center, hidden.device)[slot]
        state = state - center
    state = state * (spec.feedback_norm / state.norm(dim=-1, keepdim=True).clamp(min=1e-12))
    return (state if center is None else state + center).to(hidden.dtype)


@functools.lru_cache(maxsize=8)
def _center(rows: tuple[tuple[float, ...], ...], device: torch.device) -> torch.Tensor:
    """The recorded center as a ``[K, H]`` float32 tensor on ``device``, made once per checkpoint and device."""
    return torch.tensor(rows, device=device)


class _LatentQueue:
    """Hands out the next vectors, in row-major order of the pad positions, to each embedding forward."""

    def __init__(self, pad_id: int, vectors: torch.Tensor) -> None:
        self.pad_id = pad_id
        self.vectors = vectors.reshape(-1, vectors.shape[-1])
        self.used = 0

    def hook(self, module: torch.nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        mask = args[0] == self.pad_id
        count = int(mask.sum())
        if count == 0:
            return output
        if self.used + count > self.vectors.shape[0]:
            raise ValueError(
                f"the batch has more <|latent_pad|> positions ({self.used + count} so far) than latent vectors "
                f"({self.vectors.shape[0]})"
            )
        chunk = self.vectors[self.used : self.used + count].to(device=output.device, dtype=output.dtype)
        self.used += count
        return output.masked_scatter(mask.unsqueeze(-1), chunk)


@contextmanager
def inject_latents(model: Any, pad_id: int, vectors: torch.Tensor, *, strict: bool = True) -> Iterator[_LatentQueue]:
    """Write ``vectors`` at every ``input_ids == pad_id`` position of each forward run inside the block.

    ``vectors`` is ``[N, H]`` (or any shape ending in ``H``), consumed in row-major order across forwards, so TRL's
    chunked passes over a batch consume them in order too. With ``strict`` the block raises if some vectors were left
    unused: a placeholder/vector mismatch is a data bug, never something to paper over.
    """
    queue = _LatentQueue(pad_id, vectors)
    handle = _unwrap(model).get_input_embeddings().register_forward_hook(queue.hook)
    try:
        yield queue
    finally:
        handle.remove()
    if strict and queue.used != queue.vectors.shape[0]:
        raise ValueError(
            f"{queue.vectors.shape[0]} latent vectors were given but the forwards had {queue.used} "
            "<|latent_pad|> positions"
        )
