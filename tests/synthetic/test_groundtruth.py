import numpy as np
import pytest

from datagen.synthetic import SceneObject, ego_motion, object_motion, speed_ratio


def test_ego_motion_reads_dolly_truck_pedestal_in_the_start_camera_frame(make_camera):
    # Yaw 90 degrees: the camera looks along -x and its right is +y, so moving along -x is a dolly in.
    cam = make_camera([[0, 0, 1.5], [-1, 0, 1.5], [-1, 0.8, 1.1]], np.radians(90), 0.0)
    assert ego_motion(cam, 0, 1).tags() == ["Dolly In"]
    assert ego_motion(cam, 1, 2).tags() == ["Truck Right", "Pedestal Down"]
    np.testing.assert_allclose(ego_motion(cam, 1, 2).translation, [0.8, 0.4, 0.0], atol=1e-12)
    assert ego_motion(cam, 0, 2).tags(translation_m=2.0) == []


def test_ego_motion_reads_pan_and_tilt_with_signs(make_camera):
    cam = make_camera([[0, 0, 1.5]] * 3, [0.0, np.radians(20), np.radians(20)], [np.radians(-10), np.radians(-10), 0.0])
    pan = ego_motion(cam, 0, 1)
    assert pan.tags() == ["Pan Left"] and 19.0 < pan.pan_deg < 21.0 and abs(pan.tilt_deg) < 2.0
    tilt = ego_motion(cam, 1, 2)
    assert tilt.tags() == ["Tilt Up"] and np.isclose(tilt.tilt_deg, 10.0) and np.isclose(tilt.pan_deg, 0.0)
    with pytest.raises(ValueError):
        ego_motion(cam, 2, 1)


def test_object_motion_separates_own_motion_from_ego_motion(make_camera, make_scene):
    # Camera trucks right by 1 m while a ball rolls 2 m to the right and 1 m away from it.
    cam = make_camera([[0, 0, 1], [0.5, 0, 1], [1, 0, 1]], 0.0, 0.0)
    ball = SceneObject(1, "sphere", "red", (0.5,) * 3, 0.0, np.array([[0, 5, 0.25], [1, 5.5, 0.25], [2, 6, 0.25]]))
    scene = make_scene(cam, ball)
    m = object_motion(scene, 1, 0, 2)
    np.testing.assert_allclose(m.own_displacement, [2.0, 0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(m.apparent_displacement, [1.0, 0.0, 1.0], atol=1e-12)
    assert not m.approaching and np.isclose(m.mean_speed, np.hypot(1, 0.5) * 2.0)
    with pytest.raises(KeyError):
        object_motion(scene, 7, 0, 2)


def test_speed_ratio_detects_acceleration(make_camera, make_scene):
    xs = np.array([0.0, 0.1, 0.3, 0.6, 1.0])
    ball = SceneObject(1, "sphere", "red", (0.5,) * 3, 0.0, np.stack([xs, np.full(5, 5.0), np.full(5, 0.25)], 1))
    scene = make_scene(make_camera([[0, 0, 1]] * 5, 0.0, 0.0), ball)
    assert np.isclose(speed_ratio(scene, 1, 0, 4), 0.7 / 0.3)
    assert np.isclose(speed_ratio(scene, 1, 2, 4), 0.4 / 0.3)
    with pytest.raises(ValueError):
        speed_ratio(scene, 1, 0, 1)
