import numpy as np
import pytest

from datagen.camera_qa import CameraQAConfig, camera_questions, rotation_angles
from datagen.frames import FramesConfig, extract_clip
from datagen.layout import read_metadata
from datagen.object_qa import ObjectQAConfig, lift_centres, object_questions
from datagen.segment import SegmentConfig, get_segmenter, segment_clip
from datagen.segment.base import load_masks

from dg_world import yaw_matrix


def _prepare(dataset, tmp_path, clip_id):
    meta = {m.id: m for m in read_metadata(dataset)}[clip_id]
    clip = extract_clip(meta, tmp_path / "frames", FramesConfig(fps=2.0, max_frames=16))
    segment_clip(clip, tmp_path / "frames", tmp_path / f"{clip_id}.npz", get_segmenter(SegmentConfig()), [])
    masks, objects = load_masks(tmp_path / f"{clip_id}.npz")
    return clip, masks, objects


def _by_type(records, qtype):
    return [r for r in records if r["type"] == qtype]


def test_rotation_angles_signs():
    assert rotation_angles(yaw_matrix(20))[0] > 19  # forward turns to +x: pan right
    assert rotation_angles(yaw_matrix(-20))[0] < -19


def test_camera_answers_match_known_motion(dataset, tmp_path):
    expected = {"forward": ("cam_dir", "Dolly In"), "pan": ("cam_rot", "Pan Right"), "truck": ("cam_dir", "Truck Left")}
    for clip_id, (qtype, label) in expected.items():
        clip, _, _ = _prepare(dataset, tmp_path, clip_id)
        records = camera_questions(clip, CameraQAConfig())
        whole = [r for r in _by_type(records, qtype) if r["segment"] == [0, 7]]
        assert whole and whole[0]["label"] == label, (clip_id, records)
        qa = whole[0]
        assert qa["options"]["ABCD".index(qa["answer"])].endswith(qa["answer_text"])
        assert len(set(qa["options"])) == 4
    truck = camera_questions(_prepare(dataset, tmp_path, "truck")[0], CameraQAConfig())
    assert _by_type(truck, "cam_spd")[0]["label"] == "speeds up"
    pan = camera_questions(_prepare(dataset, tmp_path, "pan")[0], CameraQAConfig())
    assert [r["label"] for r in _by_type(pan, "cam_mag") if r["segment"] == [0, 7]] == ["20 degrees"]  # 8°/s * 3.5 s
    tag = _by_type(camera_questions(_prepare(dataset, tmp_path, "forward")[0], CameraQAConfig()), "cam_tag")
    assert tag[0]["answer_text"] == "Dolly In" and "Dolly Out" in " ".join(tag[0]["options"])


def test_lifted_centres_match_ground_truth_tracks(dataset, tmp_path):
    clip, masks, objects = _prepare(dataset, tmp_path, "forward")
    centres = lift_centres(clip, masks, objects, 0.001, skip_occluded=False)
    tracks = np.load(dataset / "annotations/group_0001/forward/tracks.npy")
    for obj in objects:
        # masks are resized to the frame size and back, so allow a few centimetres
        np.testing.assert_allclose(centres[obj["obj_id"]], tracks[:, obj["obj_id"] - 1], atol=0.08)


def test_frames_cut_off_by_a_nearer_object_or_the_image_edge_are_skipped(dataset, tmp_path):
    def usable(clip_id):
        clip, masks, objects = _prepare(dataset, tmp_path, clip_id)
        centres = lift_centres(clip, masks, objects, 0.001)
        return {o["name"]: np.isfinite(centres[o["obj_id"]]).all(axis=1).tolist() for o in objects}

    # forward: the nearer ball (z 6) rolls right across the box (z 7) and covers its edge on the last frame
    assert usable("forward") == {"red ball": [True] * 8, "green box": [True] * 7 + [False]}
    # pan: the approaching ball grows into the image edge, then leaves the view
    assert usable("pan") == {"red ball": [True] * 2 + [False] * 6, "green box": [True] * 8}


def test_object_answers_match_known_motion(dataset, tmp_path):
    clip, masks, objects = _prepare(dataset, tmp_path, "forward")
    records = object_questions(clip, masks, objects, ObjectQAConfig())
    labels = {r["type"]: r["label"] for r in records}
    assert records[0]["facts"]["subject"] == "red ball"
    assert labels["abs_dir"] == "right"  # the ball moves +x in the world; the camera only dollies forward
    assert labels["abs_dis"] == "constant" or labels["abs_dis"].startswith(("closer", "farther"))
    assert labels["rel_dis"] == "closer"  # the ball approaches the static box
    assert labels["abs_spd_comp"] == "a"  # the ball moves, the box does not
    assert labels["abs_spd"] == "steady"
    assert labels["abs_dir_pred"] == "right"
    pan_clip, pan_masks, pan_objects = _prepare(dataset, tmp_path, "pan")
    # the ball is cut by the image edge from the third frame on: keep those frames to ask about it at all
    pan_config = ObjectQAConfig(skip_occluded=False)
    pan = {r["type"]: r["label"] for r in object_questions(pan_clip, pan_masks, pan_objects, pan_config)}
    assert pan["abs_dir"] == "toward the camera"
    assert pan["abs_dis"] == "closer"
    for record in records:
        assert record["type"] in {"abs_dis", "abs_dir", "abs_ori", "abs_spd", "abs_spd_comp", "abs_dir_pred",
                                  "rel_dis", "rel_dir", "rel_ori", "rel_spd", "rel_spd_comp", "rel_dir_pred", "non_temp"}
        assert record["options"]["ABCD".index(record["answer"])] == f"{record['answer']}. {record['answer_text']}"


def test_smoothed_mean_speed_is_exact_on_smooth_motion_and_damps_noise():
    from datagen.motion import smoothed_mean_speed, step_speeds

    t = np.linspace(0.0, 3.5, 8)
    line = np.stack([0.5 * t, -0.2 * t, 0 * t], axis=1)
    accelerating = np.stack([0.1 * t**2, 0 * t, 0 * t], axis=1)
    for track in (line, accelerating):
        assert smoothed_mean_speed(track, t) == pytest.approx(float(step_speeds(track, t).mean()), rel=1e-9)
    noisy_still = np.random.default_rng(0).normal(0.0, 0.05, (8, 3))  # a static object, 5 cm of lifting noise
    assert smoothed_mean_speed(noisy_still, t) < 0.5 * step_speeds(noisy_still, t).mean()


def test_fixed_option_order_gives_each_answer_one_letter(dataset, tmp_path):
    """``option_order="fixed"``: the same family always lists the same four answers in one order, so a letter names
    one answer; the answers of the rotated questions of the same clips are kept, and no family is asked whose
    answers are not four."""
    rotated, fixed = [], []
    for clip_id in ("forward", "pan", "truck"):
        clip, masks, objects = _prepare(dataset, tmp_path, clip_id)
        rotated += (camera_questions(clip, CameraQAConfig())
                    + object_questions(clip, masks, objects, ObjectQAConfig(skip_occluded=False)))
        fixed += (camera_questions(clip, CameraQAConfig(option_order="fixed"))
                  + object_questions(clip, masks, objects, ObjectQAConfig(skip_occluded=False, option_order="fixed")))
    options_of = {}
    for record in fixed:
        assert record["type"] not in {"cam_tag", "cam_mag", "abs_dis", "rel_dis"}
        texts = [o[3:] for o in record["options"]]
        assert texts[(ord(record["answer"]) - ord("A"))] == record["answer_text"]
        if record["type"] not in {"non_temp", "abs_spd_comp", "rel_spd_comp", "rel_ori"}:  # these name objects
            assert options_of.setdefault(record["type"], texts) == texts, record["type"]
    assert options_of["cam_dir"] == ["It moves forward (dolly in)", "It moves backward (dolly out)",
                                     "It moves left (truck left)", "It moves right (truck right)"]
    assert options_of["abs_dir"] == ["It moves left", "It moves right", "It moves toward the camera",
                                     "It moves away from the camera"]
    by_type = lambda records: {(r["clip_id"], r["type"], tuple(r["segment"])): r["answer_text"] for r in records}
    kept = by_type(fixed)
    assert kept and all(by_type(rotated)[key] == answer for key, answer in kept.items())
    assert {"cam_dir", "cam_rot", "abs_dir"} <= {r["type"] for r in fixed}
