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
    """Every output file except manifests, the HF dataset (which embeds fingerprints) and the saved config (which
    names the output folder)."""
    skip = ("manifests", "hf_dataset", "datagen_config.yaml")
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
    from dg_world import zero_middle

    config = _config(dataset, tmp_path / "out", export={"benchmark_fraction": 1.0}, validate={"decode": True})
    paths = run_pipeline(config)
    bench = pd.read_parquet(paths["benchmark"])
    assert set(bench.columns) == {"videoID", "question", "options", "answer", "type"}
    assert not bench["type"].str.startswith("cam_").any() and len(bench) > 0
    assert all((paths["benchmark"].parent / f"{v}.mp4").is_file() for v in bench["videoID"].unique())
    assert read_jsonl(paths["rl"]) == []  # every clip is held out
    checks = json.loads(paths["validation"].read_text())["benchmark"]["checks"]
    assert checks["decodes"] == checks["answer_in_options"] == {"passed": len(bench), "failed": 0}
    zero_middle(paths["benchmark"].parent / "pan.mp4")
    result = pipeline.run_validate(config)
    assert all(error.startswith("decodes (pan.mp4 (") for error in result.failed.values())
    assert len(result.failed) == (bench["videoID"] == "pan").sum()


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
    bad.write_text("input_root: x\noutput_dir: y\nframes:\n  fsp: 2\n")
    with pytest.raises(SystemExit, match="frames.*fsp"):
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


def _records(out: Path) -> dict[str, bytes]:
    return {name: (out / "export" / f"{name}.jsonl").read_bytes() for name in ("dift", "dift_text_only", "rl")}


def test_changed_threshold_redoes_that_stage_and_downstream(dataset, tmp_path):
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    run_pipeline(_config(dataset, out))
    strict = {"object_qa": {"min_motion": 1.0}}  # drops 3 of the 51 questions
    rerun = run_pipeline(_config(dataset, out, **strict))
    run_pipeline(_config(dataset, fresh, **strict))
    assert _records(out) == _records(fresh) and _records(out)["rl"].count(b"\n") == 48
    assert sorted(p.name for p in (out / "cot").iterdir()) == sorted(p.name for p in (fresh / "cot").iterdir())
    counts = {name: (len(r.done), len(r.reused)) for name, r in rerun.stages.items()
              if name not in ("annotate", "export", "validate")}
    assert counts == {"frames": (0, 3), "segment": (0, 3), "camera-qa": (0, 3), "object-qa": (3, 0),
                      "imagery": (3, 0), "cot": (48, 0)}
    assert DatagenConfig.from_yaml(out / "datagen_config.yaml").object_qa.min_motion == 1.0
    again = run_pipeline(_config(dataset, out, **strict))
    assert all(not r.done for name, r in again.stages.items() if name not in ("export", "validate"))


def _break_object_qa(monkeypatch, clip_id="pan"):
    original = pipeline.object_questions

    def broken(clip, *args, **kwargs):
        if clip["clip_id"] == clip_id:
            raise RuntimeError("tracker exploded")
        return original(clip, *args, **kwargs)

    monkeypatch.setattr(pipeline, "object_questions", broken)


def test_fixed_failed_stage_regenerates_downstream_outputs(dataset, tmp_path, monkeypatch):
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    _break_object_qa(monkeypatch)
    first = run_pipeline(_config(dataset, out))
    assert first.failed["object-qa"] == {"pan": "RuntimeError: tracker exploded"}
    assert set(first.failed["export"]) == {"object-qa/pan"}  # the export says its records are partial
    partial = _records(out)
    monkeypatch.undo()
    second = run_pipeline(_config(dataset, out))
    run_pipeline(_config(dataset, fresh))
    assert not second.failed and _records(out) == _records(fresh)
    assert len(partial["dift"]) < len(_records(out)["dift"])
    assert second.stages["imagery"].done == ["pan"] and second.stages["cot"].reused  # only pan was redone


def test_export_refuses_outputs_made_with_other_settings(dataset, tmp_path):
    out = tmp_path / "out"
    run_pipeline(_config(dataset, out))
    before = _records(out)
    with pytest.raises(RuntimeError, match=r"other settings .*\(object-qa: 3 \(e.g. forward\)\); rerun"):
        run_pipeline(_config(dataset, out, object_qa={"min_motion": 1.0}, stages=["export"]))
    assert _records(out) == before


def test_cli_summary_table_and_exit_status(dataset, tmp_path, monkeypatch, capsys):
    _break_object_qa(monkeypatch)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"input_root: {dataset}\noutput_dir: {tmp_path / 'out'}\nprogress: false\nframes:\n  fps: 2.0\n")
    assert main(["run", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert err.count("stage        done reused failed") == 1  # one table, no -v needed
    row = next(line for line in err.splitlines() if line.startswith("object-qa "))
    assert row.split()[1:4] == ["2", "0", "1"] and str(tmp_path / "out/manifests/object-qa.jsonl") in row
    assert "  object-qa failed pan: RuntimeError: tracker exploded" in err and "--allow_partial" in err
    assert main(["run", "--config", str(cfg), "--allow_partial"]) == 0
    assert main(["object-qa", "--config", str(cfg), "--allow-partial"]) == 0
    err = capsys.readouterr().err
    assert "object-qa failed pan" in err  # retried, failed again, still listed
    monkeypatch.undo()
    assert main(["run", "--config", str(cfg)]) == 0
    assert "failure(s)" not in capsys.readouterr().err


def test_every_flag_has_help_and_both_spellings():
    import argparse

    from datagen.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name, sub in [("trl-latent-datagen", parser), *commands.items()]:
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, (name, action.dest)
            longs = [o for o in action.option_strings if o.startswith("--")]
            if any("_" in o or "-" in o[2:] for o in longs):
                assert {"--" + o[2:].replace("-", "_") for o in longs} == {"--" + action.dest} and len(longs) == 2, longs
    for spelling in ("--output_dir", "--output-dir"):
        assert commands["run"].parse_args([spelling, "o", "--allow-partial"]).output_dir == "o"
    assert commands["synth"].parse_args(["--root", "r", "--num-clips", "3"]).num_clips == 3


def test_redone_upstream_item_redoes_what_was_made_from_it(dataset, tmp_path):
    out = tmp_path / "out"
    run_pipeline(_config(dataset, out))
    (out / "masks" / "pan.npz").unlink()  # same settings, but the mask is made again
    rerun = run_pipeline(_config(dataset, out))
    done = {name: r.done for name, r in rerun.stages.items() if name not in ("export", "validate")}
    assert done["frames"] == [] and done["camera-qa"] == []
    assert done["segment"] == done["object-qa"] == done["imagery"] == ["pan"]
    assert done["cot"] and all(qa_id.startswith("pan-") for qa_id in done["cot"])
    assert len(rerun.stages["cot"].reused) > 0 and not rerun.failed
