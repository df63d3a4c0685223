"""Offline fixture benchmarks in both on-disk formats and a scripted lmms-eval model.

The fixtures are small enough that every expected score in the tests can be worked out by hand.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def write_video(path: Path, num_frames: int = 8, fps: int = 4, size: int = 64) -> None:
    """A tiny mp4 (a bright square moving right) written with PyAV."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for t in range(num_frames):
            image = np.zeros((size, size, 3), dtype=np.uint8)
            x = (t * 6) % (size - 16)
            image[24:40, x : x + 16] = (255, 64, 32)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_frames(folder: Path, num_frames: int = 4, size: int = 56) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for t in range(num_frames):
        image = np.full((size, size, 3), 20 * t, dtype=np.uint8)
        image[10:30, 5 + 5 * t : 25 + 5 * t] = 255
        Image.fromarray(image).save(folder / f"frame_{t:04d}.jpg")


# DSR rows: (videoID, question, options, answer, type). Parquet stores options as a list column, which pandas reads
# back as numpy arrays; string reprs and letter-less options are covered by the loader unit tests.
DSR_ROWS = [
    ("v0", "q0 distance?", ["A. closer", "B. farther", "C. same", "D. unknown"], "A", "abs_dis"),
    ("v0", "q1 distance?", ["A. closer", "B. farther", "C. same", "D. unknown"], "B", "abs_dis"),
    ("v1", "q2 direction?", ["A. left", "B. right", "C. up", "D. down"], "C", " Rel_Dir "),  # normalised
    ("v1", "q3 camera?", ["A. pan left", "B. pan right", "C. tilt up", "D. dolly in"], "D", "cam_pan"),
    ("v2", "q4 other?", ["A. yes", "B. no", "C. maybe", "D. never"], "A", "non_temp"),
    ("missing", "q5 unseen?", ["A. a", "B. b", "C. c", "D. d"], "A", "abs_dis"),
]


@pytest.fixture
def dsr_root(tmp_path: Path) -> Path:
    import pandas as pd

    root = tmp_path / "dsr"
    root.mkdir()
    frame = pd.DataFrame(
        {
            "videoID": [r[0] for r in DSR_ROWS],
            "question": [r[1] for r in DSR_ROWS],
            "options": [r[2] for r in DSR_ROWS],
            "answer": [r[3] for r in DSR_ROWS],
            "type": [r[4] for r in DSR_ROWS],
        }
    )
    frame.to_parquet(root / "benchmark.parquet")
    for video_id in ("v0", "v1", "v2"):
        write_video(root / f"{video_id}.mp4")
    return root


# Dyn-Bench: source "src", scenes "s0" (frames) and "s1" (no frames → skipped).
DYN_QA = {
    ("s0", "cameraqa"): [
        {"question": "c0?", "options": ["A. left", "B. right"], "answer": "A"},
        {"question": "c1?", "options": ["A. left", "B. right"], "answer": "B"},
    ],
    ("s0", "qa"): [{"question": "i0?", "options": ["A. x", "B. y", "C. z"], "answer": "C"}],
    ("s0", "sceneqa"): [
        {"question": "o0?", "options": ["A. near", "B. far"], "answer": "A"},
        {"question": "o1?", "options": ["A. near", "B. far"], "answer": "A"},
        {"question": "o2?", "options": ["A. near", "B. far"], "answer": "B"},
    ],
    ("s1", "qa"): [{"question": "lost?", "options": ["A. x", "B. y"], "answer": "A"}],
}


@pytest.fixture
def dyn_root(tmp_path: Path) -> Path:
    root = tmp_path / "dyn"
    for (scene, suffix), items in DYN_QA.items():
        path = root / "multi_json" / "src" / f"{scene}_{suffix}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(items))
    (root / "multi_json" / "src" / "s0_frame_sampling.json").write_text("{}")
    write_frames(root / "frames" / "src" / "s0")
    return root


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Tiny random Qwen2.5-VL checkpoints saved to disk: one with latent tokens, one stock."""
    from trl_latent.testing import save_tiny_checkpoint

    root = tmp_path_factory.mktemp("ckpt")
    latent, spec = save_tiny_checkpoint(root / "latent", latent_size=4)
    stock, no_spec = save_tiny_checkpoint(root / "stock", latent_size=None)
    assert spec is not None and no_spec is None
    return {"latent": latent, "stock": stock}
