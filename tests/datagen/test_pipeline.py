import json
from pathlib import Path

import pandas as pd
import pytest

import datagen.pipeline as pipeline
from datagen import DatagenConfig, run_pipeline
from datagen.cli import main
from datagen.io import read_jsonl


def _config(dataset, out, **overrides):
    data = {"input_root": str(dataset), "output_dir": str(out), "progress": False,
            "frames": {"fps": 2.0, "max_frames": 8}, "export": {"benchmark_fraction": 0.0}}
    data.update(overrides)
    return DatagenConfig.from_dict(data)


def _tree(root: Path) -> dict[str, bytes]:
    """Every output file except manifests, logs and the HF dataset (which embeds fingerprints)."""
    skip = ("manifests", "hf_dataset")
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not any(s in p.parts for s in skip)}


def test_pipeline_end_to_end_validates(dataset, tmp_path):
    paths = run_pipeline(_config(dataset, tmp_path / "out"))
    dift, rl, text_only = (read_jsonl(paths[k]) for k in ("dift", "rl", "dift_text_only"))
    assert dift and len(rl) >= len(dift) and len(text_only) == len(dift)
    report = json.loads(paths["validation"].read_text())
    for name, result in report.items():
        assert result["records"] > 0
        assert all(c["failed"] == 0 for c in result["checks"].values()), (name, result["failures"][:5])
    record = dift[0]
    assert record["text_output"].count("<output_image>") == len(record["image_output"]) >= 2
    assert all((paths["dift"].parent / p).is_file() for p in record["image_input"] + record["image_output"])
    assert "<output_image>" not in text_only[0]["text_output"] and text_only[0]["image_output"] == []
    assert text_only[0]["text_input"] == record["text_input"]
    from datasets import load_from_disk

    assert load_from_disk(str(paths["hf_dataset"] / "rl"))["train"].num_rows == len(rl)
    letters = [r["answer"] for r in rl]
    assert all(letters.count(x) >= len(rl) / 4 - 3 for x in "ABCD")  # balanced up to one per clip


def test_benchmark_export_holds_out_clips(dataset, tmp_path):
    paths = run_pipeline(_config(dataset, tmp_path / "out", export={"benchmark_fraction": 1.0}))
    bench = pd.read_parquet(paths["benchmark"])
    assert set(bench.columns) == {"videoID", "question", "options", "answer", "type"}
    assert not bench["type"].str.startswith("cam_").any() and len(bench) > 0
    assert all((paths["benchmark"].parent / f"{v}.mp4").is_file() for v in bench["videoID"].unique())
    assert read_jsonl(paths["rl"]) == []  # every clip is held out


def test_interrupted_run_resumes_to_identical_output(dataset, tmp_path, monkeypatch):
    clean = tmp_path / "clean"
    run_pipeline(_config(dataset, clean))

    resumed = tmp_path / "resumed"
    original, calls = pipeline.render_question, {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt  # a Ctrl-C in the middle of the imagery stage
        return original(*args, **kwargs)

    monkeypatch.setattr(pipeline, "render_question", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(_config(dataset, resumed))
    assert (resumed / "manifests" / "frames.jsonl").exists() and not (resumed / "export").exists()
    monkeypatch.setattr(pipeline, "render_question", original)
    run_pipeline(_config(dataset, resumed))
    assert _tree(resumed) == _tree(clean)
    frames_manifest = read_jsonl(resumed / "manifests" / "frames.jsonl")
    assert len(frames_manifest) == 3  # the rerun skipped finished clips instead of redoing them
    ids = [r["id"] for r in read_jsonl(resumed / "export" / "dift.jsonl")]
    assert len(ids) == len(set(ids))


def test_failed_items_are_recorded_and_retried(dataset, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("decoder exploded")

    monkeypatch.setattr(pipeline, "extract_clip", broken)
    config = _config(dataset, tmp_path / "out", stages=["frames"])
    result = pipeline.run_frames(config)
    assert set(result.failed) == {"forward", "pan", "truck"} and "decoder exploded" in result.failed["pan"]
    monkeypatch.undo()
    result = pipeline.run_frames(config)
    assert sorted(result.done) == ["forward", "pan", "truck"] and not result.failed


def test_cli_run_and_validate(dataset, tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"input_root: {dataset}\noutput_dir: {tmp_path / 'out'}\nprogress: false\nframes:\n  fps: 2.0\n")
    assert main(["run", "--config", str(cfg), "--limit", "1"]) == 0
    assert main(["validate", str(tmp_path / "out/export/dift.jsonl")]) == 0
    assert "placeholder_count" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"input_root: x\noutput_dir: y\nframes:\n  fsp: 2\n")
    with pytest.raises(ValueError, match="frames.*fsp"):
        main(["run", "--config", str(bad)])


def test_concise_template_keeps_answers_and_imagery(dataset, tmp_path):
    full = read_jsonl(run_pipeline(_config(dataset, tmp_path / "full"))["dift"])
    paths = run_pipeline(_config(dataset, tmp_path / "concise", cot={"template_style": "concise"}))
    concise = read_jsonl(paths["dift"])
    assert [(r["id"], r["image_output"]) for r in concise] == [(r["id"], r["image_output"]) for r in full]
    for short, long in zip(concise, full):
        assert short["text_output"].split("<answer>")[1] == long["text_output"].split("<answer>")[1]
        assert short["text_output"].count("<output_image>") == len(short["image_output"])
        assert len(short["text_output"]) < len(long["text_output"]) / 2
    report = json.loads(paths["validation"].read_text())
    assert all(c["failed"] == 0 for result in report.values() for c in result["checks"].values())


def test_unknown_template_style_is_named(dataset, tmp_path):
    with pytest.raises(ValueError, match="cot.template_style='short'"):
        _config(dataset, tmp_path / "out", cot={"template_style": "short"})
