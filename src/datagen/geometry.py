"""Camera geometry in the OpenCV convention (x right, y down, z forward) used by SpatialVID and the synthetic world."""

from __future__ import annotations

import numpy as np


def quat_to_rotation(q: np.ndarray) -> np.ndarray:
    """Rotation matrices from quaternions in ``[qx, qy, qz, qw]`` order (SpatialVID's order); ``(..., 4) → (..., 3, 3)``."""
    q = np.asarray(q, dtype=np.float64)
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(norm < 1e-12):
        raise ValueError("zero-length quaternion in poses")
    x, y, z, w = np.moveaxis(q / norm, -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def rotation_to_quat(r: np.ndarray) -> np.ndarray:
    """Inverse of :func:`quat_to_rotation` for one matrix (``[qx, qy, qz, qw]``, ``qw >= 0``); used to write poses."""
    r = np.asarray(r, dtype=np.float64)
    w = np.sqrt(max(0.0, 1 + r[0, 0] + r[1, 1] + r[2, 2])) / 2
    x = np.sqrt(max(0.0, 1 + r[0, 0] - r[1, 1] - r[2, 2])) / 2
    y = np.sqrt(max(0.0, 1 - r[0, 0] + r[1, 1] - r[2, 2])) / 2
    z = np.sqrt(max(0.0, 1 - r[0, 0] - r[1, 1] + r[2, 2])) / 2
    x = np.copysign(x, r[2, 1] - r[1, 2])
    y = np.copysign(y, r[0, 2] - r[2, 0])
    z = np.copysign(z, r[1, 0] - r[0, 1])
    return np.array([x, y, z, w])


def poses_to_w2c(poses: np.ndarray) -> np.ndarray:
    """``(N, 7)`` ``[tx, ty, tz, qx, qy, qz, qw]`` world-to-camera poses → ``(N, 4, 4)`` matrices."""
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 2 or poses.shape[1] != 7:
        raise ValueError(f"poses must have shape (N, 7), got {poses.shape}")
    w2c = np.tile(np.eye(4), (len(poses), 1, 1))
    w2c[:, :3, :3] = quat_to_rotation(poses[:, 3:])
    w2c[:, :3, 3] = poses[:, :3]
    return w2c


def invert_se3(m: np.ndarray) -> np.ndarray:
    """Inverse of rigid transforms ``(..., 4, 4)`` without a general matrix inverse."""
    out = np.zeros_like(m)
    rt = np.swapaxes(m[..., :3, :3], -1, -2)
    out[..., :3, :3] = rt
    out[..., :3, 3] = -(rt @ m[..., :3, 3:4])[..., 0]
    out[..., 3, 3] = 1
    return out


def intrinsics_to_k(intrinsics: np.ndarray, width: int, height: int) -> np.ndarray:
    """Normalised ``[fx/W, fy/H, cx/W, cy/H]`` → pixel ``K`` for an image of ``width`` × ``height`` pixels."""
    fx, fy, cx, cy = np.asarray(intrinsics, dtype=np.float64)
    return np.array([[fx * width, 0, cx * width], [0, fy * height, cy * height], [0, 0, 1]])


def backproject(u: float, v: float, depth: float, k: np.ndarray) -> np.ndarray:
    """Pixel ``(u, v)`` at metric ``depth`` → camera-frame point."""
    return depth * np.array([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], 1.0])


def transform(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a ``4x4`` transform to ``(..., 3)`` points."""
    return points @ m[:3, :3].T + m[:3, 3]


def project(point_cam: np.ndarray, k: np.ndarray) -> tuple[float, float]:
    """Camera-frame point → pixel ``(u, v)`` (the point must be in front of the camera)."""
    uvw = k @ point_cam
    return float(uvw[0] / uvw[2]), float(uvw[1] / uvw[2])
