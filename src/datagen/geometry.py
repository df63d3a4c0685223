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
    """Inverse of :func:`quat_to_rotation` for one ``(3, 3)`` matrix: ``[qx, qy, qz, qw]`` with ``qw >= 0``.

    Used to write poses (the synthetic world, test layouts). Shepperd's method: it divides by the largest of
    ``4 qw^2, 4 qx^2, 4 qy^2, 4 qz^2`` (from the trace and the diagonal), so it stays exact near 180 degrees, where
    ``qw`` vanishes and recovering the signs of ``qx, qy, qz`` from ``r - r^T`` alone gives a wrong rotation.
    """
    m = np.asarray(r, dtype=np.float64)
    if m.shape != (3, 3):
        raise ValueError(f"expected a (3, 3) rotation, got shape {m.shape}")
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    k = int(np.argmax([trace, m[0, 0], m[1, 1], m[2, 2]]))
    if k == 0:
        s = 2.0 * np.sqrt(1.0 + trace)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    elif k == 1:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif k == 2:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s]
    q = np.asarray(q) / np.linalg.norm(q)
    return -q if q[3] < 0 else q


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
