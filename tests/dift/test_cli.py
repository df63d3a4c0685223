"""``trl-latent dift`` as a person meets it: the card a run leaves, what it prints, and how bad input is reported.

The subprocess tests run the console script itself; the others call ``trl_latent.cli.main``, the function the
console script runs, in this process (TRL is already imported here, so they take a second instead of a minute).
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dift_data import dift_record, write_jsonl

from trl_latent import cli
from trl_latent.data import DataRecordError
from trl_latent.testing import save_tiny_checkpoint

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "examples" / "dift_tiny.yaml"
TRL_LATENT = str(Path(sys.executable).parent / "trl-latent")
OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture
def checkpoint(tmp_path):
    """A stock tiny checkpoint whose card says which Hub model and license it stands for."""
    path, _ = save_tiny_checkpoint(tmp_path / "tiny", latent_size=None)
    (path / "README.md").write_text("---\nbase_model: Qwen/Qwen2.5-VL-3B-Instruct\nlicense: apache-2.0\n---\n# tiny\n")
    return path


@pytest.mark.slow
def test_a_dift_run_leaves_a_hub_card_and_prints_numbers(checkpoint, tmp_path):
    from huggingface_hub import ModelCard

    data = write_jsonl(tmp_path / "data" / "train.jsonl", [dift_record(tmp_path / "data", i) for i in range(2)])
    out = tmp_path / "out"
    run = subprocess.run([TRL_LATENT, "dift", "--config", str(RECIPE), "--model_name_or_path", str(checkpoint),
                          "--dataset_name", str(data), "--eval_dataset_name", str(data), "--eval_strategy", "steps",
                          "--eval_steps", "2", "--output_dir", str(out)],
                         env=OFFLINE, capture_output=True, text=True, timeout=1200)
    printed = run.stdout + run.stderr
    assert run.returncode == 0, printed[-4000:]
    assert "Setting accelerator to CPU" not in printed
    losses = re.findall(r"\{'loss': ([^,]+),", printed)
    assert len(losses) == 2 and all(math.isfinite(float(v)) for v in losses), losses  # '2.178' would not parse

    card = ModelCard.load(out / "README.md")
    meta = card.data
    assert meta.base_model == "Qwen/Qwen2.5-VL-3B-Instruct" and meta.license == "apache-2.0"
    assert meta.library_name == "transformers" and meta.pipeline_tag == "video-text-to-text"
    assert {"trl", "trl-latent", "dift", "4dthinker"} <= set(meta.tags) and "licence" not in meta.to_dict()
    results = {r.metric_name: r.metric_value for r in meta.eval_results}
    assert math.isfinite(results["eval_loss"]) and meta.eval_results[0].dataset_name == "train.jsonl"
    assert "@article{chen20264dthinker" in card.text and "| learning_rate | 0.001 |" in card.text
    assert "| training steps | 2 |" in card.text and "| train_loss |" in card.text and str(tmp_path) not in card.text


def _dift(*args: str) -> list[str]:
    return ["dift", "--config", str(RECIPE), *args]


def test_a_misspelled_recipe_key_is_one_line_naming_the_file_and_the_field(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE.read_text().replace("learning_rate:", "lerning_rate:"))
    with pytest.raises(SystemExit) as exit_:
        cli.main(["dift", "--config", str(recipe)])
    assert exit_.value.code == f"trl-latent dift: unknown key lerning_rate in {recipe} (did you mean learning_rate?)"
    with pytest.raises(SystemExit) as exit_:
        cli.main(_dift("--lerning_rate", "1e-3"))
    assert exit_.value.code == "trl-latent dift: unknown flag --lerning_rate (did you mean --learning_rate?)"


def test_a_missing_model_fails_at_once_without_asking_the_hub(tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants
    import transformers

    def no_hub(*args, **kwargs):
        raise AssertionError("the Hub was asked")

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", no_hub)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs").mkdir()
    for name, needle in [("./outputs/dfit", f"no folder {tmp_path / 'outputs' / 'dfit'}"),
                         ("outputs/dfit", f"no folder {tmp_path / 'outputs' / 'dfit'}"),  # outputs/ is here
                         (str(tmp_path / "nope"), f"no folder {tmp_path / 'nope'}")]:
        start = time.monotonic()
        with pytest.raises(SystemExit):
            cli.main(_dift("--model_name_or_path", name, "--output_dir", str(tmp_path / "o")))
        assert time.monotonic() - start < 10 and needle in capsys.readouterr().err
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(SystemExit):
        cli.main(_dift("--model_name_or_path", "someone/no-such-model", "--output_dir", str(tmp_path / "o")))
    error = capsys.readouterr().err
    assert "'someone/no-such-model' is not in the local Hub cache (HF_HUB_OFFLINE=1" in error


def _bad_data(tmp_path: Path) -> tuple[Path, Path]:
    """A folder that passes the model check (it is never loaded: the records fail first) and a record without
    its answer text."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    record = dift_record(tmp_path, 0)
    del record["text_output"]
    return model, write_jsonl(tmp_path / "bad.jsonl", [record])


def test_a_data_error_is_one_line_and_debug_keeps_the_traceback(tmp_path, monkeypatch, capsys):
    model, data = _bad_data(tmp_path)
    argv = _dift("--model_name_or_path", str(model), "--dataset_name", str(data), "--output_dir", str(tmp_path / "o"))
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    assert cli.main(argv) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower()]
    assert len(lines) == 1 and lines[0].startswith("trl-latent dift: error: ") and "bad.jsonl:1" in lines[0], lines
    with pytest.raises(DataRecordError, match="bad.jsonl:1"):
        cli.main(["--debug", *argv])
    assert os.environ.pop(cli.DEBUG_ENV) == "1"


@pytest.mark.slow
def test_the_command_prints_a_data_error_as_one_line(tmp_path):
    model, data = _bad_data(tmp_path)
    run = subprocess.run([TRL_LATENT, *_dift("--model_name_or_path", str(model), "--dataset_name", str(data),
                                             "--output_dir", str(tmp_path / "o"))],
                         env={k: v for k, v in OFFLINE.items() if k != cli.DEBUG_ENV}, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr[-3000:]
    assert run.stderr.strip().splitlines()[-1].startswith("trl-latent dift: error: ") and "bad.jsonl:1" in run.stderr
