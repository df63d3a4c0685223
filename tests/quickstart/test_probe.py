"""Linear answer probes of the diagnostics: they read what is there, and only that."""

from __future__ import annotations

import torch

from trl_latent.quickstart.probe import cross_validated_accuracy, majority_accuracy, probe_accuracy, question_features


def _data(n: int, features: int, signal: float, seed: int) -> tuple[torch.Tensor, list[str]]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n,), generator=generator)
    x = torch.randn(n, features, generator=generator, dtype=torch.float64)
    x[torch.arange(n), labels] += signal  # the label's own feature stands out by `signal`
    return x, ["ABCD"[i] for i in labels]


def test_a_probe_reads_an_answer_that_is_there_and_not_one_that_is_not():
    x, y = _data(240, 64, signal=6.0, seed=0)
    test_x, test_y = _data(80, 64, signal=6.0, seed=1)
    assert probe_accuracy(x, y, test_x, test_y) > 0.95
    assert cross_validated_accuracy(x, y) > 0.9
    noise_x, noise_y = _data(240, 512, signal=0.0, seed=2)  # more features than rows: a probe could memorise
    held_x, held_y = _data(240, 512, signal=0.0, seed=3)
    assert probe_accuracy(noise_x, noise_y, held_x, held_y) < 0.4  # chance is 0.25
    assert cross_validated_accuracy(noise_x, noise_y) < 0.4  # every row scored by a probe that never saw it


def test_majority_floor_and_question_features():
    assert majority_accuracy(list("AABAC"), list("ABBA")) == 0.5
    latents = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(3 * 4 * 2, 5)[:12]  # 3 blocks of K=4, H=5
    features = question_features(latents, latent_size=4)
    blocks = latents.double().reshape(3, 4, 5)
    assert features.shape == (2 * 4 * 5,)
    assert torch.equal(features, torch.cat([blocks.mean(0).flatten(), (blocks[2] - blocks[0]).flatten()]))
