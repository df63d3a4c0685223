"""Rotations, quaternions and the SE3 pose encoding of the layout.

World frame: x east, y north, z up; the ground is the plane z = 0. Camera frame: OpenCV (x right, y down,
z forward). A camera never rolls: its orientation is a yaw (heading; positive turns left, i.e. counter-clockwise
seen from above, 0 looks along +y) and a pitch (positive looks up). Poses are stored world-to-camera as
[tx, ty, tz, qx, qy, qz, qw] (SpatialVID order), so ``x_cam = R_wc @ x_world + t``.
"""

from __future__ import annotations

import numpy as np

from ..geometry import quat_to_rotation

UP = np.array([0.0, 0.0, 1.0])


def camera_axes(yaw: float, pitch: float) -> np.ndarray:
    """Camera-to-world rotation (columns: camera x/right, y/down, z/forward in world coordinates).

    Angles in radians. The heading h and right r are horizontal; pitch tilts forward towards +z.
    """
    heading = np.array([-np.sin(yaw), np.cos(yaw), 0.0])
    right = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    forward = np.cos(pitch) * heading + np.sin(pitch) * UP
    down = np.sin(pitch) * heading - np.cos(pitch) * UP
    return np.stack([right, down, forward], axis=1)


def matrix_to_quaternion(rot: np.ndarray) -> np.ndarray:
    """Rotation matrix (3, 3) -> unit quaternion [qx, qy, qz, qw] with qw >= 0 (one canonical sign).

    Picks the largest of the four diagonal combinations before dividing, so it stays accurate near 180 degrees.
    """
    rot = np.asarray(rot, dtype=np.float64)
    if rot.shape != (3, 3):
        raise ValueError(f"expected a (3, 3) rotation, got shape {rot.shape}")
    m = rot
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    candidates = np.array([trace, m[0, 0], m[1, 1], m[2, 2]])
    k = int(np.argmax(candidates))
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
    q = np.asarray(q)
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


def quaternion_to_matrix(quat: np.ndarray) -> np.ndarray:
    """Quaternion [qx, qy, qz, qw] (any norm > 0) -> rotation matrix (3, 3).

    Delegates to the layout reader's decoder, so what the writer encodes is checked against what datagen reads."""
    q = np.asarray(quat, dtype=np.float64)
    if q.shape != (4,):
        raise ValueError(f"expected a quaternion of shape (4,), got {q.shape}")
    return quat_to_rotation(q)


def encode_pose(cam_to_world: np.ndarray, position: np.ndarray) -> np.ndarray:
    """Camera-to-world rotation and camera centre -> world-to-camera [tx, ty, tz, qx, qy, qz, qw]."""
    r_wc = np.asarray(cam_to_world, dtype=np.float64).T
    t = -r_wc @ np.asarray(position, dtype=np.float64)
    return np.concatenate([t, matrix_to_quaternion(r_wc)])


def decode_pose(pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera [tx, ty, tz, qx, qy, qz, qw] -> (R_wc (3, 3), t (3,)) with x_cam = R_wc x + t."""
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape != (7,):
        raise ValueError(f"expected a pose of shape (7,), got {pose.shape}")
    return quaternion_to_matrix(pose[3:]), pose[:3]
