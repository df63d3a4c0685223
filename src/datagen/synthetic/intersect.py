"""Vectorised ray intersections against the four primitives of the world.

Every function takes ray origins (P, 3) or (3,) and directions (P, 3) in world coordinates and returns
``(t, normals)``: the ray parameter of the nearest hit in front of the origin (``inf`` for a miss) and the
outward unit surface normal there (meaningless where ``t`` is ``inf``). Directions need not be unit length:
the renderer scales each camera ray so that its camera-frame z component is 1, which makes ``t`` the depth.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-6


def _rotate_z(vectors: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    x, y = vectors[..., 0], vectors[..., 1]
    return np.stack([c * x - s * y, s * x + c * y, vectors[..., 2]], axis=-1)


def _rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)


def _nearest_root(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Smaller root of a t^2 + 2 b t + c = 0 where it is real and > EPS, else inf (origins are outside)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        disc = b * b - a * c
        t = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
    return np.where((disc >= 0.0) & (a > 0.0) & (t > EPS), t, np.inf)


def intersect_ground(origins: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The plane z = 0, seen from above."""
    oz = np.broadcast_to(origins, dirs.shape)[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -oz / dirs[:, 2]
    t = np.where((dirs[:, 2] < 0.0) & (t > EPS), t, np.inf)
    return t, np.broadcast_to(np.array([0.0, 0.0, 1.0]), dirs.shape)


def intersect_sphere(
    origins: np.ndarray, dirs: np.ndarray, center: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    oc = np.broadcast_to(origins - center, dirs.shape)
    t = _nearest_root(_rowdot(dirs, dirs), _rowdot(dirs, oc), _rowdot(oc, oc) - radius**2)
    normals = (oc + np.where(np.isfinite(t), t, 0.0)[:, None] * dirs) / radius
    return t, normals


def intersect_box(
    origins: np.ndarray, dirs: np.ndarray, center: np.ndarray, half: np.ndarray, yaw: float
) -> tuple[np.ndarray, np.ndarray]:
    """A box with half extents ``half`` (local x, y, z) rotated by ``yaw`` about the vertical; slab method."""
    o = _rotate_z(np.broadcast_to(origins - center, dirs.shape), -yaw)
    d = _rotate_z(dirs, -yaw)
    d = np.where(np.abs(d) < 1e-12, 1e-12, d)
    t1 = (-half - o) / d
    t2 = (half - o) / d
    near = np.minimum(t1, t2)
    far = np.maximum(t1, t2).min(axis=1)
    axis = near.argmax(axis=1)
    t_near = near.max(axis=1)
    t = np.where((far >= t_near) & (t_near > EPS), t_near, np.inf)
    rows = np.arange(len(d))
    local = np.zeros_like(d)
    local[rows, axis] = -np.sign(d[rows, axis])
    return t, _rotate_z(local, yaw)


def intersect_cylinder(
    origins: np.ndarray, dirs: np.ndarray, center: np.ndarray, radius: float, half_height: float
) -> tuple[np.ndarray, np.ndarray]:
    """A vertical cylinder (axis along world z through ``center``) with flat caps."""
    o = np.broadcast_to(origins - center, dirs.shape)
    a = dirs[:, 0] ** 2 + dirs[:, 1] ** 2
    b = dirs[:, 0] * o[:, 0] + dirs[:, 1] * o[:, 1]
    c = o[:, 0] ** 2 + o[:, 1] ** 2 - radius**2
    t_side = _nearest_root(a, b, c)
    with np.errstate(invalid="ignore"):
        t_side = np.where(np.abs(o[:, 2] + t_side * dirs[:, 2]) <= half_height, t_side, np.inf)
    best, normals = t_side, np.zeros_like(dirs)
    hit = o + np.where(np.isfinite(t_side), t_side, 0.0)[:, None] * dirs
    normals[:, :2] = hit[:, :2] / radius
    for sign in (1.0, -1.0):
        with np.errstate(divide="ignore", invalid="ignore"):
            t_cap = (sign * half_height - o[:, 2]) / dirs[:, 2]
            px = o[:, 0] + t_cap * dirs[:, 0]
            py = o[:, 1] + t_cap * dirs[:, 1]
            ok = (t_cap > EPS) & (px * px + py * py <= radius**2) & (t_cap < best)
        best = np.where(ok, t_cap, best)
        normals[ok] = (0.0, 0.0, sign)
    return best, normals
