"""How much of the answer do latent vectors carry? Linear probes, the standard read-out test.

Content dependence (:mod:`.diagnostics`) says whether a model *reads* its latents; a probe says whether there is
anything in them to read. Two probes per question family, each a multinomial logistic regression on standardised
features, fitted in float64 with L-BFGS (deterministic, no sampling):

* ``targets``: fitted on the training questions' imagery targets, scored on the held-out questions' — how much of the
  answer the imagery, as DIFT encodes it, states at all (an upper bound on what imagining it exactly could add);
* ``self_fed``: the held-out questions' own generated latents, scored by ``folds``-fold cross-validation — whether the
  model's imagination encodes the answer it gives.

A question's latents ``[N * K, H]`` (N blocks of K vectors) become one fixed-length vector: the mean block and the last
block minus the first (``[2 * K * H]``), so questions with different numbers of imagery images compare, and what
changed between the first and the last moment is kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

L2 = 0.05
"""Weight of the squared-weight penalty (on standardised features; the probes have far more features than rows)."""


def question_features(latents: torch.Tensor, latent_size: int) -> torch.Tensor:
    """``[N * K, H]`` → ``[2 * K * H]``: the mean block and the last block minus the first."""
    blocks = latents.double().reshape(-1, latent_size, latents.shape[-1])
    return torch.cat([blocks.mean(0).flatten(), (blocks[-1] - blocks[0]).flatten()])


def _fit(x: torch.Tensor, y: torch.Tensor, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    weight = torch.zeros(x.shape[1], classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=300, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, y) + L2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach()


def probe_accuracy(train_x: torch.Tensor, train_y: Sequence[str], test_x: torch.Tensor, test_y: Sequence[str]
                   ) -> float:
    """Accuracy on ``test`` of a probe fitted on ``train`` (labels are answer letters)."""
    classes = sorted(set(train_y))
    index = {label: i for i, label in enumerate(classes)}
    mean, std = train_x.mean(0), train_x.std(0).clamp(min=1e-8)
    weight, bias = _fit((train_x - mean) / std, torch.tensor([index[label] for label in train_y]), len(classes))
    predicted = (((test_x - mean) / std) @ weight + bias).argmax(-1).tolist()
    return sum(classes[p] == label for p, label in zip(predicted, test_y)) / len(test_y)


def cross_validated_accuracy(x: torch.Tensor, y: Sequence[str], folds: int = 5) -> float:
    """Mean accuracy over ``folds`` contiguous folds, every row scored once by a probe that never saw it."""
    n = len(y)
    bounds = [round(n * k / folds) for k in range(folds + 1)]
    right = 0.0
    for start, end in zip(bounds[:-1], bounds[1:]):
        keep = [i for i in range(n) if not start <= i < end]
        if end > start and len({y[i] for i in keep}) > 1:
            right += probe_accuracy(x[keep], [y[i] for i in keep], x[start:end], y[start:end]) * (end - start)
        else:  # a training split with one label: the probe can only say that label
            right += sum(y[i] == y[keep[0]] for i in range(start, end))
    return right / n


def majority_accuracy(train_y: Sequence[str], test_y: Sequence[str]) -> float:
    """What answering the training questions' most frequent letter scores on ``test_y`` (the probes' floor)."""
    top = max(sorted(set(train_y)), key=list(train_y).count)
    return sum(label == top for label in test_y) / len(test_y)
