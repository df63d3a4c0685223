"""Frame rules of the protocols, checked against their references: qwen-vl-utils' own ``fetch_video`` (which the DSR
Suite wrapper calls) for ``official``, and the 4DThinker release's index arithmetic, worked by hand, for ``4dthinker``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lmms_eval_dsr.media import (
    UndecodableVideoError,
    probe_video,
    qwen_frame_count,
    qwen_pixel_cap,
    read_frames,
    read_video,
    read_video_qwen,
    read_video_release,
)
from lmms_eval_dsr.visuals import RULES

from .conftest import write_video


def write_counter_video(path: Path, num_frames: int, fps: int, size: int = 64) -> None:
    """Frame t is a flat grey of brightness 5·t, so a sampled frame tells its index (lossless FFV1 in Matroska)."""
    import av

    with av.open(str(path), mode="w", format="matroska") as container:
        stream = container.add_stream("ffv1", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv444p"
        for t in range(num_frames):
            frame = np.full((size, size, 3), 5 * t, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def indices_of(frames: np.ndarray) -> list[int]:
    return [round(float(f.mean()) / 5) for f in frames]


@pytest.mark.parametrize(("num_frames", "fps"), [(8, 4), (41, 10), (200, 30)])
def test_official_rule_matches_qwen_vl_utils(tmp_path, num_frames, fps) -> None:
    vision = pytest.importorskip("qwen_vl_utils.vision_process")
    path = tmp_path / "v.mp4"
    write_video(path, num_frames=num_frames, fps=fps, size=100)
    ours = read_video_qwen(path, **RULES["qwen"])
    ele = {"type": "video", "video": f"file://{path}", **RULES["qwen"]}
    theirs, sample_fps = vision.fetch_video(ele, image_patch_size=14, return_video_sample_fps=True)
    assert ours.frames.shape[0] == theirs.shape[0] == qwen_frame_count(num_frames, fps)
    assert ours.frames.shape[1:3] == tuple(theirs.shape[2:4])  # the same 28-multiple size
    # DSR Suite calls the processor without `fps`, so the model is told 2.0 fps whatever rate was sampled
    # (qwen-vl-utils reports 8 / 41 · 10 = 1.95 and 12 / 200 · 30 = 1.8 for the last two videos)
    assert ours.fps == 2.0 and (sample_fps == pytest.approx(2.0)) == (num_frames == 8)


def test_release_rule_by_hand(tmp_path) -> None:
    path = tmp_path / "v.mp4"
    write_counter_video(path, num_frames=40, fps=4)  # 10 s
    every_second = read_video_release(path, fps=1.0, max_frames=50)
    assert indices_of(every_second.frames) == [0, 4, 8, 12, 16, 20, 24, 28, 32, 36] and every_second.fps == 1.0
    capped = read_video_release(path, fps=1.0, max_frames=4)
    # np.linspace(0, 9, 4, dtype=int) floors to [0, 3, 6, 9]; the declared rate stays 1 fps
    assert indices_of(capped.frames) == [0, 12, 24, 36] and capped.fps == 1.0
    ours = read_video(path, fps=1.0, max_frames=4)  # ours rounds the cap and declares the delivered rate
    assert indices_of(ours.frames) == [0, 12, 24, 36] and ours.fps == pytest.approx(0.4)


def test_release_rule_shrinks_large_frames(tmp_path) -> None:
    path = tmp_path / "v.mp4"
    write_counter_video(path, num_frames=4, fps=2, size=640)
    video = read_video_release(path, max_pixels=256 * 28 * 28)
    height, width = video.frames.shape[1:3]
    assert height % 28 == width % 28 == 0 and height * width <= 256 * 28 * 28 and height == width == 448  # int(640 · 0.7) = 448


def test_undecodable_files(tmp_path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really")
    with pytest.raises(UndecodableVideoError, match="broken.mp4 cannot be decoded"):
        probe_video(broken)
    with pytest.raises(UndecodableVideoError):
        read_video_qwen(broken)
    with pytest.raises(FileNotFoundError):
        read_video(tmp_path / "absent.mp4")


def test_a_container_that_over_reports_its_frames_is_sampled_on_the_frames_that_decode(tmp_path, monkeypatch) -> None:
    from lmms_eval_dsr import media

    path = tmp_path / "v.mkv"
    write_counter_video(path, num_frames=40, fps=4)
    honest = read_video_release(path, fps=1.0, max_frames=4)
    real = media._stream_info
    monkeypatch.setattr(media, "_stream_info", lambda p: (real(p)[0] + 8, real(p)[1]))  # claims 48 frames
    assert indices_of(read_video_release(path, fps=1.0, max_frames=4).frames) == indices_of(honest.frames)


def test_dyn_official_frames_are_sized_as_qwen_vl_utils_sizes_a_frame_list(tmp_path) -> None:
    """Dyn-Bench hands qwen-vl-utils a list of frames: an odd count is padded with the last frame and every frame is
    capped at ``qwen_pixel_cap`` of the padded count; its default total budget binds above 300 frames."""
    vision = pytest.importorskip("qwen_vl_utils.vision_process")
    from PIL import Image

    from lmms_eval_dsr.tasks.dyn_bench.utils import dyn_doc_to_visual_official

    paths = []
    for t in range(3):
        paths.append(tmp_path / f"frame_{t:04d}.jpg")
        Image.fromarray(np.full((448, 448, 3), 40 * t, dtype=np.uint8)).save(paths[-1])
    total = 300 * 28 * 28  # a budget small enough to bind at 3 (→ 4) frames
    theirs = vision.fetch_video({"type": "video", "video": [str(p) for p in paths], "total_pixels": total})
    cap = qwen_pixel_cap(4, 128 * 28 * 28, total_pixels=total)
    ours = read_frames([str(p) for p in paths], 2.0, 3).fitted(128 * 28 * 28, cap)
    assert theirs.shape[0] == 4 and ours.frames.shape[1:3] == tuple(theirs.shape[2:4]) == (336, 336)
    # at the default budget: no cap up to 300 frames, then a shrinking one
    assert qwen_pixel_cap(300) == 768 * 28 * 28 and qwen_pixel_cap(302) == int(0.9 * 128000 * 28 * 28 / 302 * 2)
    for count, expected in ((300, 768 * 28 * 28), (301, qwen_pixel_cap(302))):
        scene = tmp_path / f"scene{count}"
        scene.mkdir()
        for t in range(count):
            (scene / f"frame_{t:04d}.jpg").touch()
        (video,) = dyn_doc_to_visual_official({"frames_dir": str(scene)})
        assert len(video["frames"]) == count and video["pixels"] == [128 * 28 * 28, expected]
