import csv
import json
import time

import av
import numpy as np
import pytest

from datagen.synthetic import (
    METADATA_COLUMNS,
    SynthConfig,
    camera_motion_tags,
    clip_paths,
    decode_pose,
    render_clip,
    sample_scene,
    write_dataset,
)

OPTIONS = {"width": 64, "height": 48, "num_frames": 8, "fps": 2.0}


def _rows(metadata) -> list[dict[str, str]]:
    with open(metadata, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    start = time.perf_counter()
    metadata = write_dataset(root, 4, seed=7, progress=False, **OPTIONS)
    elapsed = time.perf_counter() - start
    print(f"\nsynthetic writer: {4 / elapsed:.1f} clips/s at 64x48x8 (one process)")
    return root, metadata


def _load_clip(root, row):
    paths = clip_paths(root, row["id"], row["group_id"])
    with np.load(paths["depth"]) as z:
        depth = z["depth"]
    with np.load(paths["masks"]) as z:
        masks = z["masks"]
    return paths, depth, masks


def test_layout_loads_back_with_the_contract_shapes(dataset):
    root, metadata = dataset
    rows = _rows(metadata)
    assert [r["id"] for r in rows] == [f"synth_{i:06d}" for i in range(4)]
    assert tuple(rows[0]) == METADATA_COLUMNS
    config = SynthConfig(**OPTIONS)
    for index, row in enumerate(rows):
        n, h, w = int(row["num_frames"]), int(row["height"]), int(row["width"])
        assert (n, h, w, float(row["fps"])) == (8, 48, 64, 2.0)
        paths, depth, masks = _load_clip(root, row)
        assert paths["video"] == root / row["video_path"]
        objects = json.loads(paths["objects"].read_text())
        assert row["objects"].split(";") == [o["name"] for o in objects]
        assert all(o["name"] in row["caption"] for o in objects)
        assert {"obj_id", "name", "shape", "color", "size", "moving"} <= set(objects[0])
        poses, intr, tracks = (np.load(paths[k]) for k in ("poses", "intrinsics", "tracks"))
        assert poses.shape == (n, 7) and intr.shape == (n, 4) and tracks.shape == (n, len(objects), 3)
        assert depth.shape == (n, h, w) and depth.dtype == np.float32
        assert masks.shape == (n, h, w) and masks.dtype == np.uint8
        assert set(np.unique(masks)) <= {0} | {o["obj_id"] for o in objects}
        assert paths["indexes"].read_text().splitlines() == [f"{i} {i}" for i in range(n)]
        # The files hold the scene the seed describes.
        scene = sample_scene(config, [7, index])
        np.testing.assert_array_equal(tracks, scene.tracks())
        _, ref_depth, ref_masks = render_clip(scene)
        np.testing.assert_array_equal(masks, ref_masks)
        np.testing.assert_array_equal(depth, ref_depth)
        cam = scene.camera
        np.testing.assert_allclose(intr[0], [cam.fx / w, cam.fy / h, 0.5, 0.5])
        for i in (0, n - 1):
            r_wc, t = decode_pose(poses[i])
            np.testing.assert_allclose(tracks[i] @ r_wc.T + t, cam.to_camera(tracks[i], i), atol=1e-9)


def test_video_decodes_to_the_rendered_frames(dataset):
    root, metadata = dataset
    row = _rows(metadata)[1]
    with av.open(str(root / row["video_path"])) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == int(row["num_frames"])
    assert frames[0].shape == (int(row["height"]), int(row["width"]), 3)
    rgb, _, _ = render_clip(sample_scene(SynthConfig(**OPTIONS), [7, 1]))
    error = np.abs(np.stack(frames).astype(float) - rgb).mean()
    assert error < 6.0, error  # lossy yuv420p, but the same pictures


def test_rerun_skips_finished_clips_and_restores_missing_ones(dataset):
    root, metadata = dataset
    rows = _rows(metadata)
    done = clip_paths(root, rows[0]["id"], rows[0]["group_id"])
    lost = clip_paths(root, rows[2]["id"], rows[2]["group_id"])
    stamp = done["video"].stat().st_mtime_ns
    before = lost["masks"].read_bytes(), lost["video"].read_bytes()
    lost["video"].unlink()
    lost["masks"].unlink()
    again = write_dataset(root, 5, seed=7, progress=False, **OPTIONS)
    assert done["video"].stat().st_mtime_ns == stamp
    assert (lost["masks"].read_bytes(), lost["video"].read_bytes()) == before  # byte-identical rewrite
    assert [r["id"] for r in _rows(again)] == [f"synth_{i:06d}" for i in range(5)]
    assert not list(root.rglob(".*tmp-*"))


def test_rerun_with_other_options_is_refused(dataset):
    root, _ = dataset
    with pytest.raises(ValueError, match="other options"):
        write_dataset(root, 2, seed=7, progress=False, **{**OPTIONS, "fps": 3.0})
    with pytest.raises(ValueError, match="other options"):
        write_dataset(root, 2, seed=8, progress=False, **OPTIONS)
    with pytest.raises(ValueError):
        write_dataset(root, 0, seed=7, progress=False, **OPTIONS)


def test_parallel_workers_write_the_same_bytes(dataset, tmp_path):
    root, _ = dataset
    metadata = write_dataset(tmp_path, 2, seed=7, workers=2, progress=False, **OPTIONS)
    for row in _rows(metadata):
        mine = clip_paths(tmp_path, row["id"], row["group_id"])
        ref = clip_paths(root, row["id"], row["group_id"])
        for key in ("poses", "tracks", "masks", "depth", "objects", "video"):
            assert mine[key].read_bytes() == ref[key].read_bytes(), key


def test_datagen_layout_reader_reads_what_the_writer_wrote(dataset):
    """The contract from the reading side: datagen.layout sees the same camera, depth and ground truth."""
    from datagen.layout import read_metadata

    root, _ = dataset
    clips = read_metadata(root)
    assert [c.id for c in clips][:4] == [f"synth_{i:06d}" for i in range(4)]
    clip = clips[3]
    ann = clip.annotations()
    scene = sample_scene(SynthConfig(**OPTIONS), [7, 3])
    assert clip.video_path.exists() and ann.has_gt
    np.testing.assert_allclose(ann.poses_c2w[:, :3, 3], scene.camera.positions, atol=1e-9)
    np.testing.assert_allclose(ann.poses_c2w[-1, :3, :3], scene.camera.cam_to_world(scene.num_frames - 1), atol=1e-9)
    np.testing.assert_allclose(ann.k(0, clip.width, clip.height), scene.camera.K, atol=1e-9)
    _, depth, masks = render_clip(scene)
    np.testing.assert_array_equal(ann.depth(np.arange(scene.num_frames)), depth)
    np.testing.assert_array_equal(ann.gt_masks, masks)
    np.testing.assert_array_equal(ann.gt_tracks, scene.tracks())
    assert clip.motion_tags == camera_motion_tags(scene.camera)
    assert clip.objects == [o.name for o in scene.objects]
