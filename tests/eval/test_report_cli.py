"""The results table / chart module on hand-made numbers, and ``trl-latent eval`` end to end on a tiny checkpoint."""

from __future__ import annotations

import json
import math

import pytest

from lmms_eval_dsr.report import markdown_table, summarize, write_report

# lmms-eval's values are fractions; the summary shows percentages.
RESULTS = {
    "dsr_bench": {
        "alias": "dsr_bench", "accuracy,none": 0.6, "accuracy_stderr,none": "N/A",
        "accuracy_stderr_clt,none": 0.2449, "accuracy_stderr_clustered,none": 0.2, "macro_accuracy,none": 0.625,
        "macro_accuracy_stderr_clt,none": "N/A", "missing_media,none": 1, "latent_blocks,none": 0.5,
        "per_type,none": {"Abs Dis": 0.5, "Non-Temp Based": 0.0, "cam_pan": 1.0}, "abs_dir,none": None,
        "failed_inference,none": 0, "chance,none": {"Abs Dis": 0.25, "Non-Temp Based": 0.25, "cam_pan": 0.5},
    },
    "dyn_bench": {
        "accuracy,none": 0.5, "failed_inference,none": 2, "accuracy_stderr_clt,none": 0.1, "accuracy_stderr_clustered,none": "N/A",
        "overall,none": 0.55, "missing_media,none": 0, "latent_blocks,none": 0.0,
        "per_category,none": {"Camera-Object": 0.4, "Inter-Object": 0.6, "Object-Scene": 0.65},
        "camera_object,none": 0.4, "camera_object_stderr_clt,none": 0.03,
        "inter_object,none": 0.6, "inter_object_stderr_clt,none": 0.04,
        "object_scene,none": 0.65, "object_scene_stderr_clt,none": 0.12,
    },
    "mme": {"mme_perception_score,none": 1200.0},  # a built-in task in the same run is not ours: left out
}
# lmms-eval reports the counts beside the results, not in them
OUTPUT = {"results": RESULTS, "n-samples": {"dsr_bench": {"original": 5, "effective": 5},
                                            "dyn_bench": {"original": 6, "effective": 6}, "mme": {"effective": 3}}}


def test_summary_table_and_charts(tmp_path) -> None:
    summaries = summarize(OUTPUT)
    assert [(s.task, s.headline_name, s.headline) for s in summaries] == [
        ("dsr_bench", "Acc", pytest.approx(60.0)), ("dyn_bench", "Overall", pytest.approx(55.0))]
    dsr, dyn = summaries
    assert dsr.headline_stderr == pytest.approx(20.0)  # the clustered one when lmms-eval computed it
    assert dyn.other_stderr == pytest.approx(10.0)  # else the CLT one
    assert dyn.headline_stderr == pytest.approx(100 * math.sqrt(0.03**2 + 0.04**2 + 0.12**2) / 3)
    table = markdown_table(summaries)
    header = "| Task | Acc (± SE) | Macro | Abs Dis | Non-Temp Based | cam_pan | n | Skipped | Failed | Latent blocks |"
    assert header in table
    assert "| dsr_bench | 60.0 ± 20.0 | 62.5 | 50.0 | 0.0 | 100.0 | 5 | 1 | 0 | 0.50 |" in table
    assert "| dyn_bench | 55.0 ± 4.3 | 50.0 ± 10.0 | 40.0 | 60.0 | 65.0 | 6 | 0 | 2 | 0.00 |" in table
    assert dsr.chance == {"Abs Dis": 25.0, "Non-Temp Based": 25.0, "cam_pan": 50.0}
    written = write_report(OUTPUT, tmp_path, title="tiny")
    assert json.loads(written["json"].read_text())[1]["groups"]["Object-Scene"] == 65.0
    for task in ("dsr_bench", "dyn_bench"):
        assert written[task].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_trl_latent_eval_end_to_end(checkpoints, dyn_root, tmp_path, capsys) -> None:
    pytest.importorskip("lmms_eval")
    pytest.importorskip("torchvision")
    from trl_latent.cli_eval import main

    from lmms_eval.utils import sanitize_model_name

    from trl_latent.cli_eval import latest_samples

    out_dir = tmp_path / "eval"
    argv = [
        "--model_args", f"pretrained={checkpoints['stock']},dtype=float32,max_pixels=3136,max_frames=4",
        "--tasks", "dyn_bench_think", "--dyn_root", str(dyn_root), "--output_path", str(out_dir),
        "--gen_kwargs", "max_new_tokens=4", "--batch_size", "3", "--log_samples",
    ]
    assert main(argv) == 0
    # lmms-eval's own layout and files, written by its EvaluationTracker: <output_path>/<model>/<date>_*
    run = out_dir / sanitize_model_name(str(checkpoints["stock"]))
    (results_file,) = run.glob("*_results.json")
    date = results_file.name.removesuffix("_results.json")
    saved = json.loads(results_file.read_text())
    assert {"results", "configs", "config", "n-samples", "versions", "task_hashes", "date", "lmms_eval_version",
            "total_evaluation_time_seconds", "model_name_sanitized"} <= set(saved)
    assert saved["n-samples"]["dyn_bench_think"]["effective"] == 6 and saved["task_hashes"]["dyn_bench_think"]
    results = saved["results"]["dyn_bench_think"]
    summary = json.loads((run / f"{date}_summary.json").read_text())[0]
    assert summary["headline"] == pytest.approx(100 * results["overall,none"]) and summary["missing_media"] == 1
    assert summary["samples"] == 6 and summary["failed_inference"] == 0  # the questions actually scored
    assert summary["other_stderr"] == pytest.approx(100 * results["accuracy_stderr_clt,none"])  # one scene: no cluster
    assert set(summary["groups"]) == set(summary["chance"]) == {"Camera-Object", "Inter-Object", "Object-Scene"}
    assert summary["chance"]["Inter-Object"] == pytest.approx(100 / 3)  # i0 has three options
    samples = latest_samples(out_dir, "dyn_bench_think")
    assert samples == run / f"{date}_samples_dyn_bench_think.jsonl" and len(samples.read_text().splitlines()) == 6
    assert (run / f"{date}_dyn_bench_think.png").stat().st_size > 0
    assert "| dyn_bench_think |" in capsys.readouterr().out
    # the deprecated --output_dir still works; every run writes new dated files, as lmms-eval does
    argv[argv.index("--output_path")] = "--output_dir"
    assert main([*argv, "--timezone", "UTC"]) == 0  # another date than Asia/Singapore's, even within the second
    assert len(list(run.glob("*_results.json"))) == 2


def test_trl_latent_eval_requires_model_args() -> None:
    from trl_latent.cli_eval import main

    with pytest.raises(SystemExit):
        main(["--tasks", "dsr_bench"])
