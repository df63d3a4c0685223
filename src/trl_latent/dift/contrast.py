"""Imagery contrast: a DIFT loss that makes the text after a latent block depend on the block's content.

Teacher forcing alone lets a model ignore its imagery: the answer can be read straight from the video, and the
project's swapped-latent diagnostics found DIFT models that answer the same with another question's latents. This
loss (a departure from the release, ``latent_contrast_weight`` in :class:`LatentImageryConfig`) runs each batch a
second time with every row's imagery targets replaced by negatives, and asks that the row's own continuation after
its first block be more likely with its own imagery than with the negatives:
``softplus(log p(text | negative imagery) - log p(text | own imagery))``. The negatives
(``latent_contrast_negatives``) are another row's imagery (``other_row``; rows whose continuation equals the other
row's are left out, both imageries rightly giving the same text), the row's own images in reverse order
(``reversed``: the same scene and objects, so only the order of what happens differs; rows with one image are left
out) or, from the data, the same question's imagery in a counterfactual twin of the clip (``counterfactual``: the
same frames up to a cut and another future after it, so only what the imagery says about the unseen part differs;
the collator encodes them and the trainer takes their targets). ``latent_contrast_span="reasoning"`` scores only the
text up to ``</think>`` (:func:`reasoning_mask`), leaving the answer to the text loss.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

REASONING_END = "</think>"


def swap_between_rows(targets: torch.Tensor, images_per_row: list[int]) -> tuple[torch.Tensor, list[int | None]]:
    """Each row's imagery replaced by the next row's that has imagery: ``(swapped [N, K, H], donor of each row)``.

    ``targets`` are in row-major order of the pad blocks; a row with ``n`` images takes its donor's first ``n``
    (cycling when the donor has fewer), so every pad keeps its count. The donor is ``None`` for a row without imagery,
    and for every row when fewer than two rows have imagery (then nothing is swapped).
    """
    rows = [b for b, count in enumerate(images_per_row) if count]
    donors: list[int | None] = [None] * len(images_per_row)
    if len(rows) < 2:
        return targets, donors
    starts = [0]
    for count in images_per_row:
        starts.append(starts[-1] + count)
    order = []
    for i, row in enumerate(rows):
        donor = rows[(i + 1) % len(rows)]
        donors[row] = donor
        order += [starts[donor] + j % images_per_row[donor] for j in range(images_per_row[row])]
    return targets[torch.tensor(order, device=targets.device)], donors


def reverse_within_rows(targets: torch.Tensor, images_per_row: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's images in reverse order: ``(negatives [N, K, H], rows with at least two images [B] bool)``."""
    order, start = [], 0
    for count in images_per_row:
        order += range(start + count - 1, start - 1, -1)
        start += count
    rows = torch.tensor([count >= 2 for count in images_per_row], device=targets.device)
    return targets[torch.tensor(order, device=targets.device, dtype=torch.long)], rows


def continuation_mask(input_ids: torch.Tensor, labels: torch.Tensor, pad_id: int) -> torch.Tensor:
    """``[B, L - 1]``: which next-token predictions (position ``t - 1`` for label ``t``) score text after a row's first
    latent pad, i.e. the text a block can inform."""
    after_block = (input_ids == pad_id).long().cumsum(1) > 0
    return (after_block & (labels != -100))[:, 1:]


def reasoning_mask(mask: torch.Tensor, labels: torch.Tensor, decode: Callable[[list[int]], str],
                   end: str = REASONING_END) -> torch.Tensor:
    """:func:`continuation_mask` ``mask`` without each row's tokens from the one that begins its last ``end`` onward
    (the answer after the reasoning; a row whose scored text has no ``end`` keeps all of it).

    The boundary is found on the decoded text, not on token ids, since a BPE token may join ``end``'s first
    characters to the word before it (that token is then left out too). ``decode`` turns token ids into text
    (the tokenizer's ``decode``, special tokens kept); a row is searched token by token only when its scored text
    contains ``end``.
    """
    kept, shifted = mask.cpu().clone(), labels[:, 1:].cpu()  # one device sync for the batch, not one per row
    for row in range(kept.shape[0]):
        positions = kept[row].nonzero()[:, 0].tolist()
        ids = shifted[row, positions].tolist()
        if end not in decode(ids):
            continue
        for start in range(len(ids) - 1, -1, -1):
            if end in decode(ids[start:]):
                kept[row, positions[start:]] = False
                break
    return kept.to(mask.device)


def continuation_log_probs(head: torch.nn.Module, hidden: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor
                           ) -> torch.Tensor:
    """``[B]``: each row's summed log-probability of its labels at ``mask`` (from :func:`continuation_mask`), through
    the LM ``head`` on those positions only (full-vocabulary logits of a few tokens per row)."""
    rows = mask.nonzero()[:, 0]
    logits = head(hidden[:, :-1][mask]).float()
    scores = logits.log_softmax(-1).gather(-1, labels[:, 1:][mask][:, None])[:, 0]
    return torch.zeros(mask.shape[0], dtype=scores.dtype, device=scores.device).index_add(0, rows, scores)


def differing_rows(labels: torch.Tensor, mask: torch.Tensor, donors: list[int | None]) -> torch.Tensor:
    """``[B]`` bool: rows with a donor whose scored continuation differs from the donor's (else the contrast has no
    right answer to prefer)."""
    shifted = labels[:, 1:]
    texts = [tuple(shifted[b][mask[b]].tolist()) for b in range(labels.shape[0])]
    return torch.tensor([d is not None and texts[b] != texts[d] for b, d in enumerate(donors)], device=labels.device)


def contrast_loss(own: torch.Tensor, negative: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss, margin)`` over ``rows``: mean ``softplus(negative - own)`` and the mean log-likelihood margin
    ``own - negative`` (nats per row; 0 when the model ignores the block's content). Zero (still differentiable through
    ``own``) when no row qualifies."""
    if not bool(rows.any()):
        zero = (own * 0).sum()
        return zero, zero.detach()
    gap = own[rows] - negative[rows]
    return F.softplus(-gap).mean(), gap.detach().mean()
