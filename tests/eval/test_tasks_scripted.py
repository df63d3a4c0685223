"""The tasks through lmms-eval's real ``simple_evaluate`` with scripted answers; every number worked by hand.

One set of answers is scored under each DSR-Bench protocol, so the verdicts differ exactly where the protocols' rules
do; standard errors come from lmms-eval's own CLT / clustered machinery and are checked against its formulas.
"""

from __future__ import annotations

import math

import pytest

pytest.importorskip("lmms_eval")

from lmms_eval.api.metrics import clustered_stderr  # noqa: E402
from lmms_eval.evaluator import simple_evaluate  # noqa: E402
from lmms_eval.tasks import TaskManager  # noqa: E402

from lmms_eval_dsr import tasks_dir  # noqa: E402
from lmms_eval_dsr.benchmarks import BenchmarkDataError  # noqa: E402
from lmms_eval_dsr.prompts import DSR_BENCH_PREAMBLE, DYN_BENCH_POST_PROMPT  # noqa: E402
from trl_latent.answers import RELEASE_PROMPT_SUFFIX, THINK_PROMPT_SUFFIX  # noqa: E402
from trl_latent.tokens import LATENT_END, LATENT_PAD, LATENT_START  # noqa: E402

from .scripted_model import ScriptedLMM  # noqa: E402

BLOCK = LATENT_START + LATENT_PAD * 4 + LATENT_END
# q0-q4 are on videos v0, v0, v1, v1, v2; q5's video is missing. Answers A, B, C, D, A.
DSR_ANSWERS = {
    "q0 distance?": "A",  # right everywhere
    "q1 distance?": "Clearly the answer is B",  # official/4dthinker read the C of "Clearly"; ours the standalone B
    "q2 direction?": "<answer>C</answer><answer>A</answer>",  # first span (C) for them, last span (A) for ours
    "q3 camera?": "dolly in",  # option text of D: only ours maps it
    "q4 other?": "A",
    "q5 unseen?": "A",  # video missing: never asked
}


@pytest.fixture(scope="module")
def task_manager() -> TaskManager:
    return TaskManager(include_path=tasks_dir(), include_defaults=False)


def evaluate(task: str, answers: dict, task_manager: TaskManager, **kwargs) -> tuple[dict, ScriptedLMM]:
    model = ScriptedLMM(answers)
    out = simple_evaluate(model=model, tasks=[task], task_manager=task_manager, bootstrap_iters=0, log_samples=True,
                          **kwargs)
    return out, model


def metrics(out: dict, task: str) -> dict:
    return {key.split(",")[0]: value for key, value in out["results"][task].items() if key.endswith(",none")}


def test_tasks_are_indexed(task_manager: TaskManager) -> None:
    assert {"dsr_bench", "dsr_bench_4dthinker", "dsr_bench_think", "dyn_bench", "dyn_bench_think"} <= set(
        task_manager.all_tasks)


@pytest.mark.parametrize(
    ("task", "correct"),
    [("dsr_bench", [1, 0, 1, 0, 1]), ("dsr_bench_4dthinker", [1, 0, 1, 0, 1]), ("dsr_bench_think", [1, 1, 0, 1, 1])],
)
def test_dsr_protocols_score_the_same_answers_differently(task, correct, dsr_root, monkeypatch, task_manager) -> None:
    monkeypatch.setenv("DSR_BENCH_ROOT", str(dsr_root))
    out, model = evaluate(task, dict(DSR_ANSWERS), task_manager)
    m = metrics(out, task)
    n = len(correct)
    assert m["accuracy"] == pytest.approx(sum(correct) / n)  # micro: the headline
    by_type = {"abs_dis": correct[:2], "rel_dir": [correct[2]], "cam_pan": [correct[3]], "non_temp": [correct[4]]}
    per_type = {"Abs Dis": sum(correct[:2]) / 2, "Rel Dir": correct[2], "Non-Temp Based": correct[4], "cam_pan": correct[3]}
    if task == "dsr_bench_4dthinker":  # the release's table: its 13 types only, "Avg" over those present
        del per_type["cam_pan"], by_type["cam_pan"]
    assert m["per_type"] == pytest.approx(per_type)
    assert m["macro_accuracy"] == pytest.approx(sum(sum(v) / len(v) for v in by_type.values()) / len(by_type))
    assert m["abs_dir"] is None and m["missing_media"] == 1
    # lmms-eval's standard errors from the per-sample score: CLT over all, clustered on the video, per type over its own
    mean = sum(correct) / n
    assert m["accuracy_stderr_clt"] == pytest.approx(math.sqrt(sum((c - mean) ** 2 for c in correct) / (n - 1) / n))
    assert m["accuracy_stderr_clustered"] == pytest.approx(clustered_stderr(correct, ["v0", "v0", "v1", "v1", "v2"]))
    assert m["abs_dis_stderr_clt"] == (pytest.approx(0.5) if correct[0] != correct[1] else 0.0)
    assert m["macro_accuracy_stderr_clt"] == "N/A" and m["per_type_stderr_clt"] == "N/A"
    samples = out["samples"][task]
    assert [s["accuracy"]["score"] for s in samples] == correct
    assert {s["accuracy"]["video_id"] for s in samples} == {"v0", "v1", "v2"}
    assert len(model.seen) == 5


def test_dsr_official_inputs(dsr_root, monkeypatch, task_manager) -> None:
    monkeypatch.setenv("DSR_BENCH_ROOT", str(dsr_root))
    _, model = evaluate("dsr_bench", dict(DSR_ANSWERS), task_manager)
    first = model.seen[0]
    assert first["context"] == (f"\n{DSR_BENCH_PREAMBLE}\nQuestion: q0 distance?\nA. closer\nB. farther\nC. same\n"
                                "D. unknown\nAnswer: ")
    assert first["gen_kwargs"]["max_new_tokens"] == 2048 and first["gen_kwargs"]["do_sample"] is False
    assert first["visuals"][0]["rule"] == "qwen" and first["visuals"][0]["path"].endswith("v0.mp4")


def test_dsr_4dthinker_inputs(dsr_root, monkeypatch, task_manager) -> None:
    monkeypatch.setenv("DSR_BENCH_ROOT", str(dsr_root))
    _, model = evaluate("dsr_bench_4dthinker", dict(DSR_ANSWERS), task_manager)
    first = model.seen[0]
    assert first["context"] == "q0 distance?\n\nA. closer\nB. farther\nC. same\nD. unknown" + RELEASE_PROMPT_SUFFIX
    kwargs = first["gen_kwargs"]
    assert (kwargs["temperature"], kwargs["top_p"], kwargs["max_new_tokens"], kwargs["seed"]) == (0.7, 0.9, 2048, 42)
    assert "until" not in kwargs or kwargs["until"] in ([], None, ["\n\n"]) or "</answer>" not in kwargs["until"]
    assert first["visuals"][0]["rule"] == "release"


def test_repeats_score_each_question_by_its_share_of_right_answers(dsr_root, monkeypatch, task_manager) -> None:
    monkeypatch.setenv("DSR_BENCH_ROOT", str(dsr_root))
    answers = {**DSR_ANSWERS, "q0 distance?": ["A", "B"], "q1 distance?": ["B", "B"]}  # q0 half right, q1 right
    out, model = evaluate("dsr_bench_4dthinker", answers, task_manager, repeats=2)
    m = metrics(out, "dsr_bench_4dthinker")
    scores = [0.5, 1.0, 1.0, 0.0, 1.0]
    assert len(model.seen) == 10
    assert m["accuracy"] == pytest.approx(sum(scores) / 5)
    samples = out["samples"]["dsr_bench_4dthinker"]
    assert [s["accuracy"]["score"] for s in samples] == scores
    assert samples[0]["accuracy"]["predictions"] == ["A", "B"] and samples[0]["accuracy"]["responses"] == 2
    # the standard error is over the per-question means, so repeats shrink it only by the within-question part
    assert m["accuracy_stderr_clt"] == pytest.approx(math.sqrt(sum((x - 0.7) ** 2 for x in scores) / 4 / 5))


def test_think_prompt_and_latent_blocks(dsr_root, monkeypatch, task_manager) -> None:
    monkeypatch.setenv("DSR_BENCH_ROOT", str(dsr_root))
    answers = {**DSR_ANSWERS, "q0 distance?": f"<think>imagine {BLOCK} closer</think><answer>A",
               "q1 distance?": f"<think>{BLOCK}{BLOCK}</think><answer>B</answer>"}
    out, model = evaluate("dsr_bench_think", answers, task_manager)
    assert metrics(out, "dsr_bench_think")["latent_blocks"] == pytest.approx(3 / 5)
    context = model.seen[0]["context"]
    assert context.startswith("q0 distance?\n\nA. closer\n") and context.endswith(THINK_PROMPT_SUFFIX)
    assert model.seen[0]["gen_kwargs"]["until"] == ["</answer>"]
    assert isinstance(model.seen[0]["visuals"][0], str)  # the model's own frame settings


def test_ids_file_scores_a_fixed_subset(dsr_root, monkeypatch, task_manager, tmp_path) -> None:
    monkeypatch.setenv("DSR_BENCH_ROOT", str(dsr_root))
    ids = tmp_path / "ids.txt"
    ids.write_text("# the subset\n0\n2\n5\n")
    monkeypatch.setenv("DSR_BENCH_IDS_FILE", str(ids))
    out, model = evaluate("dsr_bench", dict(DSR_ANSWERS), task_manager)
    m = metrics(out, "dsr_bench")
    assert len(model.seen) == 2 and m["accuracy"] == 1.0 and m["missing_media"] == 1  # id 5 has no video
    ids.write_text("[0, 99]")
    with pytest.raises(BenchmarkDataError, match=r"ids.txt: 1 id\(s\) not in the benchmark, e.g. \['99'\]"):
        evaluate("dsr_bench", dict(DSR_ANSWERS), task_manager)


def test_undecodable_video_counts_as_missing(dsr_root, monkeypatch, task_manager) -> None:
    monkeypatch.setenv("DSR_BENCH_ROOT", str(dsr_root))
    (dsr_root / "v2.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated")
    out, model = evaluate("dsr_bench", dict(DSR_ANSWERS), task_manager)
    m = metrics(out, "dsr_bench")
    assert len(model.seen) == 4 and m["missing_media"] == 2  # q4 (corrupt v2) and q5 (no video)
    assert m["accuracy"] == pytest.approx(2 / 4)


def test_dyn_bench_official_first_word(dyn_root, monkeypatch, task_manager) -> None:
    monkeypatch.setenv("DYN_BENCH_ROOT", str(dyn_root))
    answers = {
        "c0?": "A",  # Camera-Object right
        "c1?": "b.",  # right: first word, punctuation stripped, upper-cased
        "i0?": "z",  # option text of C: wrong officially
        "o0?": "A",  # Object-Scene right
        "o1?": "The answer is A",  # first word "THE": wrong
        "o2?": "B",  # right
        "lost?": "A",  # scene without frames: skipped
    }
    out, model = evaluate("dyn_bench", answers, task_manager)
    m = metrics(out, "dyn_bench")
    assert m["per_category"] == pytest.approx({"Camera-Object": 1.0, "Inter-Object": 0.0, "Object-Scene": 2 / 3})
    assert m["overall"] == pytest.approx((1 + 0 + 2 / 3) / 3)  # the paper's Overall: mean of categories
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["missing_media"] == 1 and len(model.seen) == 6
    assert m["object_scene_stderr_clt"] == pytest.approx(math.sqrt(1 / 3 / 3))  # std of [1, 0, 1] / sqrt(3)
    seen = model.seen[0]
    assert seen["context"].endswith(DYN_BENCH_POST_PROMPT) and seen["gen_kwargs"]["max_new_tokens"] == 512
    video = seen["visuals"][0]
    assert video["all_frames"] is True and video["fps"] == 2.0
    assert [p.rsplit("/", 1)[-1] for p in video["frames"]] == [f"frame_{t:04d}.jpg" for t in range(4)]


def test_dyn_bench_think(dyn_root, monkeypatch, task_manager) -> None:
    monkeypatch.setenv("DYN_BENCH_ROOT", str(dyn_root))
    answers = {q: "<think>hmm</think><answer>The answer is A</answer>" for q in ("c0?", "c1?", "i0?", "o0?", "o1?", "o2?")}
    out, model = evaluate("dyn_bench_think", answers, task_manager)
    m = metrics(out, "dyn_bench_think")
    assert m["per_category"] == pytest.approx({"Camera-Object": 0.5, "Inter-Object": 0.0, "Object-Scene": 2 / 3})
    assert all(seen["context"].endswith(THINK_PROMPT_SUFFIX) for seen in model.seen)


def test_missing_root_names_what_to_download(monkeypatch, task_manager) -> None:
    monkeypatch.delenv("DSR_BENCH_ROOT", raising=False)
    with pytest.raises(FileNotFoundError, match="TencentARC/DSR_Suite-Data"):
        evaluate("dsr_bench", {}, task_manager)


def test_release_table_keeps_its_13_types() -> None:
    """dsr_eval.py's table and "Avg" cover its 13 types (N/A without them); the other protocols keep every type."""
    from lmms_eval_dsr.tasks.dsr_bench.utils import dsr_aggregate_per_type, dsr_macro_accuracy

    def records(protocol: str) -> list[dict]:
        rows = [("abs_dis", 1), ("cam_pan", 0), ("cam_pan", 0)]
        return [{"group": g, "correct": c, "responses": 1, "protocol": protocol} for g, c in rows]

    assert dsr_aggregate_per_type(records("4dthinker")) == {"Abs Dis": 1.0}
    assert dsr_macro_accuracy(records("4dthinker")) == 1.0 and dsr_macro_accuracy(records("think")) == 0.5
    assert dsr_macro_accuracy(records("4dthinker")[1:]) is None and dsr_aggregate_per_type(records("think")[1:]) == {
        "cam_pan": 0.0}
