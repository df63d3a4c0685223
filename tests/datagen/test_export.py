"""The export loads straight into the trainers: README configurations and ``hf_dataset/<name>`` folders."""

from pathlib import Path

import pytest

from datagen import DatagenConfig, run_pipeline
from datagen.io import read_jsonl
from trl_latent.data import load_records


@pytest.fixture
def export_dir(dataset, tmp_path) -> Path:
    config = DatagenConfig.from_dict({"input_root": str(dataset), "output_dir": str(tmp_path / "out"),
                                      "progress": False, "frames": {"fps": 2.0, "max_frames": 8},
                                      "export": {"benchmark_fraction": 0.5}})
    paths = run_pipeline(config)
    assert paths["validation"].is_file() and paths["benchmark"].is_file()  # files load_dataset must not take as splits
    return paths["dift"].parent


def test_load_dataset_sees_only_the_named_configurations(export_dir):
    import datasets

    rl = read_jsonl(export_dir / "rl.jsonl")
    default = datasets.load_dataset(str(export_dir))
    assert list(default) == ["train"] and default["train"].num_rows == len(read_jsonl(export_dir / "dift.jsonl"))
    assert datasets.load_dataset(str(export_dir), "rl")["train"]["answer"] == [r["answer"] for r in rl]
    with pytest.raises(ValueError, match="Unknown config name 'validation'|BuilderConfig 'validation' not found"):
        datasets.load_dataset(str(export_dir), "validation")


def test_the_export_card_is_a_hub_dataset_card(export_dir):
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(export_dir / "README.md")
    assert {c["config_name"] for c in card.data.configs} == {"dift", "rl", "dift_text_only"}
    assert card.data.configs[0]["config_name"] == "dift" and card.data.configs[0]["default"] is True
    assert card.data.task_categories == ["video-text-to-text"] and "4dthinker" in card.data.tags
    assert "@article{chen20264dthinker" in card.text and card.data.license is None


@pytest.mark.parametrize("task", ["dift", "rl"])
def test_both_dataset_forms_load_as_training_records(export_dir, task):
    from_jsonl = load_records(export_dir / f"{task}.jsonl", task)
    from_folder = load_records(export_dir, task, config=task)  # --dataset_name export --dataset_config <task>
    from_saved = load_records(export_dir / "hf_dataset" / task, task)  # its `train` split; media paths resolve
    for records in (from_folder, from_saved):
        assert records["prompt"] == from_jsonl["prompt"] and records["frames"] == from_jsonl["frames"]
    if task == "dift":
        assert from_saved["image_output"] == from_jsonl["image_output"]


@pytest.mark.slow
def test_dift_trains_on_the_saved_export_folder(export_dir, tmp_path):
    from trl_latent.scripts.dift import main
    from trl_latent.testing import save_tiny_checkpoint

    checkpoint, _ = save_tiny_checkpoint(tmp_path / "tiny")
    code = main(["--model_name_or_path", str(checkpoint), "--dataset_name", str(export_dir / "hf_dataset" / "dift"),
                 "--dataset_train_split", "train", "--output_dir", str(tmp_path / "run"), "--max_steps", "1",
                 "--per_device_train_batch_size", "1", "--max_pixels", "3136", "--imagery_min_pixels", "3136", "--imagery_max_pixels", "3136",
                 "--use_cpu", "true", "--bf16", "false", "--report_to", "none", "--save_strategy", "no"])
    assert code == 0 and (tmp_path / "run" / "model.safetensors").is_file()


def test_types_filter_training_files_and_benchmark_alike(dataset, tmp_path):
    import pandas as pd

    def export(**options):
        out = tmp_path / "_".join(f"{k}" for k in options) if options else tmp_path / "all"
        config = DatagenConfig.from_dict({"input_root": str(dataset), "output_dir": str(out), "progress": False,
                                          "frames": {"fps": 2.0, "max_frames": 8},
                                          "export": {"benchmark_fraction": 0.5, "hf_dataset": False, **options}})
        paths = run_pipeline(config)
        types = {name: {r["type"] for r in read_jsonl(paths[name])} for name in ("dift", "rl")}
        return types, set(pd.read_parquet(paths["benchmark"])["type"])

    (train, held_out) = export()
    assert {"cam_dir", "abs_dir"} <= train["rl"] and "cam_dir" not in held_out  # the DSR types by default
    train, held_out = export(types=["cam_dir", "abs_dir"], benchmark_types=["cam_dir", "abs_dir"])
    assert train["rl"] == train["dift"] == {"cam_dir", "abs_dir"} and held_out <= {"cam_dir", "abs_dir"}
    assert "cam_dir" in held_out
    with pytest.raises(ValueError, match="export.types"):
        DatagenConfig.from_dict({"input_root": ".", "output_dir": ".", "export": {"types": ["cam_direction"]}})


def test_visible_fraction_cuts_the_model_input_not_the_questions_or_imagery(dataset, tmp_path):
    """Through ``run_pipeline``: training rows and benchmark videos show the clip's first half, the imagery still shows
    its end, the evaluation's decoder reads back exactly the training frames, and a rerun at the full clip replaces
    the cut videos."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    from datagen.io import read_json
    from lmms_eval_dsr.media import read_video  # what the evaluation's model reads a benchmark video with

    def run(fraction):
        config = DatagenConfig.from_dict({"input_root": str(dataset), "output_dir": str(tmp_path / "out"),
                                          "progress": False, "frames": {"fps": 2.0, "max_frames": 8},
                                          "export": {"benchmark_fraction": 0.5, "hf_dataset": False,
                                                     "visible_fraction": fraction}})
        return run_pipeline(config)

    paths = run(0.5)
    out, rows = tmp_path / "out", read_jsonl(paths["dift"])
    assert rows and {len(r["image_input"]) for r in read_jsonl(paths["rl"]) + rows} == {4}
    imagery = {qa_id: entry for p in (out / "imagery").glob("*.json") for qa_id, entry in read_json(p).items()}
    assert max(f for r in rows for f in imagery[r["id"]]["frames"]) >= 4  # imagery of moments the input does not show
    benchmark = pd.read_parquet(paths["benchmark"])
    for video_id in benchmark["videoID"].unique():
        video = read_video(paths["benchmark"].parent / f"{video_id}.mp4", fps=2.0, max_frames=8)
        frames, rate = video.frames, video.fps
        clip = read_json(out / "frames" / video_id / "clip.json")
        shown = np.stack([np.asarray(Image.open(out / "frames" / video_id / f)) for f in clip["files"][:4]])
        assert frames.shape == shown.shape and rate == pytest.approx(2.0)
        assert np.abs(frames.astype(int) - shown).mean() < 4  # H.264 at crf 18 of the same JPEGs
    paths = run(1.0)
    assert {len(r["image_input"]) for r in read_jsonl(paths["rl"])} == {8}
    assert len(read_video(paths["benchmark"].parent / f"{benchmark['videoID'].iloc[0]}.mp4", 2.0, 8).frames) == 8
    with pytest.raises(ValueError, match="export.visible_fraction"):
        DatagenConfig.from_dict({"input_root": ".", "output_dir": ".", "export": {"visible_fraction": 0}})
