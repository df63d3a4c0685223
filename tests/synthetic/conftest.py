"""Shared fixtures: a few scenes and their renders, sampled once per test session (rendering costs ~15 ms a frame)."""

from __future__ import annotations

import pytest

from datagen.synthetic import SynthConfig, render_clip, sample_scene


@pytest.fixture(scope="session")
def config() -> SynthConfig:
    return SynthConfig()


@pytest.fixture(scope="session")
def rendered(config):
    """(scene, rgb, depth, masks) for six clips with varied cameras and objects."""
    out = []
    for index in range(6):
        scene = sample_scene(config, [11, index])
        out.append((scene, *render_clip(scene)))
    return out
