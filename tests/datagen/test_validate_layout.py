import json

import numpy as np
import pytest
from PIL import Image

from datagen.frames import choose_frames, decode_frames, fit_pixels
from datagen.geometry import invert_se3, poses_to_w2c
from datagen.imagery import highlight, render_question
from datagen.layout import read_metadata
from datagen.validate import validate_jsonl


GOOD_COT = "<think>" + "I picture the highlighted ball: <output_image> <output_image> and it moves right. " * 2 + \
    "</think><answer>B</answer>"


def _write(tmp_path, records):
    Image.new("RGB", (28, 28)).save(tmp_path / "f.jpg")
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return validate_jsonl(path)


def test_validate_counts_each_class_of_broken_record(tmp_path):
    base = {"image_input": ["f.jpg"], "text_input": "Q?\n\nA. x\nB. y\nC. z\nD. w", "image_output": ["f.jpg", "f.jpg"],
            "text_output": GOOD_COT}
    broken = {
        "files_exist": dict(base, image_output=["f.jpg", "missing.jpg"]),
        "placeholder_count": dict(base, image_output=["f.jpg"]),
        "answer_in_options": dict(base, text_output=GOOD_COT.replace("<answer>B", "<answer>E")),
        "think_answer_tags": dict(base, text_output=GOOD_COT.replace("</think>", "")),
    }
    report = _write(tmp_path, [base, *broken.values(), {"image_input": "f.jpg", "text_input": base["text_input"],
                                                        "answer": "Z"}])
    assert report["records"] == 6
    for check in broken:
        assert report["checks"][check]["failed"] >= 1, check
    assert report["checks"]["files_exist"]["failed"] == 1
    assert report["checks"]["answer_in_options"]["failed"] == 2  # the DIFT "E" and the RL "Z"
    assert any(f.endswith(":3: placeholder_count") for f in report["failures"])
    leak = _write(tmp_path, [dict(base, text_output=GOOD_COT.replace("moves right", "answer is B"))])
    assert leak["checks"]["think_answer_tags"]["failed"] == 1


def test_metadata_errors_name_file_row_and_field(tmp_path):
    (tmp_path / "metadata.csv").write_text("id,group_id,video_path,fps,num_frames,width,height\na,1,v.mp4,abc,8,64,48\n")
    with pytest.raises(ValueError, match=r"metadata.csv: row 2, field 'fps'"):
        read_metadata(tmp_path)
    (tmp_path / "metadata.csv").write_text("id,group_id,fps\n")
    with pytest.raises(ValueError, match="missing column"):
        read_metadata(tmp_path)


def test_layout_reader_poses_intrinsics_depth(dataset):
    meta = {m.id: m for m in read_metadata(dataset)}["forward"]
    assert meta.objects == ["red ball", "green box"] and meta.motion_tags == ["Dolly In"]
    ann = meta.annotations()
    np.testing.assert_allclose(ann.poses_w2c @ ann.poses_c2w, np.tile(np.eye(4), (8, 1, 1)), atol=1e-9)
    np.testing.assert_allclose(ann.poses_c2w[3, :3, 3], [0, 0, 0.6], atol=1e-9)  # 0.4 m/s forward at 1.5 s
    np.testing.assert_allclose(ann.k(0, 112, 84), [[100, 0, 56], [0, 100, 42], [0, 0, 1]])
    assert ann.depth([0, 5]).shape == (2, 84, 112)
    np.testing.assert_allclose(invert_se3(poses_to_w2c(np.array([[1, 2, 3, 0, 0, 0, 1.0]])))[0, :3, 3], [-1, -2, -3])


def test_exr_depth_needs_openexr(dataset, monkeypatch):
    import sys
    import zipfile

    meta = read_metadata(dataset)[0]
    npz = meta.depth_path
    npz.unlink()
    with zipfile.ZipFile(npz.with_suffix(".zip"), "w") as zf:
        zf.writestr("00000.exr", b"not read")
    monkeypatch.setitem(sys.modules, "OpenEXR", None)
    with pytest.raises(ImportError, match="OpenEXR"):
        meta.annotations().depth([0])


def test_frames_budget_sampling_and_decoders(dataset):
    for w, h in [(1920, 1080), (112, 84), (30, 500)]:
        nw, nh = fit_pixels(w, h, 256 * 28 * 28)
        assert nw % 28 == 0 and nh % 28 == 0 and nw * nh <= 256 * 28 * 28
    assert choose_frames(30.0, 300, 1.0, 16) == [0, 30, 60, 90, 120, 150, 180, 210, 240, 270]
    assert len(choose_frames(30.0, 3000, 1.0, 16)) == 16
    video = read_metadata(dataset)[0].video_path
    a, b = decode_frames(video, [0, 3, 7], "decord"), decode_frames(video, [0, 3, 7], "av")
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    with pytest.raises(IndexError, match="beyond"):
        decode_frames(video, [50], "av")


def test_imagery_highlight_and_small_mask_rejection(tmp_path):
    image = Image.new("RGB", (56, 56), (0, 0, 200))
    mask = np.zeros((56, 56), bool)
    mask[10:30, 10:30] = True
    out = np.asarray(highlight(image, mask, 0.4))
    assert tuple(out[20, 20]) == (102, 0, 120)  # 0.6 * (0, 0, 200) + 0.4 * (255, 0, 0)
    assert tuple(out[10, 20]) == (255, 0, 0) and tuple(out[40, 40]) == (0, 0, 200)  # contour, background
    frames = tmp_path / "frames" / "c"
    frames.mkdir(parents=True)
    for i in range(3):
        image.save(frames / f"{i}.jpg")
    clip = {"clip_id": "c", "files": ["0.jpg", "1.jpg", "2.jpg"], "timestamps": [0, 1, 2]}
    masks = np.zeros((3, 56, 56), np.uint8)
    masks[:, 10:30, 10:30] = 1
    masks[1] = 0
    masks[1, 0, 0] = 1  # 1 pixel = 0.03 % < 0.1 %: rejected
    qa = {"qa_id": "q", "segment": [0, 2], "subject": {"obj_id": 1, "name": "ball"}}
    from datagen.imagery import ImageryConfig

    entry = render_question(qa, tmp_path / "frames", clip, masks, [{"obj_id": 1, "name": "ball"}], tmp_path / "img",
                            ImageryConfig())
    assert entry["frames"] == [0, 2] and len(list((tmp_path / "img").glob("*.jpg"))) == 2
    masks[2] = 0
    assert render_question(qa, tmp_path / "frames", clip, masks, [{"obj_id": 1, "name": "ball"}], tmp_path / "x",
                           ImageryConfig()) is None


def test_exr_inverse_depth_round_trip(dataset):
    """SpatialVID stores half-float *inverse* depth in a zip of EXR files (channel Z); we read back metric depth."""
    import zipfile

    OpenEXR = pytest.importorskip("OpenEXR")
    meta = read_metadata(dataset)[0]
    npz = meta.depth_path
    with np.load(npz) as data:
        depth = data["depth"][:2]
    npz.unlink()
    with zipfile.ZipFile(npz.with_suffix(".zip"), "w") as zf:
        for row, d in enumerate(depth):
            path = dataset / f"{row:05d}.exr"
            header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
            OpenEXR.File(header, {"Z": (1.0 / d).astype(np.float16)}).write(str(path))
            zf.write(path, f"{row:05d}.exr")
    restored = meta.annotations().depth([0, 1])
    np.testing.assert_allclose(restored, depth, rtol=2e-3)  # float16 inverse depth: ~3 significant digits


def _corrupt_mp4(tmp_path):
    """A real H.264 mp4 (written with PyAV) and a copy with a zeroed middle (:func:`dg_world.zero_middle`)."""
    import av
    from dg_world import zero_middle

    from datagen.synthetic.video import encode_mp4

    frames = np.random.default_rng(0).integers(0, 255, (30, 64, 64, 3), dtype=np.uint8)
    good, bad = tmp_path / "good.mp4", tmp_path / "bad.mp4"
    encode_mp4(frames, good, fps=10.0)
    bad.write_bytes(good.read_bytes())
    zero_middle(bad)
    with av.open(str(bad)) as container:  # the header still reads fine: loading alone would not notice
        assert container.streams.video[0].frames == 30
    return good, bad


def test_validate_decode_catches_a_corrupt_video_and_a_truncated_jpeg(tmp_path, monkeypatch):
    from PIL import ImageFile

    from datagen.cli import main

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # as lmms-eval sets it at import

    good, bad = _corrupt_mp4(tmp_path)
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (56, 56, 3), dtype=np.uint8)).save(tmp_path / "f.jpg")
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "f.jpg").read_bytes()[:-200])
    rl = {"text_input": "Q?\nA. x\nB. y", "answer": "A"}
    path = tmp_path / "rl.jsonl"
    path.write_text("".join(json.dumps(dict(rl, **media)) + "\n" for media in (
        {"video": "good.mp4"}, {"video": "bad.mp4"}, {"image_input": ["f.jpg", "cut.jpg"]}, {"image_input": ["f.jpg"]})))
    assert validate_jsonl(path)["checks"]["files_exist"] == {"passed": 4, "failed": 0}  # exists is not enough
    report = validate_jsonl(path, decode=True)
    assert report["checks"]["decodes"] == {"passed": 2, "failed": 2}
    assert report["failures"][0].startswith(f"{path}:2: decodes (bad.mp4 (InvalidDataError")
    assert report["failures"][1].startswith(f"{path}:3: decodes (cut.jpg (OSError: image file is truncated")
    assert main(["validate", str(path)]) == 0
    assert main(["validate", "--decode", str(path)]) == 1
    assert ImageFile.LOAD_TRUNCATED_IMAGES  # restored
