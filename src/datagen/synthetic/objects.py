"""Coloured objects (spheres, boxes, cylinders) resting on the ground, and their trajectories.

Motions are drawn in the first camera's ground-plane frame (right, forward) from eight directions (left, right,
toward, away and the four diagonals), with one of three speed profiles (constant, accelerating, decelerating),
straight or curved, so that "left/right", "approaching/receding" and "faster/slower" answers are balanced
across clips. Every object centre stays inside every frame, and objects never overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .camera import CameraTrack
from .config import SynthConfig
from .palette import COLORS

# Direction name -> unit vector in the first camera's (right, forward) ground frame.
DIRECTIONS: dict[str, tuple[float, float]] = {
    "right": (1.0, 0.0),
    "left": (-1.0, 0.0),
    "away": (0.0, 1.0),
    "toward": (0.0, -1.0),
    "away-right": (np.sqrt(0.5), np.sqrt(0.5)),
    "away-left": (-np.sqrt(0.5), np.sqrt(0.5)),
    "toward-right": (np.sqrt(0.5), -np.sqrt(0.5)),
    "toward-left": (-np.sqrt(0.5), -np.sqrt(0.5)),
}
SPEED_PROFILES = ("constant", "accelerating", "decelerating")
_SUBSTEPS = 16  # integration steps per frame interval for curved / accelerating paths
_PLACEMENT_TRIES = 200
_SCENE_TRIES = 50
_MARGIN = 0.05  # fraction of the image an object centre keeps away from the border
_GAP = 0.15  # metres between the bounding circles of two objects


@dataclass(frozen=True)
class SceneObject:
    """One object: shape, colour, full extents ``size`` (x, y, z in its own frame, metres), a fixed yaw
    (radians, boxes only) and its world-frame centre per frame ``centers`` (N, 3). ``counterfactual_turn_deg`` is
    set only in a counterfactual twin (counterfactual.py), on an object that left its sampled path there: the turn
    of its new straight heading from its old one (degrees, positive = counter-clockwise seen from above)."""

    obj_id: int
    shape: str
    color: str
    size: tuple[float, float, float]
    yaw: float
    centers: np.ndarray
    motion: str = "static"  # static | linear | curved
    speed_profile: str = "constant"
    direction: str = "none"  # initial direction in the first camera's ground frame
    counterfactual_turn_deg: float | None = None

    @property
    def name(self) -> str:
        return f"{self.color} {self.shape}"

    @property
    def moving(self) -> bool:
        return self.motion != "static"

    @property
    def rgb(self) -> tuple[float, float, float]:
        return COLORS[self.color]

    @property
    def radius_xy(self) -> float:
        """Radius of the object's footprint's bounding circle (metres)."""
        return float(np.hypot(self.size[0], self.size[1]) / 2.0) if self.shape == "box" else self.size[0] / 2.0

    def to_json(self, counterfactual: bool = False) -> dict[str, Any]:
        """The objects.json record (contract fields first, then the generator's own description); with
        ``counterfactual`` (a twin world) also whether the object was re-pathed and its turn (null if not)."""
        record = {
            "obj_id": self.obj_id,
            "name": self.name,
            "shape": self.shape,
            "color": self.color,
            "size": [round(float(v), 6) for v in self.size],
            "moving": self.moving,
            "motion": self.motion,
            "speed_profile": self.speed_profile,
            "direction": self.direction,
            "yaw_deg": round(float(np.degrees(self.yaw)), 6),
        }
        if counterfactual:
            turn = self.counterfactual_turn_deg
            record["counterfactual_repathed"] = turn is not None
            record["counterfactual_turn_deg"] = None if turn is None else round(float(turn), 6)
        return record


def _sample_size(rng: np.random.Generator, shape: str, scale: float) -> tuple[float, float, float]:
    if shape == "sphere":
        return (scale, scale, scale)
    if shape == "box":
        w, d, h = scale * rng.uniform(0.7, 1.3, size=3)
        return (float(w), float(d), float(h))
    return (scale, scale, float(scale * rng.uniform(0.8, 1.8)))


def _path(start: np.ndarray, heading: float, speed: float, accel: float, turn: float, times: np.ndarray) -> np.ndarray:
    """Integrate a planar path (x, y) at ``times``: speed v(t) = speed * (1 + accel * (2t/T - 1)), direction
    angle heading + turn * t/T (radians). Midpoint rule on a fine grid, so the result is deterministic."""
    duration = float(times[-1])
    fine = np.linspace(0.0, duration, (len(times) - 1) * _SUBSTEPS + 1)
    mid = 0.5 * (fine[1:] + fine[:-1])
    v = speed * (1.0 + accel * (2.0 * mid / duration - 1.0))
    angle = heading + turn * mid / duration
    steps = (v * np.diff(fine))[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    track = start + np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)])
    return track[::_SUBSTEPS]


def _visible(centers: np.ndarray, radius: float, camera: CameraTrack) -> bool:
    """True when the centre projects inside every frame (with a margin) and stays well in front of the camera."""
    for i in range(camera.num_frames):
        p = camera.to_camera(centers[i], i)
        if p[2] < 1.0 + radius:
            return False
        u, v = camera.project(p)
        if not (_MARGIN * camera.width <= u <= (1 - _MARGIN) * camera.width):
            return False
        if not (_MARGIN * camera.height <= v <= (1 - _MARGIN) * camera.height):
            return False
    return True


def _apart(centers: np.ndarray, radius: float, placed: list[SceneObject]) -> bool:
    return all(
        np.linalg.norm(centers[:, :2] - o.centers[:, :2], axis=1).min() >= radius + o.radius_xy + _GAP for o in placed
    )


def _moving_flags(rng: np.random.Generator, count: int, p_moving: float) -> np.ndarray:
    """Which objects move; with two or more objects at least one moves and one stays (reference for camera
    questions, subject for object questions)."""
    flags = rng.random(count) < p_moving
    if count >= 2 and (flags.all() or not flags.any()):
        flags[rng.integers(count)] = not flags[0]
    return flags


def _distinct_speed(rng: np.random.Generator, config: SynthConfig, taken: list[float]) -> float:
    """A speed at least ``min_speed_ratio`` away from the speeds already used (best effort), so that
    "which object is faster" has a clear answer."""
    speed = rng.uniform(*config.object_speed)
    for _ in range(_PLACEMENT_TRIES):
        if all(max(speed, t) / max(min(speed, t), 1e-9) >= config.min_speed_ratio for t in taken):
            break
        speed = rng.uniform(*config.object_speed)
    return float(speed)


def _try_objects(
    rng: np.random.Generator, config: SynthConfig, camera: CameraTrack, times: np.ndarray
) -> list[SceneObject] | None:
    count = int(rng.integers(config.num_objects[0], config.num_objects[1] + 1))
    colors = rng.choice(list(COLORS), size=count, replace=False)
    flags = _moving_flags(rng, count, config.p_moving)
    axes0 = camera.cam_to_world(0)
    right = axes0[:, 0] * np.array([1.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    forward = np.array([-right[1], right[0], 0.0])
    tan_half = camera.width / 2.0 / camera.fx
    placed: list[SceneObject] = []
    speeds: list[float] = []
    for k in range(count):
        shape = str(rng.choice(list(config.shapes)))
        size = _sample_size(rng, shape, rng.uniform(*config.object_size))
        yaw = float(rng.uniform(0.0, np.pi / 2)) if shape == "box" else 0.0
        motion, profile, direction, accel, turn, speed = "static", "constant", "none", 0.0, 0.0, 0.0
        if flags[k]:
            speed = _distinct_speed(rng, config, speeds)
            direction = str(rng.choice(list(DIRECTIONS)))
            profile = str(rng.choice(SPEED_PROFILES))
            accel = {"constant": 0.0, "accelerating": config.speed_change, "decelerating": -config.speed_change}[
                profile
            ]
            curved = rng.random() < config.p_curved
            motion = "curved" if curved else "linear"
            turn = float(rng.choice([-1.0, 1.0]) * np.radians(rng.uniform(*config.curve_turn_deg))) if curved else 0.0
        obj = None
        for _ in range(_PLACEMENT_TRIES):
            dist = rng.uniform(*config.object_distance)
            lateral = rng.uniform(-0.8, 0.8) * dist * tan_half
            start = (camera.positions[0] + dist * forward + lateral * right)[:2]
            dx, dy = DIRECTIONS[direction] if flags[k] else (0.0, 1.0)
            world_dir = dx * right[:2] + dy * forward[:2]
            heading = float(np.arctan2(world_dir[1], world_dir[0])) + rng.uniform(-0.2, 0.2)
            xy = _path(start, heading, speed, accel, turn, times)
            centers = np.concatenate([xy, np.full((len(times), 1), size[2] / 2.0)], axis=1)
            candidate = SceneObject(k + 1, shape, str(colors[k]), size, yaw, centers, motion, profile, direction)
            if _visible(centers, candidate.radius_xy, camera) and _apart(centers, candidate.radius_xy, placed):
                obj = candidate
                break
        if obj is None:
            return None
        placed.append(obj)
        if obj.moving:
            speeds.append(speed)
    return placed


def sample_objects(rng: np.random.Generator, config: SynthConfig, camera: CameraTrack) -> tuple[SceneObject, ...]:
    """Draw the objects of one clip for a given camera (ids 1..n, distinct colours)."""
    times = np.arange(config.num_frames) / config.fps
    for _ in range(_SCENE_TRIES):
        objects = _try_objects(rng, config, camera, times)
        if objects is not None:
            return tuple(objects)
    raise RuntimeError(
        "could not place the objects inside the view after many tries; widen object_distance or hfov_deg, "
        "or lower object_speed / camera motion amplitudes"
    )
