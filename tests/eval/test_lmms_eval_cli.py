"""The way users are told to run it: bare ``lmms-eval --model latent_qwen2_5_vl --tasks dsr_bench`` in a subprocess,
with no ``--include_path``, on a small local benchmark with one missing and one corrupt video."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import pytest

pytest.importorskip("lmms_eval")
pytest.importorskip("torchvision")


@pytest.mark.slow
def test_bare_lmms_eval_finds_our_tasks_and_prints_standard_errors(checkpoints, dsr_root, tmp_path) -> None:
    (dsr_root / "v2.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 corrupt")  # q4's video cannot be decoded
    env = {**os.environ, "DSR_BENCH_ROOT": str(dsr_root), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    out_dir = tmp_path / "out"
    command = [
        sys.executable, "-m", "lmms_eval", "--model", "latent_qwen2_5_vl",
        "--model_args", f"pretrained={checkpoints['stock']},dtype=float32,device=cpu",
        "--tasks", "dsr_bench", "--gen_kwargs", "max_new_tokens=4", "--batch_size", "2",
        "--output_path", str(out_dir), "--log_samples",
    ]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200, check=False)
    assert run.returncode == 0, run.stderr[-4000:]
    table = [line for line in run.stdout.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    accuracy = next(line for line in table if "|accuracy" in line.replace(" ", ""))
    cells = dict(zip(header, (cell.strip() for cell in accuracy.strip("|").split("|"))))
    assert cells["Tasks"] == "dsr_bench"
    assert 0.0 <= float(cells["Stderr_CLT"]) <= 0.6 and 0.0 <= float(cells["Stderr_Clustered"]) <= 0.6
    results_file = next(out_dir.rglob("*_results.json"))
    saved = json.loads(results_file.read_text())
    assert saved["results"]["dsr_bench"]["missing_media,none"] == 2  # the missing video and the corrupt one
    assert saved["n-samples"]["dsr_bench"]["effective"] == 4
    print(run.stdout[run.stdout.index("|"):])  # shown with -s: the table a user sees
    assert "undecodable videos: v2" in run.stdout + run.stderr


def test_without_the_hook_point_the_warning_names_include_path(monkeypatch) -> None:
    from lmms_eval.tasks import TaskManager

    from lmms_eval_dsr.models import register_task_folder

    def initialize_tasks(self, paths=None, include_defaults=True):  # an lmms-eval that renamed the parameter
        return {}

    monkeypatch.setattr(TaskManager, "initialize_tasks", initialize_tasks)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert register_task_folder() is False
    assert any("--include_path" in str(w.message) for w in caught)


def test_hook_adds_the_task_folder_once() -> None:
    from lmms_eval.tasks import TaskManager

    from lmms_eval_dsr import tasks_dir
    from lmms_eval_dsr.models import register_task_folder

    assert register_task_folder() and register_task_folder()  # idempotent
    manager = TaskManager(include_path=tasks_dir(), include_defaults=False)
    assert {"dsr_bench", "dsr_bench_4dthinker", "dyn_bench"} <= set(manager.all_tasks)
    assert "dsr_bench" in TaskManager(include_defaults=False).all_tasks  # without include_path too
