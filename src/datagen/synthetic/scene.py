"""A complete synthetic clip description: camera, objects, ground texture and light.

A Scene is pure data sampled from a seed; rendering (render.py) and ground truth (groundtruth.py) only read it,
so the same seed always gives the same pixels and the same answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .camera import CameraTrack, sample_camera
from .config import SynthConfig
from .objects import SceneObject, sample_objects

NOISE_CELLS = 32  # value-noise lattice of the ground texture (periodic)
NOISE_PERIOD_M = 16.0  # metres covered by one period of the lattice


@dataclass(frozen=True)
class Ground:
    """Checkerboard (``checker_m`` squares, two tones of ``rgb``) modulated by periodic value noise, so
    camera motion shows up as texture flow everywhere in the frame."""

    rgb: tuple[float, float, float]
    checker_m: float
    noise: np.ndarray  # (NOISE_CELLS, NOISE_CELLS) values in [-1, 1]


@dataclass(frozen=True)
class Scene:
    camera: CameraTrack
    objects: tuple[SceneObject, ...]
    ground: Ground
    light_dir: np.ndarray  # unit vector towards the sun (world frame)
    fps: float

    @property
    def num_frames(self) -> int:
        return self.camera.num_frames

    @property
    def times(self) -> np.ndarray:
        """Timestamp of each frame in seconds."""
        return np.arange(self.num_frames) / self.fps

    def tracks(self) -> np.ndarray:
        """(N, num_objects, 3) world-frame object centres (the tracks.npy array)."""
        if not self.objects:
            return np.zeros((self.num_frames, 0, 3))
        return np.stack([o.centers for o in self.objects], axis=1)

    def object(self, obj_id: int) -> SceneObject:
        """The object with this instance id (ids start at 1; 0 is background in the masks)."""
        for obj in self.objects:
            if obj.obj_id == obj_id:
                return obj
        raise KeyError(f"no object with obj_id={obj_id}; ids are {[o.obj_id for o in self.objects]}")


def _sample_ground(rng: np.random.Generator) -> Ground:
    tone = rng.uniform(0.42, 0.6)
    tint = rng.uniform(-0.05, 0.05, size=3)
    return Ground(
        rgb=tuple(float(c) for c in np.clip(tone + tint, 0.0, 1.0)),
        checker_m=float(rng.choice([0.75, 1.0, 1.5])),
        noise=rng.uniform(-1.0, 1.0, size=(NOISE_CELLS, NOISE_CELLS)),
    )


def _sample_light(rng: np.random.Generator) -> np.ndarray:
    azimuth = rng.uniform(0.0, 2.0 * np.pi)
    elevation = np.radians(rng.uniform(35.0, 70.0))
    return np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)])


def sample_scene(config: SynthConfig, seed: int | Sequence[int] | np.random.Generator = 0) -> Scene:
    """Draw one clip's scene. ``seed`` may be an int, a sequence of ints (e.g. ``[dataset_seed, clip_index]``)
    or a numpy Generator; the same seed always gives the same scene."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    camera = sample_camera(rng, config)
    objects = sample_objects(rng, config, camera)
    return Scene(
        camera=camera, objects=objects, ground=_sample_ground(rng), light_dir=_sample_light(rng), fps=config.fps
    )
