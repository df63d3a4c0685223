"""A camera that does not move gets the still answer, never a move; clips without a move question are counted with
the reason in the run summary (a still camera, too few frames, no poses), through the ``trl-latent-datagen`` door."""

from __future__ import annotations

import json
from pathlib import Path

from dg_world import BALL_RIGHT, BOX_STILL, SPECS, write_dataset

from datagen import cli


def _questions(out: Path, clip_id: str) -> list[dict]:
    return json.loads((out / "qa" / "camera" / f"{clip_id}.json").read_text())


def _summary_row(stderr: str, stage: str) -> str:
    return next(line for line in stderr.splitlines() if line.startswith(f"{stage} "))


def test_still_camera_and_short_clip_are_counted_in_the_summary(tmp_path, capsys):
    root = write_dataset(tmp_path / "data", {
        "still": {"objects": [BALL_RIGHT, BOX_STILL]},  # 4 s, camera fixed, a ball rolling past
        "short": {"frames": 9, "fps": 5.0, "velocity": (0, 0, 0.4), "objects": [BOX_STILL]},  # 1.8 s, dolly in
        "forward": SPECS["forward"],
    })
    out = tmp_path / "out"
    # frames.fps at its default, 1: the 1.8 s clip keeps 2 frames
    assert cli.main(["run", "--input_root", str(root), "--output_dir", str(out), "--set",
                     "stages=[frames,camera-qa]", "--set", "progress=false"]) == 0
    row = _summary_row(capsys.readouterr().err, "camera-qa")
    assert row.endswith("no move question: 1 clip(s) 2 frame(s), fewer than camera_qa.min_segment_frames=3 "
                        "(raise frames.fps), 1 clip(s) camera still"), row
    assert [(q["type"], q["label"]) for q in _questions(out, "still")] == [("cam_spd", "still")]
    assert _questions(out, "short") == []
    assert {q["label"] for q in _questions(out, "forward") if q["type"] == "cam_dir"} == {"Dolly In"}
    # a rerun reuses every clip and still counts them
    assert cli.main(["camera-qa", "--input_root", str(root), "--output_dir", str(out), "--set", "progress=false"]) == 0
    assert _summary_row(capsys.readouterr().err, "camera-qa").endswith("1 clip(s) camera still")


def test_synthetic_world_static_cameras_get_the_still_answer(tmp_path, capsys):
    root = tmp_path / "synth"
    assert cli.main(["synth", "--root", str(root), "--num_clips", "3", "--seed", "0", "--option",
                     "p_static_camera=1.0", "--option", "num_frames=8", "--option", "width=64", "--option",
                     "height=64"]) == 0
    out = tmp_path / "out"
    assert cli.main(["run", "--input_root", str(root), "--output_dir", str(out), "--set", "stages=[frames,camera-qa]",
                     "--set", "frames.fps=2", "--set", "progress=false"]) == 0
    assert _summary_row(capsys.readouterr().err, "camera-qa").endswith("no move question: 3 clip(s) camera still")
    for path in sorted((out / "qa" / "camera").glob("*.json")):
        asked = {(q["type"], q["label"]) for q in json.loads(path.read_text())}
        assert asked == {("cam_spd", "still")}, (path.name, asked)
