"""The four tasks through lmms-eval's real ``simple_evaluate`` with scripted answers; every number worked by hand."""

from __future__ import annotations

import pytest

pytest.importorskip("lmms_eval")

from lmms_eval.evaluator import simple_evaluate  # noqa: E402
from lmms_eval.tasks import TaskManager  # noqa: E402

from lmms_eval_dsr import tasks_dir  # noqa: E402
from lmms_eval_dsr.prompts import DSR_BENCH_PREAMBLE, DYN_BENCH_POST_PROMPT  # noqa: E402
from trl_latent.answers import THINK_PROMPT_SUFFIX  # noqa: E402
from trl_latent.tokens import LATENT_END, LATENT_PAD, LATENT_START  # noqa: E402

from .scripted_model import ScriptedLMM  # noqa: E402

BLOCK = LATENT_START + LATENT_PAD * 4 + LATENT_END


@pytest.fixture(scope="module")
def task_manager() -> TaskManager:
    return TaskManager(include_path=tasks_dir(), include_defaults=False)


def evaluate(task: str, answers: dict[str, str], task_manager: TaskManager) -> tuple[dict, ScriptedLMM]:
    model = ScriptedLMM(answers)
    out = simple_evaluate(model=model, tasks=[task], task_manager=task_manager, bootstrap_iters=0, log_samples=True)
    return out, model


def metrics(out: dict, task: str) -> dict:
    return {key.split(",")[0]: value for key, value in out["results"][task].items() if key.endswith(",none")}


def test_tasks_are_indexed(task_manager: TaskManager) -> None:
    assert {"dsr_bench", "dsr_bench_think", "dyn_bench", "dyn_bench_think"} <= set(task_manager.all_tasks)


def test_dsr_bench_scores(dsr_root, monkeypatch, task_manager) -> None:
    monkeypatch.setenv("DSR_BENCH_ROOT", str(dsr_root))
    answers = {
        "q0 distance?": "A",  # abs_dis, correct
        "q1 distance?": "The answer is C.",  # abs_dis, wrong (B)
        "q2 direction?": "(C) up",  # rel_dir, correct
        "q3 camera?": "dolly in",  # cam_pan, option text of D, correct
        "q4 other?": "i cannot tell from these frames what happens in this video clip at all sorry",  # no answer
        "q5 unseen?": "A",  # video missing: never asked
    }
    out, model = evaluate("dsr_bench", answers, task_manager)
    m = metrics(out, "dsr_bench")
    assert m["accuracy"] == pytest.approx(60.0)  # 3 of 5 evaluated
    assert m["per_type"] == {"Abs Dis": 50.0, "Rel Dir": 100.0, "Non-Temp Based": 0.0, "cam_pan": 100.0}
    assert m["macro_accuracy"] == pytest.approx((50 + 100 + 0 + 100) / 4)
    assert (m["abs_dis"], m["rel_dir"], m["non_temp"]) == (50.0, 100.0, 0.0)
    assert m["abs_dir"] is None  # no question of that type in the run
    assert m["missing_media"] == 1
    assert m["latent_blocks"] == 0
    assert len(model.seen) == 5
    first = model.seen[0]
    assert first["context"].startswith(DSR_BENCH_PREAMBLE) and first["context"].endswith("D. unknown\nAnswer: ")
    assert first["gen_kwargs"]["do_sample"] is False and first["gen_kwargs"]["temperature"] == 0
    assert first["visuals"][0].endswith("v0.mp4")
    samples = out["samples"]["dsr_bench"]
    assert sorted(str(s["accuracy"]["prediction"]) for s in samples) == ["A", "C", "C", "D", "None"]


def test_dsr_bench_think_scores_answer_tag_and_counts_latents(dsr_root, monkeypatch, task_manager) -> None:
    monkeypatch.setenv("DSR_BENCH_ROOT", str(dsr_root))
    answers = {
        # cut at the `</answer>` stop string, as lmms-eval models do
        "q0 distance?": f"<think>A is tempting; imagine it {BLOCK} it gets closer</think><answer>A",
        "q1 distance?": f"<think>D? {BLOCK}{BLOCK} no</think><answer>B</answer>",
        "q2 direction?": "<think>It moves up</think>",  # no answer tag, no letter: no answer
        "q3 camera?": "<think>Clearly A</think><answer>D</answer>",
        "q4 other?": "<answer>B</answer>",
        "q5 unseen?": "A",
    }
    out, model = evaluate("dsr_bench_think", answers, task_manager)
    m = metrics(out, "dsr_bench_think")
    assert m["accuracy"] == pytest.approx(60.0)  # q0, q1, q3
    assert m["per_type"] == {"Abs Dis": 100.0, "Rel Dir": 0.0, "Non-Temp Based": 0.0, "cam_pan": 100.0}
    assert m["latent_blocks"] == pytest.approx(3 / 5)
    context = model.seen[0]["context"]
    assert context.startswith("q0 distance?\n\nA. closer\n") and context.endswith(THINK_PROMPT_SUFFIX)
    assert model.seen[0]["gen_kwargs"]["until"] == ["</answer>"]


def test_dyn_bench_scores(dyn_root, monkeypatch, task_manager) -> None:
    monkeypatch.setenv("DYN_BENCH_ROOT", str(dyn_root))
    answers = {
        "c0?": "A",  # Camera-Object correct
        "c1?": "A.",  # Camera-Object wrong
        "i0?": "z",  # Inter-Object: option text of C, correct
        "o0?": "A",  # Object-Scene correct
        "o1?": "B",  # wrong
        "o2?": "B",  # correct
        "lost?": "A",  # scene without frames: skipped
    }
    out, model = evaluate("dyn_bench", answers, task_manager)
    m = metrics(out, "dyn_bench")
    assert m["per_category"] == {"Camera-Object": 50.0, "Inter-Object": 100.0, "Object-Scene": pytest.approx(200 / 3)}
    assert m["overall"] == pytest.approx((50 + 100 + 200 / 3) / 3)
    assert m["accuracy"] == pytest.approx(400 / 6)  # 4 of 6 questions
    assert (m["camera_object"], m["inter_object"]) == (50.0, 100.0)
    assert m["missing_media"] == 1
    assert len(model.seen) == 6
    assert model.seen[0]["context"].endswith(DYN_BENCH_POST_PROMPT)
    frames = model.seen[0]["visuals"][0]["frames"]
    assert [p.rsplit("/", 1)[-1] for p in frames] == [f"frame_{t:04d}.jpg" for t in range(4)]


def test_dyn_bench_think_prompt(dyn_root, monkeypatch, task_manager) -> None:
    monkeypatch.setenv("DYN_BENCH_ROOT", str(dyn_root))
    answers = {q: "<think>hmm</think><answer>A</answer>" for q in ("c0?", "c1?", "i0?", "o0?", "o1?", "o2?")}
    out, model = evaluate("dyn_bench_think", answers, task_manager)
    m = metrics(out, "dyn_bench_think")
    assert m["per_category"] == {"Camera-Object": 50.0, "Inter-Object": 0.0, "Object-Scene": pytest.approx(200 / 3)}
    assert all(seen["context"].endswith(THINK_PROMPT_SUFFIX) for seen in model.seen)


def test_missing_root_names_what_to_download(monkeypatch, task_manager, tmp_path) -> None:
    monkeypatch.delenv("DSR_BENCH_ROOT", raising=False)
    with pytest.raises(FileNotFoundError, match="TencentARC/DSR_Suite-Data"):
        evaluate("dsr_bench", {}, task_manager)
