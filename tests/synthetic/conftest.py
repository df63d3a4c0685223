"""Shared fixtures: a few scenes and their renders, sampled once per test session (rendering costs ~15 ms a frame)."""

from __future__ import annotations

import numpy as np
import pytest

from datagen.synthetic import CameraTrack, Ground, Scene, SceneObject, SynthConfig, render_clip, sample_scene
from datagen.synthetic.scene import NOISE_CELLS


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


def hand_camera(positions, yaws=0.0, pitches=0.0) -> CameraTrack:
    """A 64x64 camera (f = 50 px) through the given centres and angles (radians), for exact hand-made checks."""
    n = len(positions)
    return CameraTrack(
        positions=np.asarray(positions, float),
        yaws=np.broadcast_to(np.asarray(yaws, float), n).copy(),
        pitches=np.broadcast_to(np.asarray(pitches, float), n).copy(),
        fx=50.0,
        fy=50.0,
        cx=32.0,
        cy=32.0,
        width=64,
        height=64,
    )


@pytest.fixture
def make_scene():
    """Factory: ``make_scene(camera, *objects, fps=2.0)`` with a plain grey ground and the sun overhead."""

    def build(camera: CameraTrack, *objects: SceneObject, fps: float = 2.0) -> Scene:
        ground = Ground(rgb=(0.5, 0.5, 0.5), checker_m=1.0, noise=np.zeros((NOISE_CELLS, NOISE_CELLS)))
        return Scene(camera=camera, objects=objects, ground=ground, light_dir=np.array([0.0, 0.0, 1.0]), fps=fps)

    return build


@pytest.fixture
def make_camera():
    return hand_camera
