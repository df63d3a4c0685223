"""Quaternion <-> rotation conversion of the layout (the one converter the reader and the synthetic writer share)."""

import numpy as np
import pytest

from datagen.geometry import quat_to_rotation, rotation_to_quat


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _axis_angle(axis, degrees: float) -> np.ndarray:
    """Rodrigues' formula, independent of the code under test."""
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    t = np.radians(degrees)
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k


HALF_TURN_AXES = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, -1, 0), (1, 1, 1), (-2, 0.5, 3), (0, 1, -1e-3)]


def _check(rot: np.ndarray) -> None:
    q = rotation_to_quat(rot)
    assert q[3] >= 0 and np.isclose(np.linalg.norm(q), 1.0)
    np.testing.assert_allclose(quat_to_rotation(q), rot, atol=1e-12)


def test_random_rotations_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(300):
        _check(_random_rotation(rng))


@pytest.mark.parametrize("axis", HALF_TURN_AXES)
@pytest.mark.parametrize("degrees", [180.0, 179.999, -179.5, 178.0])
def test_rotations_near_half_turn_round_trip(axis, degrees):
    # The old converter took the signs of qx, qy, qz from r - r^T, which vanishes at 180 degrees: a half turn
    # about (1, -1, 0) came back as one about (1, 1, 0), an error of 2.0 in the matrix.
    _check(_axis_angle(axis, degrees))


def test_known_quaternions():
    np.testing.assert_allclose(rotation_to_quat(_axis_angle((0, 0, 1), 90.0)), [0, 0, np.sqrt(0.5), np.sqrt(0.5)],
                               atol=1e-12)
    axis = np.array([1.0, -1.0, 0.0]) / np.sqrt(2)  # half turn: q = (axis, 0) up to a sign
    q = rotation_to_quat(_axis_angle(axis, 180.0))
    assert abs(abs(q @ np.append(axis, 0.0)) - 1) < 1e-12
    np.testing.assert_allclose(rotation_to_quat(np.eye(3)), [0, 0, 0, 1], atol=1e-15)


def test_shape_is_checked():
    with pytest.raises(ValueError):
        rotation_to_quat(np.eye(4))
