"""A static, richly textured synthetic scene with known camera poses, for testing structure from motion.

The synthetic world's checkered ground repeats itself and its objects move, both of which mislead feature matching;
this scene isolates the geometry: a floor, a back wall and two side walls, each covered with its own non-repeating
random texture, seen by a pinhole camera on a known trajectory (OpenCV axes: x right, y down, z forward).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates


WIDTH, HEIGHT, FX = 320, 240, 256.0
PIXELS_PER_METRE, TEXTURE = 48.0, 1024
# (axis, coordinate, the two in-plane axes): floor y=1.5 (1.5 m below the camera), back wall z=9, side walls x=+-5
PLANES = [(1, 1.5, (0, 2)), (2, 9.0, (0, 1)), (0, -5.0, (2, 1)), (0, 5.0, (2, 1))]


def _textures(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in PLANES:
        noise = sum(gaussian_filter(rng.standard_normal((TEXTURE, TEXTURE)), s) * s for s in (1.0, 3.0, 9.0))
        out.append(np.clip(128 + 60 * noise / noise.std(), 0, 255))
    return out


def rotation(yaw_deg: float = 0.0, pitch_deg: float = 0.0) -> np.ndarray:
    """Camera-to-world rotation: yaw about the y axis (positive turns right), then pitch (positive looks up)."""
    y, p = np.radians(yaw_deg), np.radians(pitch_deg)
    yaw = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    pitch = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    return yaw @ pitch


def trajectory(num_frames: int, move: tuple[float, float, float], yaw_deg: float = 0.0, pitch_deg: float = 0.0
               ) -> np.ndarray:
    """``(N, 4, 4)`` camera-to-world poses moving by ``move`` (world metres) and turning by the given totals."""
    c2w = np.tile(np.eye(4), (num_frames, 1, 1))
    for i, s in enumerate(np.linspace(0.0, 1.0, num_frames)):
        c2w[i, :3, :3] = rotation(s * yaw_deg, s * pitch_deg)
        c2w[i, :3, 3] = s * np.asarray(move, dtype=np.float64)
    return c2w


def render(c2w: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """RGB ``(N, H, W, 3)`` uint8 frames and ``(N, H, W)`` depth (z in the camera) of the scene seen from ``c2w``."""
    textures = _textures(seed)
    v, u = np.mgrid[0:HEIGHT, 0:WIDTH] + 0.5
    rays = np.stack([(u - WIDTH / 2) / FX, (v - HEIGHT / 2) / FX, np.ones_like(u)], -1)  # z = 1: t is the depth
    frames, depths = [], []
    for pose in c2w:
        dirs, origin = rays @ pose[:3, :3].T, pose[:3, 3]
        best = np.full((HEIGHT, WIDTH), np.inf)
        grey = np.zeros((HEIGHT, WIDTH))
        for texture, (axis, coord, (a, b)) in zip(textures, PLANES):
            with np.errstate(divide="ignore", invalid="ignore"):
                t = (coord - origin[axis]) / dirs[..., axis]
            hit = (t > 0) & (t < best)
            points = origin + dirs * t[..., None]
            rows = np.clip(points[..., b] * PIXELS_PER_METRE + TEXTURE / 2, 0, TEXTURE - 1)
            cols = np.clip(points[..., a] * PIXELS_PER_METRE + TEXTURE / 2, 0, TEXTURE - 1)
            value = map_coordinates(texture, [rows[hit], cols[hit]], order=1)
            grey[hit], best[hit] = value, t[hit]
        frames.append(np.repeat(grey[..., None], 3, -1).astype(np.uint8))
        depths.append(best.astype(np.float32))
    return np.stack(frames), np.stack(depths)
