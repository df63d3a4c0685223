"""Record loading and validation, visual decoding (no model needed)."""

from __future__ import annotations

import json
import logging

import datasets
import numpy as np
import pytest
from dift_data import dift_record, write_image, write_jsonl, write_video

from trl_latent.data import (
    FOUR_D_PROMPT_SUFFIX,
    DataRecordError,
    VisualOptions,
    _picked,
    build_prompt,
    first_frame_rows,
    load_records,
    load_visual,
    sample_indices,
)


def test_jsonl_records_are_normalised_with_absolute_paths(tmp_path):
    path = write_jsonl(tmp_path / "data" / "train.jsonl", [dift_record(tmp_path / "data", i) for i in range(2)])
    records = load_records(path)
    assert len(records) == 2
    first = records[0]
    assert first["source"] == f"{path}:1"
    assert first["frames"][0] == str(tmp_path / "data" / "s0" / "frame0.png")
    assert first["image"] == "" and first["video"] == ""
    assert first["prompt"].startswith("Which way does object 0 move?\n") and first["prompt"].endswith(FOUR_D_PROMPT_SUFFIX)
    assert len(first["image_output"]) == 2 and first["text_output"].count("<output_image>") == 2


def test_prompt_suffix_is_not_added_twice():
    once = build_prompt("Q?")
    assert build_prompt(once) == once


def test_single_image_and_video_inputs(tmp_path):
    image_record = dift_record(tmp_path, 0, num_frames=1)
    image_record["image_input"] = image_record["image_input"][0]
    video_record = dift_record(tmp_path, 1, video=True)
    records = load_records(write_jsonl(tmp_path / "d.jsonl", [image_record, video_record]))
    assert records[0]["image"].endswith("frame0.png") and records[0]["frames"] == []
    assert records[1]["video"].endswith("clip.mp4")


@pytest.mark.parametrize(
    ("edit", "field", "needle"),
    [
        (lambda r: r["image_output"].pop(), "image_output", "1 imagery images but text_output has 2"),
        (lambda r: r.__setitem__("image_output", ["s0/nope.png", "s0/imagery1.png"]), "image_output[0]", "not found"),
        (lambda r: r.pop("text_input"), "text_input", "missing"),
        (lambda r: r.__setitem__("video", "s0/clip.mp4"), "image_input/video", "exactly one"),
    ],
)
def test_bad_records_name_file_line_and_field(tmp_path, edit, field, needle):
    records = [dift_record(tmp_path, 0), dift_record(tmp_path, 0)]
    edit(records[1])
    path = write_jsonl(tmp_path / "d.jsonl", records)
    with pytest.raises(DataRecordError) as info:
        load_records(path)
    assert info.value.source == f"{path.resolve()}:2" and info.value.field == field
    assert needle in str(info.value) and "d.jsonl:2" in str(info.value)


def test_unreadable_image_and_video_are_reported(tmp_path):
    bad_image = dift_record(tmp_path, 0)
    (tmp_path / "s0" / "imagery1.png").write_bytes(b"not a png")
    bad_video = dift_record(tmp_path, 1, video=True)
    (tmp_path / "s1" / "clip.mp4").write_bytes(b"garbage")
    path = write_jsonl(tmp_path / "d.jsonl", [bad_image, bad_video])
    with pytest.raises(DataRecordError, match=r"d\.jsonl:1: field 'image_output\[1\]': unreadable image"):
        load_records(path)
    path = write_jsonl(tmp_path / "v.jsonl", [bad_video])
    with pytest.raises(DataRecordError, match=r"v\.jsonl:1: field 'video': unreadable video"):
        load_records(path)


def test_invalid_json_line_is_reported(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(dift_record(tmp_path, 0)) + "\n{oops\n")
    with pytest.raises(DataRecordError, match=r"d\.jsonl:2: field '<line>': not valid JSON"):
        load_records(path)


def test_skip_invalid_drops_and_logs_the_count(tmp_path, caplog):
    good, bad = dift_record(tmp_path, 0), dift_record(tmp_path, 1)
    bad["image_output"].pop()
    path = write_jsonl(tmp_path / "d.jsonl", [good, bad, good])
    with caplog.at_level(logging.WARNING, logger="trl_latent.data"):
        records = load_records(path, skip_invalid=True)
    assert len(records) == 2
    assert "skipped 1 invalid of 3 samples" in caplog.text and "d.jsonl:2" in caplog.text


def test_rl_records_and_hf_datasets_sources(tmp_path):
    import datasets

    rows = [{"video": "s0/clip.mp4", "text_input": "Q?\nA. x\nB. y", "answer": "B", "type": "abs_dir"},
            {"image_input": ["s0/f.png"], "text_input": "How far?", "answer": 3.5}]
    write_video(tmp_path / "s0" / "clip.mp4")
    write_image(tmp_path / "s0" / "f.png", seed=0)
    jsonl = load_records(write_jsonl(tmp_path / "rl.jsonl", rows), task="rl")
    assert jsonl["answer"] == ["B", "3.5"] and jsonl["type"] == ["abs_dir", ""]
    columns = ("video", "image_input", "text_input", "answer", "type")  # from_list would keep the first row's keys only
    table = datasets.Dataset.from_list([{c: r.get(c) for c in columns} | {"answer": str(r["answer"])} for r in rows])
    table.to_parquet(str(tmp_path / "rl.parquet"))
    table.save_to_disk(str(tmp_path / "saved"))
    for source in (tmp_path / "rl.parquet", tmp_path / "saved"):
        # the saved folder is the base of relative paths: copy the media next to it
        base = source if source.is_dir() else source.parent
        write_video(base / "s0" / "clip.mp4")
        write_image(base / "s0" / "f.png", seed=0)
        records = load_records(source, task="rl")
        assert records["answer"] == ["B", "3.5"] and records["source"][1].endswith(":row 1")
    bad = [{"video": "s0/clip.mp4", "text_input": "Q?"}]
    with pytest.raises(DataRecordError, match="field 'answer'"):
        load_records(write_jsonl(tmp_path / "bad.jsonl", bad), task="rl")


def test_frame_list_visual_is_a_budgeted_video_with_real_fps(tmp_path):
    record = load_records(write_jsonl(tmp_path / "d.jsonl", [dift_record(tmp_path, 0, num_frames=6)]))[0]
    visual = load_visual(record, VisualOptions(fps=1.0, max_frames=3, min_pixels=784, max_pixels=28 * 28 * 2))
    assert visual.is_video and visual.frames.shape == (3, 28, 28, 3) and visual.frames.dtype == np.uint8
    assert visual.fps == pytest.approx(0.5)  # 3 frames spread over 6 seconds
    assert visual.video_metadata == {"fps": pytest.approx(0.5), "total_num_frames": 3, "frames_indices": [0, 1, 2]}


def test_video_file_is_decoded_at_the_requested_fps(tmp_path):
    record = load_records(write_jsonl(tmp_path / "d.jsonl", [dift_record(tmp_path, 0, video=True)]))[0]
    visual = load_visual(record, VisualOptions(fps=2.0, max_frames=50, max_pixels=56 * 56))
    assert visual.frames.shape == (4, 56, 56, 3)  # 8 frames at 4 fps = 2 s -> 4 frames at 2 fps
    assert visual.fps == pytest.approx(2.0)


def test_av_fallback_matches_decord(tmp_path):
    from trl_latent.data import _decode_av, _decode_decord

    path = str(write_video(tmp_path / "clip.mp4", num_frames=8, fps=4))
    frames_decord, rate_decord = _decode_decord(path, 2.0, 50)
    frames_av, rate_av = _decode_av(path, 2.0, 50)
    assert rate_decord == rate_av and frames_decord.shape == frames_av.shape
    assert np.abs(frames_decord.astype(int) - frames_av.astype(int)).mean() < 2


def test_sample_indices_caps_frames_uniformly():
    indices, rate = sample_indices(total=100, native_fps=10.0, fps=1.0, max_frames=5)
    assert indices == [0, 20, 40, 70, 90] and rate == pytest.approx(0.5)


@pytest.mark.parametrize(("answer", "question", "needle"), [
    ("E", "Q?\nA. left\nB. right", r"'E' is not among the options of text_input \(A, B\)"),
    ("B", "Which way?", r"'B' is not among the options of text_input \(no 'A. …' option lines\)"),
    ("left", "Q?\nA. left\nB. right", "'left' is neither a number nor an option letter"),
])
def test_rl_answer_outside_the_options_names_file_and_line(tmp_path, answer, question, needle):
    write_image(tmp_path / "f.png", seed=0)
    good = {"image_input": "f.png", "text_input": "Q?\nA. left\n(B) right", "answer": "b"}
    path = write_jsonl(tmp_path / "rl.jsonl", [good, {**good, "text_input": question, "answer": answer}])
    assert load_records(path, task="rl", skip_invalid=True)["answer"] == ["b"]  # skipped like any invalid record
    with pytest.raises(DataRecordError, match=rf"rl\.jsonl:2: field 'answer': {needle}"):
        load_records(path, task="rl")


def test_datasets_folders_honour_split_and_config(tmp_path):
    import datasets

    write_image(tmp_path / "s0" / "f.png", seed=0)
    rows = {"image_input": ["s0/f.png"], "text_input": ["Q?\nA. x\nB. y"], "answer": ["A"]}
    datasets.DatasetDict({"dift": datasets.Dataset.from_dict(rows)}).save_to_disk(str(tmp_path / "saved"))
    write_image(tmp_path / "saved" / "s0" / "f.png", seed=0)
    with pytest.raises(ValueError, match=r"no split 'train' \(splits: \['dift'\]\); choose one with --dataset_train_split"):
        load_records(tmp_path / "saved", task="rl")
    assert load_records(tmp_path / "saved", task="rl", split="dift")["answer"] == ["A"]

    # a folder of data files with a README naming its configurations, as load_dataset reads it
    write_jsonl(tmp_path / "rl.jsonl", [{"image_input": "s0/f.png", "text_input": "Q?\nA. x\nB. y", "answer": "B"}])
    (tmp_path / "validation.json").write_text("{}")  # a report next to the data is no split
    (tmp_path / "README.md").write_text("---\nconfigs:\n- config_name: rl\n  data_files:\n  - split: train\n"
                                        "    path: rl.jsonl\n---\n")
    records = load_records(tmp_path, task="rl", config="rl")
    assert records["answer"] == ["B"] and records["image"] == [str(tmp_path / "s0" / "f.png")]


def test_first_frame_rows_pick_the_same_rows_wherever_the_file_lies(tmp_path):
    """``first_frame_share``: picked frame-list rows become their first frame, a still image; the pick depends on the
    file's name and line only (the same rows from another folder); one-image rows stay; a picked video row is refused
    by file and line; about ``share`` of many rows are picked."""
    rows = [dift_record(tmp_path, i, num_imagery=1, num_frames=2) for i in range(12)]
    rows[3]["image_input"] = rows[3]["image_input"][0]  # already one image
    share = 0.5
    picked = [_picked(f"{tmp_path}/train.jsonl:{n}", share) for n in range(1, 13)]
    assert 0 < sum(picked) < 12
    records = load_records(write_jsonl(tmp_path / "train.jsonl", rows))
    cut, count = first_frame_rows(records, share)
    assert count == sum(p for n, p in enumerate(picked) if n != 3)
    for n, (before, after) in enumerate(zip(records, cut)):
        if picked[n] and before["frames"]:
            assert (after["image"], after["frames"]) == (before["frames"][0], [])
        else:
            assert after == before, n
    moved = tmp_path / "elsewhere"  # the same file name and lines in another folder: the same rows
    for n in range(12):
        (moved / f"s{n}").mkdir(parents=True)
        for item in (tmp_path / f"s{n}").iterdir():
            (moved / f"s{n}" / item.name).write_bytes(item.read_bytes())
    again, _ = first_frame_rows(load_records(write_jsonl(moved / "train.jsonl", rows)), share)
    assert [bool(r["image"]) for r in again] == [bool(r["image"]) for r in cut]
    assert 0.15 < np.mean([_picked(f"any/data.jsonl:{n}", 0.2) for n in range(1, 2001)]) < 0.25

    first = picked.index(True) + 1
    rows[first - 1] = dift_record(tmp_path, 99, num_imagery=1, video=True)
    with pytest.raises(DataRecordError, match=rf"train.jsonl:{first}: field 'video'"):
        first_frame_rows(load_records(write_jsonl(tmp_path / "train.jsonl", rows)), share)
    with pytest.raises(ValueError, match=r"first_frame_share must be in \[0, 1\)"):
        first_frame_rows(records, 1.0)
    with pytest.raises(ValueError, match="lacks"):
        first_frame_rows(datasets.Dataset.from_list([{"prompt": "x"}]), share)
