"""``datagen.counterfactual``: each DIFT row gets the same question's imagery from the counterfactual twin's export,
or ``[]``, and the trainers' record loader takes the field."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from PIL import Image

from datagen.counterfactual import COUNTS, attach_counterfactual_imagery, clip_id_of, main

OPTIONS = "\n\nA. left\nB. right\nC. toward\nD. away"


def _jpg(path: Path, shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (shade, 0, 0)).save(path, format="JPEG")


def _row(row_id: str, question: str, answer: str, images: int, tag: str) -> dict:
    """A row as the export writes it; its media live under the export's parent folder, written by :func:`_export`."""
    clip = clip_id_of(row_id)
    return {"id": row_id, "type": "abs_dir",
            "image_input": [f"../frames/{clip}/{i:06d}.jpg" for i in range(2)],
            "text_input": question + OPTIONS,
            "image_output": [f"../imagery/{clip}/{row_id}{tag}_{i}.jpg" for i in range(images)],
            "text_output": f"<think>I picture {' '.join(['<output_image>'] * images)} so {answer}.</think>"
                           f"<answer>{answer}</answer>"}


def _export(data: Path, rows: list[dict]) -> Path:
    """``data/export/dift.jsonl`` with every frame and imagery image it names written as a small JPEG."""
    path = data / "export" / "dift.jsonl"
    for shade, row in enumerate(rows):
        for name in row["image_input"] + row["image_output"]:
            _jpg(path.parent / name, shade)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def exports(tmp_path) -> tuple[Path, Path]:
    """The original export and its twin's, one level deeper (``twin/data/export``) so the rewritten paths differ
    from the twin's own. The clip id ``clip-a`` holds a ``-`` itself, as ids from ``metadata.csv`` may."""
    original = [
        _row("clip-a-obj-000", "Where does the ball go?", "A", 2, ""),       # twin: another answer → paired
        _row("clip-a-obj-001", "Where does the box go?", "B", 2, ""),        # twin: same text → []
        _row("clip-a-obj-002", "Where does the cone go?", "C", 2, ""),       # twin: 3 images → []
        _row("clip-b-obj-000", "Where does the ball go?", "A", 2, ""),       # no twin row of clip-b → []
        _row("clip-a-obj-003", "Where does the cube go?", "D", 2, ""),       # twin has it twice → the first
    ]
    twin = [
        _row("clip-a-obj-004", "Where does the box go?", "B", 2, ""),        # numbers differ between the worlds
        _row("clip-a-obj-000", "Where does the ball go?", "B", 2, ""),
        _row("clip-a-obj-001", "Where does the cone go?", "A", 3, ""),
        _row("clip-a-obj-002", "Where does the cube go?", "A", 2, "first"),
        _row("clip-a-obj-003", "Where does the cube go?", "B", 2, "second"),
        _row("clip-c-obj-000", "Where does the ball go?", "B", 2, ""),
    ]
    return _export(tmp_path / "orig", original), _export(tmp_path / "twin" / "data", twin)


def test_pairs_only_rows_whose_twin_concludes_otherwise_in_place(exports, tmp_path):
    rows_path, twin_path = exports
    before = _rows(rows_path)
    counts = attach_counterfactual_imagery(rows_path, twin_path)
    assert counts == {"rows": 5, "paired": 2, "same_answer": 1, "no_twin_row": 1, "image_count_differs": 1,
                      "twin_duplicates": 1}
    assert list(counts) == list(COUNTS)
    after = _rows(rows_path)
    assert [{k: v for k, v in r.items() if k != "counterfactual_output"} for r in after] == before  # order, fields
    assert [list(r)[-1] for r in after] == ["counterfactual_output"] * 5
    cf = {r["id"]: r["counterfactual_output"] for r in after}
    assert cf["clip-a-obj-000"] == ["../../twin/data/imagery/clip-a/clip-a-obj-000_0.jpg",
                                    "../../twin/data/imagery/clip-a/clip-a-obj-000_1.jpg"]
    assert cf["clip-a-obj-003"] == [f"../../twin/data/imagery/clip-a/clip-a-obj-002first_{i}.jpg" for i in range(2)]
    assert cf["clip-a-obj-001"] == cf["clip-a-obj-002"] == cf["clip-b-obj-000"] == []
    for row in after:
        for rel in row["counterfactual_output"]:
            assert (rows_path.parent / rel).resolve().is_file()
            assert (rows_path.parent / rel).resolve().is_relative_to((tmp_path / "twin").resolve())
    assert sorted(p.name for p in rows_path.parent.iterdir()) == ["dift.jsonl"]  # no temporary file left behind

    first = rows_path.read_bytes()
    assert attach_counterfactual_imagery(rows_path, twin_path) == counts  # a rerun replaces the field
    assert rows_path.read_bytes() == first


def test_out_path_next_to_the_rows_leaves_them_alone(exports):
    rows_path, twin_path = exports
    original = rows_path.read_bytes()
    out = rows_path.with_name("dift_counterfactual.jsonl")
    assert attach_counterfactual_imagery(rows_path, twin_path, out)["paired"] == 2
    assert rows_path.read_bytes() == original
    assert [r["counterfactual_output"] != [] for r in _rows(out)] == [True, False, False, False, True]
    with pytest.raises(ValueError, match="must be in the folder of .*dift.jsonl"):
        attach_counterfactual_imagery(rows_path, twin_path, rows_path.parent.parent / "elsewhere.jsonl")
    with pytest.raises(ValueError, match="is the original export itself"):
        attach_counterfactual_imagery(rows_path, rows_path)


def test_the_record_loader_takes_the_field(exports):
    from trl_latent.data import load_records

    rows_path, twin_path = exports
    attach_counterfactual_imagery(rows_path, twin_path)
    loaded = load_records(rows_path, "dift")
    twin_images = rows_path.parent.parent.parent / "twin" / "data" / "imagery" / "clip-a"
    assert loaded[0]["counterfactual_output"] == [str((twin_images / f"clip-a-obj-000_{i}.jpg").resolve())
                                                  for i in range(2)]
    assert [len(cf) for cf in loaded["counterfactual_output"]] == [2, 0, 0, 0, 2]


@pytest.mark.parametrize("which", ["rows", "twin"])
@pytest.mark.parametrize("bad, message", [
    ("{not json", r":3: invalid JSON"),
    ('["a list"]', r":3: expected a JSON object, got list"),
    ('{"id": "clip-a-obj-009", "text_input": "Q", "image_output": []}', r":3: missing field\(s\) \['text_output'\]"),
    ('{"id": "clip-a-obj-009", "text_input": "Q", "image_output": "x.jpg", "text_output": "T"}',
     r":3: field 'image_output' must be a list of image paths"),
    ('{"id": "nodashes", "text_input": "Q", "image_output": [], "text_output": "T"}',
     r":3: id 'nodashes' is not a datagen question id"),
])
def test_a_bad_line_is_named_by_file_and_line(exports, which, bad, message):
    rows_path, twin_path = exports
    target = rows_path if which == "rows" else twin_path
    lines = target.read_text().splitlines()
    target.write_text("\n".join([lines[0], "", bad, *lines[1:]]) + "\n")  # line 2 blank: numbers count every line
    original = rows_path.read_bytes()
    with pytest.raises(ValueError, match=f"^{re.escape(str(target))}{message}"):
        attach_counterfactual_imagery(rows_path, twin_path)
    assert rows_path.read_bytes() == original


def test_a_missing_twin_image_names_the_row(exports):
    rows_path, twin_path = exports
    original = rows_path.read_bytes()
    missing = twin_path.parent.parent / "imagery" / "clip-a" / "clip-a-obj-002first_1.jpg"
    missing.unlink()
    expected = (f"row 'clip-a-obj-003': counterfactual image {missing} not found (image_output of twin row "
                f"'clip-a-obj-002', {twin_path}:4)")
    with pytest.raises(FileNotFoundError, match=f"^{re.escape(expected)}$"):
        attach_counterfactual_imagery(rows_path, twin_path)
    assert rows_path.read_bytes() == original  # nothing written
    with pytest.raises(FileNotFoundError, match="DIFT export not found"):
        attach_counterfactual_imagery(rows_path, twin_path.with_name("none.jsonl"))


def test_duplicates_pair_with_the_first_twin_whatever_the_order(exports):
    """Two twin rows of one clip and question: the first in file order wins, on every run."""
    rows_path, twin_path = exports
    lines = twin_path.read_text().splitlines()
    out = rows_path.with_name("a.jsonl")
    attach_counterfactual_imagery(rows_path, twin_path, out)
    twin_path.write_text("\n".join([lines[4], *lines[:4], *lines[5:]]) + "\n")  # the "second" row now comes first
    swapped = rows_path.with_name("b.jsonl")
    counts = attach_counterfactual_imagery(rows_path, twin_path, swapped)
    assert counts["twin_duplicates"] == 1 and counts["paired"] == 2
    assert "first_0.jpg" in _rows(out)[4]["counterfactual_output"][0]
    assert "second_0.jpg" in _rows(swapped)[4]["counterfactual_output"][0]
    assert attach_counterfactual_imagery(rows_path, twin_path, rows_path.with_name("c.jsonl")) == counts
    assert rows_path.with_name("c.jsonl").read_bytes() == swapped.read_bytes()


def test_command_prints_counts_and_errors_in_one_line(exports, capsys, monkeypatch):
    monkeypatch.delenv("TRL_LATENT_DEBUG", raising=False)
    rows_path, twin_path = exports
    assert main([str(rows_path), str(twin_path)]) == 0
    assert capsys.readouterr().out.strip() == ("rows=5 paired=2 same_answer=1 no_twin_row=1 image_count_differs=1 "
                                               "twin_duplicates=1")
    with pytest.raises(SystemExit, match=r"^python -m datagen.counterfactual: .*none.jsonl: DIFT export not found "
                                         r"\[traceback: TRL_LATENT_DEBUG=1\]$"):
        main([str(rows_path), str(twin_path.with_name("none.jsonl"))])
    assert os.path.exists(rows_path)
