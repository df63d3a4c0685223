"""Benchmark loaders and per-group aggregation, without lmms-eval."""

from __future__ import annotations

import numpy as np
import pytest

from lmms_eval_dsr.benchmarks import (
    BenchmarkDataError,
    BenchmarkNotFoundError,
    load_dsr_bench,
    list_frames,
    load_dyn_bench,
    normalize_answer,
    normalize_options,
)
from lmms_eval_dsr.scoring import (
    DSR_TYPE_NAMES,
    accuracy,
    group_accuracy,
    macro_accuracy,
)

LETTERED = ["A. left", "B. right"]


@pytest.mark.parametrize(
    "value",
    [LETTERED, np.array(LETTERED), "['A. left', 'B. right']", "A. left\nB. right", ["left", "right"]],
)
def test_options_in_every_stored_form(value) -> None:
    assert normalize_options(value, "f row 0") == LETTERED


def test_bad_rows_name_file_row_and_field() -> None:
    with pytest.raises(BenchmarkDataError, match=r"bench.parquet row 3: field `options`"):
        normalize_options("['A. x', ", "bench.parquet row 3")
    with pytest.raises(BenchmarkDataError, match=r"row 2: field `answer` must be one of the option letters AB"):
        normalize_answer("C", LETTERED, "row 2")
    assert normalize_answer("(b)", LETTERED, "row 0") == "B"


def test_dsr_loader(dsr_root) -> None:
    loaded = load_dsr_bench(dsr_root)
    assert [r["question_id"] for r in loaded.rows] == [0, 1, 2, 3, 4]
    assert loaded.missing_media == ["5 missing"]  # "<question id> <videoID>"
    assert loaded.rows[1]["options"][1] == "B. farther" and loaded.rows[3]["type"] == "cam_pan"
    assert loaded.rows[2]["type"] == "rel_dir"  # " Rel_Dir " normalised as the release does (strip, lower)
    assert loaded.rows[2]["video_id"] == "v1"


def test_dsr_loader_skips_undecodable_videos(dsr_root) -> None:
    (dsr_root / "v1.mp4").write_bytes(b"this is not an mp4")
    loaded = load_dsr_bench(dsr_root)
    assert [r["question_id"] for r in loaded.rows] == [0, 1, 4]
    assert loaded.missing_media == ["2 v1", "3 v1", "5 missing"] and loaded.undecodable == ["v1"]


def test_dsr_loader_errors(dsr_root, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("DSR_BENCH_ROOT", raising=False)
    with pytest.raises(BenchmarkNotFoundError, match="set DSR_BENCH_ROOT"):
        load_dsr_bench()
    with pytest.raises(BenchmarkNotFoundError, match="None of the 6 DSR-Bench videos was found"):
        load_dsr_bench(dsr_root, video_root=tmp_path)
    import pandas as pd

    pd.DataFrame({"videoID": ["v0"], "question": ["q"]}).to_parquet(tmp_path / "benchmark.parquet")
    with pytest.raises(BenchmarkDataError, match=r"missing column\(s\) \['options', 'answer'\]"):
        load_dsr_bench(tmp_path)


def test_dyn_loader(dyn_root) -> None:
    loaded = load_dyn_bench(dyn_root)
    assert [r["category"] for r in loaded.rows] == ["Camera-Object"] * 2 + ["Inter-Object"] + ["Object-Scene"] * 3
    assert loaded.missing_media == ["src/s1/qa/0"]
    assert loaded.rows[2]["options"] == ["A. x", "B. y", "C. z"]


def test_dyn_frames_are_picked_as_dyn_bench_picks_them(tmp_path) -> None:
    """frame_*.jpg first (other images beside them are not frames), then frame_*.png, *.jpg, *.png (utils/load_tasks.py)."""
    for name in ("frame_0001.jpg", "frame_0000.jpg", "mask_0000.png", "thumbnail.jpg", "frame_0000.png"):
        (tmp_path / name).write_bytes(b"")
    assert [p.rsplit("/", 1)[-1] for p in list_frames(tmp_path)] == ["frame_0000.jpg", "frame_0001.jpg"]
    for name in ("frame_0000.jpg", "frame_0001.jpg"):
        (tmp_path / name).unlink()
    assert [p.rsplit("/", 1)[-1] for p in list_frames(tmp_path)] == ["frame_0000.png"]
    (tmp_path / "frame_0000.png").unlink()
    assert [p.rsplit("/", 1)[-1] for p in list_frames(tmp_path)] == ["thumbnail.jpg"]
    assert list_frames(tmp_path / "absent") == []


def test_dyn_loader_needs_layout(tmp_path) -> None:
    with pytest.raises(BenchmarkNotFoundError, match="multi_json"):
        load_dyn_bench(tmp_path)


def test_per_type_aggregation_by_hand() -> None:
    records = [
        {"group": g, "correct": c, "responses": 1}
        for g, c in [("rel_dir", 1), ("abs_dis", 1), ("abs_dis", 0), ("abs_dis", 0), ("cam_tilt", 1), ("non_temp", 0)]
    ]
    assert accuracy(records) == pytest.approx(0.5)
    per_type = group_accuracy(records, DSR_TYPE_NAMES)
    assert list(per_type) == ["Abs Dis", "Rel Dir", "Non-Temp Based", "cam_tilt"]  # paper order, then unknown keys
    assert per_type["Abs Dis"] == pytest.approx(1 / 3)
    assert macro_accuracy(records) == pytest.approx((1 / 3 + 1 + 0 + 1) / 4)
    repeated = [{"group": "x", "correct": 1, "responses": 4}, {"group": "x", "correct": 4, "responses": 4}]
    assert accuracy(repeated) == pytest.approx((0.25 + 1) / 2)  # each question weighs one, whatever its repeats
    with pytest.raises(ValueError):
        accuracy([])
