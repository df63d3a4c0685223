"""Every task scores the raw model output, as its protocol's original scorer reads it, through each door a user takes:
the ``lmms-eval`` command with its default arguments (whose ``--reasoning_tags`` would delete ``<think>`` blocks),
the Python API (``simple_evaluate``) and ``trl-latent eval``.

The outputs are replayed by lmms-eval's own ``from_log`` model, so no checkpoint is needed and the three doors see the
same responses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lmms_eval")

from lmms_eval_dsr.scoring import DSR_EXTRACTORS, DYN_EXTRACTORS  # noqa: E402
from trl_latent.tokens import LATENT_END, LATENT_PAD, LATENT_START  # noqa: E402

from .conftest import DSR_ROWS, DYN_QA  # noqa: E402

BLOCK = LATENT_START + LATENT_PAD * 4 + LATENT_END
# DSR docs 0-4 are q0-q4 (q5's video is missing); answers A, B, C, D, A.
DSR_OUTPUTS = [
    "<think>It comes closer, so A</think>",  # think-only: DSR Suite reads the A inside; stripped, nothing is left
    f"<think>{BLOCK} it recedes</think><answer>B</answer>",  # a latent block inside <think>
    "<think>Not A.</think> The answer is C",  # raw: the official scorer's first letter is the A inside <think>
    "D",
    "A",
]
# Dyn docs: c0, c1 (Camera-Object), i0 (Inter-Object), o0, o1, o2 (Object-Scene); answers A, B, C, A, A, B.
DYN_OUTPUTS = [
    "<think>left</think> A",  # Dyn-Bench's first word is "<think>left</think>": wrong; stripped it would be "A"
    "B",
    "C",
    "A",
    f"<think>{BLOCK}</think>A",
    "B",
]
TASKS = {
    "dsr_bench": ("official", DSR_EXTRACTORS), "dsr_bench_4dthinker": ("4dthinker", DSR_EXTRACTORS),
    "dsr_bench_think": ("think", DSR_EXTRACTORS), "dyn_bench": ("official", DYN_EXTRACTORS),
    "dyn_bench_think": ("think", DYN_EXTRACTORS),
}


def _docs(task: str) -> list[tuple[list[str], str]]:
    if task.startswith("dsr"):
        return [(list(r[2]), r[3]) for r in DSR_ROWS[:5]]
    return [(item["options"], item["answer"]) for (scene, _), items in DYN_QA.items() if scene == "s0" for item in items]


def expected(task: str) -> dict[str, float]:
    """Accuracy and latent blocks as the protocol's extractor reads each raw output."""
    protocol, extractors = TASKS[task]
    outputs = DSR_OUTPUTS if task.startswith("dsr") else DYN_OUTPUTS
    hits = [extractors[protocol](text, options) == answer for text, (options, answer) in zip(outputs, _docs(task))]
    return {"accuracy": sum(hits) / len(hits), "latent_blocks": sum(t.count(LATENT_START) for t in outputs) / len(outputs)}


def write_logs(folder: Path) -> str:
    """Logs in the format lmms-eval's ``from_log`` model replays: one file per task, responses by doc id."""
    folder.mkdir(parents=True, exist_ok=True)
    for task in TASKS:
        outputs = DSR_OUTPUTS if task.startswith("dsr") else DYN_OUTPUTS
        log = {"args": {"model": "scripted", "model_args": "", "limit": None}, "model_configs": {"task": task},
               "logs": [{"doc_id": i, "resps": [[text]]} for i, text in enumerate(outputs)]}
        (folder / f"{task}.json").write_text(json.dumps(log))
    return f"logs={folder}"


def scores(results: dict) -> dict[str, dict[str, float]]:
    return {task: {"accuracy": results[task]["accuracy,none"], "latent_blocks": results[task]["latent_blocks,none"]}
            for task in TASKS}


def test_the_protocols_read_what_stripping_would_delete() -> None:
    """The outputs above are chosen so that scoring raw text and scoring stripped text disagree for every protocol."""
    assert DSR_EXTRACTORS["official"](DSR_OUTPUTS[0], []) == "A" and DSR_EXTRACTORS["official"](DSR_OUTPUTS[2], []) == "A"
    assert DYN_EXTRACTORS["official"](DYN_OUTPUTS[0], []) is None
    assert expected("dsr_bench") == {"accuracy": pytest.approx(4 / 5), "latent_blocks": pytest.approx(1 / 5)}
    assert expected("dyn_bench")["accuracy"] == pytest.approx(4 / 6)  # c0 and o1 start with "<think>"


@pytest.mark.parametrize("door", [pytest.param("command", marks=pytest.mark.slow), "python", "trl-latent eval"])
def test_every_door_scores_the_raw_output(door, dsr_root, dyn_root, tmp_path, monkeypatch) -> None:
    model_args = write_logs(tmp_path / "logs")
    tasks = ",".join(TASKS)
    env = {"DSR_BENCH_ROOT": str(dsr_root), "DYN_BENCH_ROOT": str(dyn_root)}
    out_dir = tmp_path / "out"
    if door == "command":  # lmms-eval's own defaults, --reasoning_tags included
        command = [sys.executable, "-m", "lmms_eval", "--model", "from_log", "--model_args", model_args,
                   "--tasks", tasks, "--output_path", str(out_dir)]
        run = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, timeout=600,
                             check=False)
        assert run.returncode == 0, run.stderr[-4000:]
        results = json.loads(next(out_dir.rglob("*_results.json")).read_text())["results"]
    elif door == "python":
        from lmms_eval.evaluator import simple_evaluate

        for key, value in env.items():
            monkeypatch.setenv(key, value)
        results = simple_evaluate(model="from_log", model_args=model_args, tasks=list(TASKS), bootstrap_iters=0)["results"]
    else:
        from trl_latent.cli_eval import main

        assert main(["--model", "from_log", "--model_args", model_args, "--tasks", tasks, "--dsr_root", str(dsr_root),
                     "--dyn_root", str(dyn_root), "--output_path", str(out_dir)]) == 0
        results = json.loads(next(out_dir.rglob("*_results.json")).read_text())["results"]
    assert scores(results) == {task: pytest.approx(expected(task)) for task in TASKS}
