"""Perception pretraining: its dense targets against the synthetic world's known motion and transformers' own patch
order, and the per-machine cache of pretrained towers."""

import json

import numpy as np
import pytest
import torch

from datagen.layout import read_metadata
from datagen.synthetic import write_dataset
from trl_latent.quickstart import perception
from trl_latent.quickstart.perception import COLOR_NAMES, PerceptionSettings, cached_tower, clip_targets
from trl_latent.testing import build_processor

FLOW_SIGN = {  # (target column, sign of its clip mean): what each camera move does to the image
    "Truck Right": (0, -1), "Truck Left": (0, 1), "Pan Right": (0, -1), "Pan Left": (0, 1),
    "Pedestal Down": (1, -1), "Pedestal Up": (1, 1), "Tilt Down": (1, -1), "Tilt Up": (1, 1),
    "Dolly In": (3, -1), "Dolly Out": (3, 1),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    write_dataset(root, 16, seed=3, progress=False, width=56, height=56, num_frames=4, fps=2.0, p_static_camera=0.0,
                  max_camera_moves=1)
    return root


def test_flow_targets_follow_the_camera_move(world):
    checked = 0
    for meta in read_metadata(world):
        if len(meta.motion_tags) != 1 or meta.motion_tags[0] not in FLOW_SIGN:
            continue
        column, sign = FLOW_SIGN[meta.motion_tags[0]]
        targets = clip_targets(meta, [0, 1, 2, 3])
        assert targets.shape == (2 * 2 * 2, 4, len(COLOR_NAMES) + 4)  # 2 temporal patches x 2x2 merged tokens
        mean = targets[..., len(COLOR_NAMES) + column].mean()
        assert np.sign(mean) == sign, (meta.id, meta.motion_tags, mean)
        checked += 1
    assert checked >= 6


def test_presence_is_each_colours_share_of_the_patch(world):
    meta = read_metadata(world)[0]
    targets = clip_targets(meta, [0, 1, 2, 3])
    ann = meta.annotations()
    masks = ann.gt_masks[[0, 1]]
    for obj in ann.gt_objects:
        share = (masks == obj["obj_id"]).mean()  # the whole first temporal patch: 4 tokens x 4 patches
        column = COLOR_NAMES.index(obj["color"])
        assert targets[:4, :, column].mean() == pytest.approx(share, abs=1e-6)


def test_targets_are_in_the_processors_patch_order():
    """Tag every 14x14 patch of a video with its (time, row, column) and read the tags back from transformers'
    own video processor output: our target layout must name the same patch at every position."""
    frames, height, width = 4, 56, 84
    video = np.zeros((frames, height, width, 3), dtype=np.uint8)
    for t in range(frames):
        for r in range(height // 14):
            for c in range(width // 14):
                video[t, r * 14 : (r + 1) * 14, c * 14 : (c + 1) * 14] = (t // 2 * 40, r * 40, c * 40)
    processor = build_processor(max_pixels=height * width)
    out = processor.video_processor(videos=[video], size={"shortest_edge": 784, "longest_edge": height * width},
                                    cap_pixels_per_frame=True, do_normalize=False, do_rescale=False,
                                    video_metadata=[{"fps": 2.0, "total_num_frames": frames}], return_tensors="pt")
    # each row: 3 channels x 2 frames x 14 x 14, channels outermost; the first value of each channel is the tag
    tags = out["pixel_values_videos"].view(-1, 3, 2 * 14 * 14)[:, :, 0].round().long() // 40
    grid = np.stack(np.meshgrid(np.arange(2), np.arange(height // 14), np.arange(width // 14), indexing="ij"), -1)
    expected = perception._merged_order(grid).reshape(-1, 3)
    assert torch.equal(tags, torch.from_numpy(expected))


def test_a_pretrained_tower_is_cached_by_its_settings(tmp_path, monkeypatch):
    options = dict(model_size="tiny", image_size=56, num_frames=4, fps=2.0, clips=3)
    folder = cached_tower(tmp_path, settings=PerceptionSettings(steps=1, batch_size=2), **options)
    log = json.loads((folder / "perception.json").read_text())
    assert log["clips"] == {"train": 2, "heldout": 1} and set(log["heldout"]) >= {"presence_bce", "r2_flow_u"}
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # the build folder and its world are gone

    import datagen.synthetic

    def build_again(*args, **kwargs):
        raise RuntimeError("built again")

    monkeypatch.setattr(datagen.synthetic, "write_dataset", build_again)
    assert cached_tower(tmp_path, settings=PerceptionSettings(steps=1, batch_size=2), **options) == folder
    with pytest.raises(RuntimeError, match="built again"):  # other settings: another tower
        cached_tower(tmp_path, settings=PerceptionSettings(steps=2, batch_size=2), **options)
