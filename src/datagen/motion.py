"""Motion labels from 3-D geometry, shared by the camera and object question stages.

All vectors are in an OpenCV camera frame (x right, y down, z forward). Thresholds are explicit arguments so that
the config (and docs/datagen.md) state exactly when a motion counts as "left" or a speed as "steady".
"""

from __future__ import annotations

import numpy as np


# axis, sign → direction name, for displacements of an *object* seen from a camera
OBJECT_DIRECTIONS = {
    "left": (0, -1), "right": (0, 1), "up": (1, -1), "down": (1, 1), "away from the camera": (2, 1),
    "toward the camera": (2, -1),
}
OPPOSITE = {
    "left": "right", "right": "left", "up": "down", "down": "up",
    "away from the camera": "toward the camera", "toward the camera": "away from the camera",
}


def dominant_direction(
    vector: np.ndarray, names: dict[str, tuple[int, int]], min_norm: float, dominance: float, ambiguity: float
) -> tuple[str | None, list[str]]:
    """Name of the dominant signed axis of ``vector`` and the names that are *false* for it.

    Returns ``(None, [])`` when ``|vector| < min_norm`` or no component reaches ``dominance * |vector|``. The false
    names are those whose signed component is below ``ambiguity * |vector|`` (valid distractors).
    """
    norm = float(np.linalg.norm(vector))
    if norm < min_norm:
        return None, []
    best, best_value = None, dominance * norm
    false = []
    for name, (axis, sign) in names.items():
        value = sign * float(vector[axis])
        if value >= best_value:
            best, best_value = name, value
        if value < ambiguity * norm:
            false.append(name)
    return best, false


def distance_trend(distances: np.ndarray, threshold: float) -> str:
    """``closer`` / ``farther`` / ``closer then farther`` / ``farther then closer`` / ``constant``.

    A change counts when it exceeds ``threshold`` (same unit as ``distances``); the turn-around variants need the
    extreme to lie strictly inside the sequence and both legs to exceed the threshold.
    """
    d = np.asarray(distances, dtype=np.float64)
    if d.max() - d.min() < threshold:
        return "constant"
    i_min, i_max = int(d.argmin()), int(d.argmax())
    if 0 < i_min < len(d) - 1 and d[0] - d[i_min] >= threshold and d[-1] - d[i_min] >= threshold:
        return "closer then farther"
    if 0 < i_max < len(d) - 1 and d[i_max] - d[0] >= threshold and d[i_max] - d[-1] >= threshold:
        return "farther then closer"
    if abs(d[-1] - d[0]) < threshold:
        return "constant"
    return "closer" if d[-1] < d[0] else "farther"


def step_speeds(points: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Speed over each step of a ``(T, 3)`` trajectory."""
    return np.linalg.norm(np.diff(points, axis=0), axis=1) / np.maximum(np.diff(times), 1e-9)


def smoothed_mean_speed(points: np.ndarray, times: np.ndarray) -> float:
    """Mean speed along a least-squares quadratic fit (per axis, in time) of a ``(T, 3)`` trajectory.

    Step speeds of a measured track are the norms of noisy differences, so their mean is biased upwards: a static
    object lifted from masks and depth seems to drift. A quadratic follows straight, accelerating and gently curving
    motion exactly or closely, and averages the per-frame noise away.
    """
    degree = min(2, len(points) - 1)
    span = max(float(times[-1] - times[0]), 1e-9)
    t = (times - times[0]) / span  # well conditioned
    fitted = np.polynomial.polynomial.polyval(t, np.polynomial.polynomial.polyfit(t, points, degree)).T
    return float(np.mean(step_speeds(fitted, times)))


def speed_trend(speeds: np.ndarray, still_speed: float, change_ratio: float, level: float | None = None) -> str:
    """``still`` / ``speeds up`` / ``slows down`` / ``steady``: mean speed of the second half vs the first half.

    ``level`` is the speed the ``still`` test uses (default: the mean of ``speeds``; pass
    :func:`smoothed_mean_speed` for measured, noisy tracks).
    """
    if len(speeds) < 2 or (float(np.mean(speeds)) if level is None else level) < still_speed:
        return "still"
    half = len(speeds) // 2
    first, second = float(np.mean(speeds[:half])), float(np.mean(speeds[half:]))
    if second > change_ratio * max(first, 1e-9):
        return "speeds up"
    if first > change_ratio * max(second, 1e-9):
        return "slows down"
    return "steady"


def compare_speeds(a: float, b: float, still_speed: float, ratio: float) -> str:
    """``a`` / ``b`` / ``same`` / ``neither``: which of two mean speeds is clearly larger."""
    if max(a, b) < still_speed:
        return "neither"
    if a > ratio * b:
        return "a"
    if b > ratio * a:
        return "b"
    return "same"
