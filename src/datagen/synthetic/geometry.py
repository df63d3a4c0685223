"""Rotations, quaternions and the SE3 pose encoding of the layout.

World frame: x east, y north, z up; the ground is the plane z = 0. Camera frame: OpenCV (x right, y down,
z forward). A camera never rolls: its orientation is a yaw (heading; positive turns left, i.e. counter-clockwise
seen from above, 0 looks along +y) and a pitch (positive looks up). Poses are stored world-to-camera as
[tx, ty, tz, qx, qy, qz, qw] (SpatialVID order), so ``x_cam = R_wc @ x_world + t``.
"""

from __future__ import annotations

import numpy as np

from ..geometry import quat_to_rotation, rotation_to_quat

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
    return np.concatenate([t, rotation_to_quat(r_wc)])


def decode_pose(pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera [tx, ty, tz, qx, qy, qz, qw] -> (R_wc (3, 3), t (3,)) with x_cam = R_wc x + t."""
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape != (7,):
        raise ValueError(f"expected a pose of shape (7,), got {pose.shape}")
    return quaternion_to_matrix(pose[3:]), pose[:3]
