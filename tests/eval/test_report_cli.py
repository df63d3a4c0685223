"""The results table / chart module on hand-made numbers, and ``trl-latent eval`` end to end on a tiny checkpoint."""

from __future__ import annotations

import json

import pytest

from lmms_eval_dsr.report import markdown_table, summarize, write_report

RESULTS = {
    "dsr_bench": {
        "alias": "dsr_bench", "accuracy,none": 60.0, "macro_accuracy,none": 62.5, "missing_media,none": 1,
        "latent_blocks,none": 0.5, "per_type,none": {"Abs Dis": 50.0, "Non-Temp Based": 0.0, "cam_pan": 100.0},
        "abs_dir,none": None,
    },
    "dyn_bench": {
        "accuracy,none": 50.0, "overall,none": 55.0, "missing_media,none": 0, "latent_blocks,none": 0.0,
        "per_category,none": {"Camera-Object": 40.0, "Inter-Object": 60.0, "Object-Scene": 65.0},
    },
    "mme": {"mme_perception_score,none": 1200.0},  # a built-in task in the same run is not ours: left out
}


def test_summary_table_and_charts(tmp_path) -> None:
    summaries = summarize(RESULTS)
    assert [(s.task, s.headline_name, s.headline) for s in summaries] == [
        ("dsr_bench", "Macro", 62.5), ("dyn_bench", "Overall", 55.0)]
    table = markdown_table(summaries)
    assert "| Task | Macro | Acc | Abs Dis | Non-Temp Based | cam_pan | Skipped | Latent blocks |" in table
    assert "| dsr_bench | 62.5 | 60.0 | 50.0 | 0.0 | 100.0 | 1 | 0.50 |" in table
    assert "| dyn_bench | 55.0 | 50.0 | 40.0 | 60.0 | 65.0 | 0 | 0.00 |" in table
    written = write_report(RESULTS, tmp_path, title="tiny")
    assert json.loads(written["json"].read_text())[1]["groups"]["Object-Scene"] == 65.0
    for task in ("dsr_bench", "dyn_bench"):
        assert written[task].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_trl_latent_eval_end_to_end(checkpoints, dyn_root, tmp_path, capsys) -> None:
    pytest.importorskip("lmms_eval")
    pytest.importorskip("torchvision")
    from trl_latent.cli_eval import main

    out_dir = tmp_path / "eval"
    code = main([
        "--model_args", f"pretrained={checkpoints['stock']},dtype=float32,max_pixels=3136,max_frames=4",
        "--tasks", "dyn_bench", "--dyn_root", str(dyn_root), "--output_dir", str(out_dir),
        "--gen_kwargs", "max_new_tokens=4", "--batch_size", "3", "--log_samples",
    ])
    assert code == 0
    results = json.loads((out_dir / "results.json").read_text())["results"]["dyn_bench"]
    summary = json.loads((out_dir / "summary.json").read_text())[0]
    assert summary["headline"] == results["overall,none"] and summary["missing_media"] == 1
    assert set(summary["groups"]) == {"Camera-Object", "Inter-Object", "Object-Scene"}
    assert len((out_dir / "samples_dyn_bench.jsonl").read_text().splitlines()) == 6
    assert (out_dir / "dyn_bench.png").stat().st_size > 0
    assert "| dyn_bench |" in capsys.readouterr().out


def test_trl_latent_eval_requires_model_args() -> None:
    from trl_latent.cli_eval import main

    with pytest.raises(SystemExit):
        main(["--tasks", "dsr_bench"])
