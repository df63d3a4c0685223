"""Numpy ray caster: one primary ray per pixel centre, a z-buffer over ground and objects, Lambert shading,
hard shadows on the ground, a sky gradient. RGB, metric depth and instance masks come from the same rays, so the
masks and depth are exact for the pixels the video shows (before compression).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .intersect import intersect_box, intersect_cylinder, intersect_ground, intersect_sphere
from .objects import SceneObject
from .scene import NOISE_CELLS, NOISE_PERIOD_M, Ground, Scene

AMBIENT = 0.35
SHADOW = 0.55  # share of direct light a shadowed ground point keeps
SKY_HORIZON = np.array([0.86, 0.90, 0.95])
SKY_ZENITH = np.array([0.42, 0.62, 0.90])
FOG_DISTANCE_M = 60.0


@dataclass(frozen=True)
class Frame:
    """One rendered frame: ``rgb`` (H, W, 3) uint8, ``depth`` (H, W) float32 camera-z in metres (0 where the
    ray sees only sky), ``mask`` (H, W) uint8 instance ids (0 = ground or sky)."""

    rgb: np.ndarray
    depth: np.ndarray
    mask: np.ndarray


def camera_rays(scene: Scene, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Origin (3,) and world directions (H*W, 3) through each pixel centre of frame ``i``, row-major.

    Each direction has camera-frame z = 1, so the ray parameter of a hit is its depth."""
    cam = scene.camera
    u, v = np.meshgrid(np.arange(cam.width, dtype=np.float64), np.arange(cam.height, dtype=np.float64))
    d_cam = np.stack([(u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy, np.ones_like(u)], axis=-1).reshape(-1, 3)
    return cam.positions[i], d_cam @ cam.cam_to_world(i).T


def intersect_object(obj: SceneObject, center: np.ndarray, origins: np.ndarray, dirs: np.ndarray):
    """Dispatch on the object's shape; returns ``(t, normals)`` like the functions in intersect.py."""
    sx, sy, sz = obj.size
    if obj.shape == "sphere":
        return intersect_sphere(origins, dirs, center, sx / 2.0)
    if obj.shape == "box":
        return intersect_box(origins, dirs, center, np.array([sx, sy, sz]) / 2.0, obj.yaw)
    if obj.shape == "cylinder":
        return intersect_cylinder(origins, dirs, center, sx / 2.0, sz / 2.0)
    raise ValueError(f"unknown shape {obj.shape!r}")


def _periodic_noise(noise: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear lookup of the periodic value-noise lattice at lattice coordinates (x, y)."""
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    i0, j0 = x0.astype(np.int64) % NOISE_CELLS, y0.astype(np.int64) % NOISE_CELLS
    i1, j1 = (i0 + 1) % NOISE_CELLS, (j0 + 1) % NOISE_CELLS
    top = noise[j0, i0] * (1 - fx) + noise[j0, i1] * fx
    bottom = noise[j1, i0] * (1 - fx) + noise[j1, i1] * fx
    return top * (1 - fy) + bottom * fy


def ground_albedo(ground: Ground, points: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """Checker plus two octaves of noise at world points (P, 3); the checker fades with distance so far squares
    do not alias into flicker at low resolution."""
    x, y = points[:, 0], points[:, 1]
    checker = (np.floor(x / ground.checker_m) + np.floor(y / ground.checker_m)) % 2 * 2.0 - 1.0
    fade = np.clip(1.0 - distance / 30.0, 0.0, 1.0)
    scale = NOISE_CELLS / NOISE_PERIOD_M
    coarse = _periodic_noise(ground.noise, x * scale, y * scale)
    fine = _periodic_noise(ground.noise.T, x * scale * 4.0, y * scale * 4.0)
    factor = 1.0 + 0.14 * checker * fade + 0.15 * coarse + 0.07 * fine * fade
    return np.asarray(ground.rgb) * factor[:, None]


def _in_shadow(scene: Scene, i: int, points: np.ndarray) -> np.ndarray:
    """Whether the sun is blocked by any object at ground points (P, 3)."""
    blocked = np.zeros(len(points), dtype=bool)
    dirs = np.broadcast_to(scene.light_dir, points.shape)
    for obj in scene.objects:
        t, _ = intersect_object(obj, obj.centers[i], points, dirs)
        blocked |= np.isfinite(t)
    return blocked


def render_frame(scene: Scene, i: int) -> Frame:
    """Render frame ``i`` of the scene."""
    cam = scene.camera
    origin, dirs = camera_rays(scene, i)
    depth, normals = intersect_ground(origin, dirs)
    normals = np.array(normals)
    ids = np.zeros(len(dirs), dtype=np.uint8)
    for obj in scene.objects:
        t, n = intersect_object(obj, obj.centers[i], origin, dirs)
        closer = t < depth
        depth = np.where(closer, t, depth)
        normals[closer] = n[closer]
        ids[closer] = obj.obj_id
    hit = np.isfinite(depth)
    points = origin + np.where(hit, depth, 0.0)[:, None] * dirs
    distance = np.where(hit, depth, 0.0) * np.linalg.norm(dirs, axis=1)

    albedo = np.zeros_like(dirs)
    ground = hit & (ids == 0)
    albedo[ground] = ground_albedo(scene.ground, points[ground], distance[ground])
    for obj in scene.objects:
        albedo[ids == obj.obj_id] = obj.rgb
    light = np.clip(normals @ scene.light_dir, 0.0, None)
    shadow_idx = np.flatnonzero(ground)
    light[shadow_idx[_in_shadow(scene, i, points[ground] + 1e-4 * normals[ground])]] *= 1.0 - SHADOW
    color = albedo * (AMBIENT + (1.0 - AMBIENT) * light)[:, None]

    unit = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
    sky = SKY_HORIZON + (SKY_ZENITH - SKY_HORIZON) * np.clip(unit[:, 2:3] * 2.0, 0.0, 1.0)
    fog = (1.0 - np.exp(-distance / FOG_DISTANCE_M))[:, None]
    color = np.where(hit[:, None], color * (1.0 - fog) + SKY_HORIZON * fog, sky)

    shape = (cam.height, cam.width)
    rgb = np.clip(color * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8).reshape(*shape, 3)
    return Frame(rgb=rgb, depth=np.where(hit, depth, 0.0).astype(np.float32).reshape(shape), mask=ids.reshape(shape))


def render_clip(scene: Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All frames: rgb (N, H, W, 3) uint8, depth (N, H, W) float32, masks (N, H, W) uint8."""
    frames = [render_frame(scene, i) for i in range(scene.num_frames)]
    return (
        np.stack([f.rgb for f in frames]),
        np.stack([f.depth for f in frames]),
        np.stack([f.mask for f in frames]),
    )
