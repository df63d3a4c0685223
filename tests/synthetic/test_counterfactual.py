"""Counterfactual twins (``counterfactual_frame``): the same clip up to frame k - 1, a turned future after it."""

import csv
import json

import numpy as np
import pytest

from datagen.synthetic import (
    SynthConfig,
    clip_paths,
    clip_scene,
    counterfactual_scene,
    render_clip,
    sample_scene,
    twin_rng,
    write_dataset,
)
from datagen.synthetic.objects import _apart, _visible
from datagen.synthetic.writer import CONFIG_FILE

OPTIONS = {"width": 64, "height": 48, "num_frames": 8, "fps": 2.0}
K = 4
CLIPS = 3


def _rows(metadata) -> list[dict[str, str]]:
    with open(metadata, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    """(original root, twin root): the same seed and options, the twin with counterfactual_frame = K."""
    original, twin = tmp_path_factory.mktemp("original"), tmp_path_factory.mktemp("twin")
    write_dataset(original, CLIPS, seed=5, progress=False, **OPTIONS)
    write_dataset(twin, CLIPS, seed=5, progress=False, counterfactual_frame=K, **OPTIONS)
    return original, twin


def _heading(step: np.ndarray) -> float:
    return float(np.degrees(np.arctan2(step[1], step[0])))


def _wrap(angle: float) -> float:
    """An angle in degrees brought into [-180, 180)."""
    return float((angle + 180.0) % 360.0 - 180.0)


def test_twin_world_shares_everything_up_to_the_cut(worlds):
    original, twin = worlds
    rows, twin_rows = _rows(original / "metadata.csv"), _rows(twin / "metadata.csv")
    assert rows == twin_rows  # same ids, captions, objects and camera tags
    assert "counterfactual_frame" not in json.loads((original / CONFIG_FILE).read_text())["config"]
    assert json.loads((twin / CONFIG_FILE).read_text())["config"]["counterfactual_frame"] == K
    repathed = 0
    for row in rows:
        a, b = clip_paths(original, row["id"], row["group_id"]), clip_paths(twin, row["id"], row["group_id"])
        for key in ("poses", "intrinsics", "indexes"):
            assert a[key].read_bytes() == b[key].read_bytes(), key
        objects, twin_objects = json.loads(a["objects"].read_text()), json.loads(b["objects"].read_text())
        assert all("counterfactual_turn_deg" not in o for o in objects)
        stripped = [{k: v for k, v in o.items() if not k.startswith("counterfactual_")} for o in twin_objects]
        assert stripped == objects
        tracks, twin_tracks = np.load(a["tracks"]), np.load(b["tracks"])
        np.testing.assert_array_equal(tracks[:K], twin_tracks[:K])  # frames 0..k-1 exactly
        for j, o in enumerate(twin_objects):
            assert o["counterfactual_repathed"] == (o["counterfactual_turn_deg"] is not None)
            if o["counterfactual_repathed"]:
                assert o["moving"]
                repathed += 1
                assert (np.linalg.norm(tracks[K:, j] - twin_tracks[K:, j], axis=1) > 1e-6).all()
            else:
                np.testing.assert_array_equal(tracks[:, j], twin_tracks[:, j])  # static or fallback: untouched
    assert repathed >= 1
    with pytest.raises(ValueError, match="other options"):  # one folder never mixes twins and originals
        write_dataset(original, 1, seed=5, progress=False, counterfactual_frame=K, **OPTIONS)


def test_twin_renders_the_same_frames_before_the_cut():
    config = SynthConfig(**OPTIONS)
    twin_config = SynthConfig(**OPTIONS, counterfactual_frame=K)
    differs = False
    for index in range(CLIPS):
        scene, twin = sample_scene(config, [5, index]), clip_scene(twin_config, 5, index)
        np.testing.assert_array_equal(twin.camera.poses(), scene.camera.poses())
        np.testing.assert_array_equal(twin.ground.noise, scene.ground.noise)
        np.testing.assert_array_equal(twin.light_dir, scene.light_dir)
        for x, y in zip(render_clip(scene), render_clip(twin)):
            assert x[:K].tobytes() == y[:K].tobytes()
            differs |= x[K:].tobytes() != y[K:].tobytes()
    assert differs


@pytest.mark.parametrize(("options", "k"), [(OPTIONS, 1), (OPTIONS, K), (OPTIONS, 7), ({}, 8)])
def test_repathed_objects_turn_by_at_least_90_degrees_on_a_valid_path(options, k):
    config = SynthConfig(**options)
    twin_config = SynthConfig(**options, counterfactual_frame=k)
    cut = k - 1
    moving = repathed = 0
    for index in range(8):
        scene, twin = sample_scene(config, [3, index]), clip_scene(twin_config, 3, index)
        for obj, new in zip(scene.objects, twin.objects):
            np.testing.assert_array_equal(obj.centers[:k], new.centers[:k])
            if not obj.moving:
                assert new.counterfactual_turn_deg is None
                np.testing.assert_array_equal(obj.centers, new.centers)
                continue
            moving += 1
            if new.counterfactual_turn_deg is None:
                np.testing.assert_array_equal(obj.centers, new.centers)
                continue
            repathed += 1
            a, b = (cut - 1, cut) if cut >= 1 else (0, 1)
            before = obj.centers[b, :2] - obj.centers[a, :2]
            steps = np.diff(new.centers[cut:, :2], axis=0)
            turn = _wrap(_heading(steps[0]) - _heading(before))
            assert 90.0 - 1e-6 <= abs(turn) <= 180.0, turn
            assert _wrap(turn - new.counterfactual_turn_deg) == pytest.approx(0.0, abs=1e-6)
            np.testing.assert_allclose(np.linalg.norm(steps, axis=1), np.linalg.norm(before), rtol=1e-9)
            straight = np.broadcast_to(steps[0], steps.shape)  # a straight line at constant speed
            np.testing.assert_allclose(steps, straight, atol=1e-9)
            others = [o for o in twin.objects if o.obj_id != new.obj_id]
            assert _visible(new.centers, new.radius_xy, twin.camera)
            assert _apart(new.centers, new.radius_xy, others)
    assert repathed >= 1 and repathed >= 0.5 * moving, (repathed, moving)


def test_twins_are_deterministic_and_off_by_default():
    config = SynthConfig(**OPTIONS)
    twin_config = SynthConfig(**OPTIONS, counterfactual_frame=K)
    for index in range(CLIPS):
        scene = sample_scene(config, [5, index])
        assert counterfactual_scene(scene, config, twin_rng(5, index)) is scene
        plain = clip_scene(config, 5, index)  # k = 0: the scene stream is untouched
        np.testing.assert_array_equal(plain.tracks(), scene.tracks())
        np.testing.assert_array_equal(plain.camera.poses(), scene.camera.poses())
        np.testing.assert_array_equal(plain.ground.noise, scene.ground.noise)
        assert [o.to_json() for o in plain.objects] == [o.to_json() for o in scene.objects]
        assert all(o.counterfactual_turn_deg is None for o in plain.objects)
        a, b = clip_scene(twin_config, 5, index), clip_scene(twin_config, 5, index)
        np.testing.assert_array_equal(a.tracks(), b.tracks())
        records = [[o.to_json(counterfactual=True) for o in s.objects] for s in (a, b)]
        assert records[0] == records[1]
    assert "counterfactual_frame" not in config.to_dict()
    assert SynthConfig.from_options(**twin_config.to_dict()) == twin_config


@pytest.mark.parametrize("k", [-1, OPTIONS["num_frames"], 100])
def test_bad_counterfactual_frame_is_rejected(k):
    with pytest.raises(ValueError, match="counterfactual_frame"):
        SynthConfig(**OPTIONS, counterfactual_frame=k)
    with pytest.raises(ValueError, match="counterfactual_frame"):
        SynthConfig.from_options(**OPTIONS, counterfactual_frame=k)
