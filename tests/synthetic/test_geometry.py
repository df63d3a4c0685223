import numpy as np
import pytest

from datagen.synthetic import camera_axes, decode_pose, encode_pose, quaternion_to_matrix


def test_camera_axes_follow_opencv_and_world_conventions():
    axes = camera_axes(0.0, 0.0)
    np.testing.assert_allclose(axes, [[1, 0, 0], [0, 0, 1], [0, -1, 0]], atol=1e-12)  # right=+x, down=-z, fwd=+y
    left = camera_axes(np.radians(90.0), 0.0)
    np.testing.assert_allclose(left[:, 2], [-1.0, 0.0, 0.0], atol=1e-12)  # positive yaw turns left (towards -x)
    up = camera_axes(0.0, np.radians(30.0))
    assert up[2, 2] > 0 and up[2, 1] < 0  # looking up; image "down" still points mostly down
    for yaw, pitch in [(0.3, -0.2), (2.0, 0.4), (-1.0, -0.7)]:
        rot = camera_axes(yaw, pitch)
        np.testing.assert_allclose(rot.T @ rot, np.eye(3), atol=1e-12)
        assert np.isclose(np.linalg.det(rot), 1.0)


def test_pose_encoding_round_trip_maps_world_points_into_the_camera():
    rng = np.random.default_rng(1)
    for _ in range(50):
        rot = camera_axes(rng.uniform(-np.pi, np.pi), rng.uniform(-0.8, 0.3))
        center = rng.normal(size=3) * 5
        r_wc, t = decode_pose(encode_pose(rot, center))
        points = rng.normal(size=(10, 3)) * 10
        np.testing.assert_allclose(points @ r_wc.T + t, (points - center) @ rot, atol=1e-9)
        np.testing.assert_allclose(r_wc @ center + t, 0.0, atol=1e-9)  # the camera centre maps to the origin


def test_bad_input_is_rejected():
    with pytest.raises(ValueError):
        quaternion_to_matrix(np.zeros(4))
    with pytest.raises(ValueError):
        decode_pose(np.zeros(6))
