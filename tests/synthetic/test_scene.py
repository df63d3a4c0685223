import collections

import numpy as np
import pytest

from datagen.synthetic import (
    SynthConfig,
    camera_motion_tags,
    object_centers_camera,
    object_motion,
    render_clip,
    sample_scene,
    speed_ratio,
)


def test_same_seed_gives_identical_scenes_and_pixels(config):
    a, b = sample_scene(config, [5, 3]), sample_scene(config, [5, 3])
    np.testing.assert_array_equal(a.camera.poses(), b.camera.poses())
    np.testing.assert_array_equal(a.tracks(), b.tracks())
    assert [o.to_json() for o in a.objects] == [o.to_json() for o in b.objects]
    for x, y in zip(render_clip(a), render_clip(b)):
        assert x.tobytes() == y.tobytes()
    c = sample_scene(config, [5, 4])
    assert a.tracks().shape != c.tracks().shape or not np.array_equal(a.tracks(), c.tracks())


@pytest.fixture(scope="module")
def many_scenes(config):
    return [sample_scene(config, [0, i]) for i in range(200)]


def test_objects_are_named_uniquely_and_stay_in_view(many_scenes, config):
    for scene in many_scenes:
        names = [o.name for o in scene.objects]
        assert len({o.color for o in scene.objects}) == len(names)
        assert config.num_objects[0] <= len(names) <= config.num_objects[1]
        if len(names) >= 2:
            assert {o.moving for o in scene.objects} == {True, False}  # a reference and a subject
        cam = object_centers_camera(scene)
        uv = scene.camera.project(cam)
        assert (cam[..., 2] > 1.0).all()
        assert ((uv >= 0) & (uv <= [config.width, config.height])).all()
        for o in scene.objects:
            assert np.allclose(o.centers[:, 2], o.size[2] / 2)  # resting on the ground
            if not o.moving:
                assert np.ptp(o.centers, axis=0).max() == 0


def test_measured_camera_tags_equal_the_sampled_motion(many_scenes):
    for scene in many_scenes:
        assert set(camera_motion_tags(scene.camera)) == set(scene.camera.moves)


def _shares(counter: collections.Counter) -> dict[str, float]:
    total = sum(counter.values())
    return {k: v / total for k, v in counter.items()}


def test_question_answers_are_balanced_across_clips(many_scenes):
    """Each binary answer a question generator could ask about gets a fair share (no class below ~1/3)."""
    tags, side, distance, pace = (collections.Counter() for _ in range(4))
    for scene in many_scenes:
        tags.update(camera_motion_tags(scene.camera) or ["static"])
        for o in scene.objects:
            if o.moving:
                m = object_motion(scene, o.obj_id, 0, scene.num_frames - 1)
                side["right" if m.apparent_displacement[0] > 0 else "left"] += 1
                distance["approaching" if m.approaching else "receding"] += 1
                ratio = speed_ratio(scene, o.obj_id, 0, scene.num_frames - 1)
                pace["faster" if ratio > 1.15 else "slower" if ratio < 1 / 1.15 else "steady"] += 1
    for counter in (side, distance):
        assert min(_shares(counter).values()) > 0.35, counter
    assert len(pace) == 3 and min(_shares(pace).values()) > 0.2, pace
    for axis in ("Dolly", "Truck", "Pedestal", "Pan", "Tilt"):
        pair = [v for k, v in tags.items() if k.startswith(axis)]
        assert len(pair) == 2 and min(pair) > 0.6 * max(pair), (axis, tags)
    assert 0.1 < tags["static"] / len(many_scenes) < 0.35


def test_bad_options_are_rejected():
    with pytest.raises(TypeError, match="unknown synthetic option"):
        SynthConfig.from_options(widht=64)
    with pytest.raises(ValueError, match="even"):
        SynthConfig(width=63)
    with pytest.raises(ValueError, match="num_objects"):
        SynthConfig(num_objects=(3, 2))
    with pytest.raises(ValueError, match="shapes"):
        SynthConfig(shapes=("cone",))
    assert SynthConfig.from_options(hfov_deg=[60, 60]).hfov_deg == (60, 60)
