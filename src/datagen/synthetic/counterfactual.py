"""Counterfactual twins: the same clip up to a cut frame, a different future after it.

A twin shares everything a model sees up to frame ``k - 1`` (camera, ground, light, objects and their paths)
and differs only after it, where every moving object turns onto a new straight path. Its future agrees with all
the frames before the cut, so it is the counterfactual future used as the negative of the imagery contrast:
imagery of a future that is consistent with every visible frame, but not the one that happened.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from .config import SynthConfig
from .objects import _PLACEMENT_TRIES, _apart, _visible
from .scene import Scene, sample_scene

TWIN_STREAM = 0x7477696E  # "twin": third word of the twin generator's seed, [seed, index, TWIN_STREAM]
TURN_DEG = (90.0, 180.0)  # magnitude range of the turn at the cut; the sign is drawn separately


def twin_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of clip ``index``'s twin draws: its own stream, so the scene drawn from ``[seed, index]``
    stays exactly the scene of the world without twins."""
    return np.random.default_rng([seed, index, TWIN_STREAM])


def _last_step(centers: np.ndarray, start: int, fps: float) -> tuple[float, float]:
    """(heading in radians, speed in m/s) of the object at frame ``start``: its last visible step, frames
    ``start - 1 -> start`` (the first step, frames 0 -> 1, when ``start`` is 0)."""
    a, b = (start - 1, start) if start >= 1 else (0, 1)
    step = centers[b, :2] - centers[a, :2]
    return float(np.arctan2(step[1], step[0])), float(np.linalg.norm(step) * fps)


def counterfactual_scene(scene: Scene, config: SynthConfig, rng: np.random.Generator | int | Sequence[int]) -> Scene:
    """The twin of ``scene`` for ``config.counterfactual_frame = k`` (``scene`` itself when it is 0): a clip that
    shows exactly the same frames ``0..k-1`` and a different future, the negative of the imagery contrast.

    Every moving object, in obj_id order, continues from its centre at frame ``k - 1`` on a straight line at its
    speed there (constant), turned from its heading there by an angle drawn uniformly from +-[90, 180] degrees.
    The new path must stay inside every frame and apart from every other object's full path (the twins already
    re-pathed included), like a sampled one; after ``_PLACEMENT_TRIES`` failed angles the object keeps its
    original path. Frames ``0..k-1`` of every track are unchanged. Re-pathed objects record the turn in
    ``counterfactual_turn_deg``; their ``motion`` / ``speed_profile`` / ``direction`` still describe the path
    before the cut. Deterministic for a given ``rng`` seed; the draws never touch the scene's own generator.
    """
    k = config.counterfactual_frame
    if not k:
        return scene
    if k >= scene.num_frames:
        raise ValueError(f"counterfactual_frame must be < num_frames ({scene.num_frames}), got {k}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    cut = k - 1
    elapsed = (np.arange(scene.num_frames - cut) / scene.fps)[:, None]
    objects = list(scene.objects)
    for i, obj in enumerate(objects):
        if not obj.moving:
            continue
        heading, speed = _last_step(obj.centers, cut, scene.fps)
        others = objects[:i] + objects[i + 1 :]
        for _ in range(_PLACEMENT_TRIES):
            turn = float(rng.choice([-1.0, 1.0]) * rng.uniform(*TURN_DEG))
            angle = heading + np.radians(turn)
            centers = obj.centers.copy()
            centers[cut:, :2] = obj.centers[cut, :2] + speed * elapsed * np.array([np.cos(angle), np.sin(angle)])
            if _visible(centers, obj.radius_xy, scene.camera) and _apart(centers, obj.radius_xy, others):
                objects[i] = dataclasses.replace(obj, centers=centers, counterfactual_turn_deg=turn)
                break
    return dataclasses.replace(scene, objects=tuple(objects))


def clip_scene(config: SynthConfig, seed: int, index: int) -> Scene:
    """The scene of clip ``index`` of the world written with ``seed`` and ``config``: ``sample_scene(config,
    [seed, index])``, turned into its counterfactual twin when ``config.counterfactual_frame`` is set."""
    return counterfactual_scene(sample_scene(config, [seed, index]), config, twin_rng(seed, index))
