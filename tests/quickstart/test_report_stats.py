"""The quickstart report's paired statistics and conclusion diagnostics on hand-built lmms-eval samples files."""

import json
import math

import numpy as np
import pytest

from trl_latent.quickstart import report
from trl_latent.quickstart.stats import (
    OVERALL,
    cluster_bootstrap_ci,
    conclusion_diagnostics,
    load_outcomes,
    mcnemar_exact,
    mean_ci95,
    paired_difference,
    stated_conclusion,
    t_quantile_975,
)

OPTIONS = ["A. It moves left", "B. It moves right", "C. It moves up", "D. It moves away from the camera"]
CONCISE = "<think>I picture the red cube at 0.0s, 1.5s: <|latent_start|><|latent_pad|><|latent_end|> So: {}.</think>"
FULL = ("<think>The question is about the span from 0.0s to 1.5s. I focus on the red cube, the moving object, and "
        "picture it highlighted at 0.0s, 1.5s: <|latent_start|><|latent_pad|><|latent_end|> The red cube's centre "
        "shifts by (+0.40, +0.00, +0.01) in that camera frame (x right, y down, z forward). Comparing these moments, "
        "the observation that fits is: {}.</think>")


def sample(video, question, answer, prediction, *, group="abs_dir", response=None, missing=0, options=OPTIONS):
    """One line of ``samples_dsr_bench_think.jsonl`` as lmms-eval 0.7.3 logs it (the fields the report reads)."""
    response = response if response is not None else f"<think>...</think><answer>{prediction}</answer>"
    record = {"question_id": 0, "video_id": video, "group": group, "answer": answer, "prediction": prediction,
              "predictions": [prediction], "correct": int(prediction == answer), "responses": 1,
              "score": float(prediction == answer), "missing_media": missing, "latent_blocks": 0.0}
    doc = {"question_id": 0, "video_id": video, "video": f"/data/{video}.mp4", "question": question,
           "options": options, "answer": answer, "type": group, "missing_media": missing}
    return {"doc_id": 0, "doc": doc, "target": answer, "resps": [[response]], "filtered_resps": [[response]],
            "accuracy": record}


def write(path, samples):
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))
    return path


def arm(tmp_path, name, correct, videos, groups=None):
    """An arm whose i-th question (on video ``videos[i]``) is answered right when ``correct[i]``."""
    groups = groups or ["abs_dir"] * len(correct)
    return write(tmp_path / f"{name}.jsonl", [
        sample(v, f"question {i}", "A", "A" if ok else "B", group=g)
        for i, (ok, v, g) in enumerate(zip(correct, videos, groups))])


def test_identical_arms_differ_by_nothing(tmp_path):
    rng = np.random.default_rng(1)
    path = arm(tmp_path, "a", rng.random(40) < 0.5, [f"v{i // 4}" for i in range(40)],
               ["abs_dir", "rel_dis"] * 20)
    same = load_outcomes(path)
    rows = paired_difference(same, same, n_boot=500, seed=3)
    assert list(rows) == [OVERALL, "abs_dir", "rel_dis"]
    assert [rows[g].n for g in rows] == [40, 20, 20] and rows[OVERALL].videos == 10
    for d in rows.values():
        assert d.difference == 0 and d.ci95 == (0.0, 0.0) and d.p_mcnemar == 1.0 and d.b_only == d.a_only == 0


def test_mcnemar_exact_against_the_binomial_by_hand(tmp_path):
    # 8 questions only B gets right, 2 only A, 5 both, 5 neither: p = 2 * P(X <= 2 | n=10, 1/2) = 2 * 56 / 1024
    a = [False] * 8 + [True] * 2 + [True] * 5 + [False] * 5
    b = [True] * 8 + [False] * 2 + [True] * 5 + [False] * 5
    videos = [f"v{i}" for i in range(20)]
    rows = paired_difference(load_outcomes(arm(tmp_path, "a", a, videos)), load_outcomes(arm(tmp_path, "b", b, videos)),
                             n_boot=200)
    d = rows[OVERALL]
    assert (d.b_only, d.a_only, d.n) == (8, 2, 20)
    assert d.p_mcnemar == pytest.approx(112 / 1024) and d.difference == pytest.approx(0.3)
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(30, 0) == pytest.approx(2 * 0.5**30)
    scipy_stats = pytest.importorskip("scipy.stats")  # the outside reference
    for b_only, a_only in [(8, 2), (3, 11), (40, 25), (0, 7)]:
        expected = scipy_stats.binomtest(b_only, b_only + a_only, 0.5).pvalue
        assert mcnemar_exact(b_only, a_only) == pytest.approx(expected, rel=1e-9)


def test_t_interval_over_seeds_against_tables_and_scipy():
    # textbook t(0.975) for 1, 2, 4 and 9 degrees of freedom; then the docs' five-seed figure by hand: per seed
    # −2.0, +2.1, +3.3, −0.3, −2.6 → mean +0.1, std 2.554, ±2.776 × 2.554 / √5 = ±3.17
    assert [round(t_quantile_975(df), 3) for df in (1, 2, 4, 9)] == [12.706, 4.303, 2.776, 2.262]
    low, high = mean_ci95([-2.0, 2.1, 3.3, -0.3, -2.6])
    assert (round(low, 2), round(high, 2)) == (-3.07, 3.27)
    assert mean_ci95([0.5, 0.5, 0.5]) == (0.5, 0.5)
    with pytest.raises(ValueError, match="at least 1 degree of freedom"):
        mean_ci95([0.3])
    scipy_stats = pytest.importorskip("scipy.stats")  # the outside reference, odd and even series alike
    for df in [*range(1, 41), 99, 100, 1000]:
        assert t_quantile_975(df) == pytest.approx(scipy_stats.t.ppf(0.975, df), rel=1e-10)


def test_bootstrap_interval_covers_the_true_difference():
    # B right with probability 0.7, A with 0.5, per question, 40 videos of 5: the 95% interval should cover +0.2
    # in most of 60 simulated benchmarks (binomial: 57 expected; at least 50 holds with overwhelming probability)
    rng = np.random.default_rng(0)
    videos = [f"v{i // 5}" for i in range(200)]
    covered = 0
    for _ in range(60):
        differences = (rng.random(200) < 0.7).astype(float) - (rng.random(200) < 0.5)
        low, high = cluster_bootstrap_ci(videos, differences, 1000, rng)
        covered += low <= 0.2 <= high
    assert covered >= 50


def test_bootstrap_resamples_whole_videos():
    # every video holds one question B wins and one A wins: any resample of whole videos has difference 0 exactly,
    # while resampling single questions would not
    videos = [f"v{i // 2}" for i in range(60)]
    differences = np.array([1.0, -1.0] * 30)
    assert cluster_bootstrap_ci(videos, differences, 2000, np.random.default_rng(0)) == (0.0, 0.0)

    # B wins all 20 questions of half the videos, ties the rest: with 10 videos the interval is wide (about ±0.3);
    # resampling the 200 questions as if independent would give about ±0.07
    videos = [f"v{i // 20}" for i in range(200)]
    differences = np.array([1.0] * 100 + [0.0] * 100)
    low, high = cluster_bootstrap_ci(videos, differences, 4000, np.random.default_rng(0))
    assert low < 0.3 and high > 0.7


def test_seed_reproduces_and_is_recorded(tmp_path):
    rng = np.random.default_rng(2)
    videos = [f"v{i // 3}" for i in range(60)]
    paths = {name: arm(tmp_path, name, rng.random(60) < p, videos) for name, p in [("text", 0.3), ("dift", 0.5)]}
    first = report.arm_statistics(paths, [("text", "dift")], seed=7, n_boot=300)
    again = report.arm_statistics(paths, [("text", "dift")], seed=7, n_boot=300)
    other = report.arm_statistics(paths, [("text", "dift")], seed=8, n_boot=300)
    assert first == again and first.paired != other.paired
    data = json.loads(json.dumps(first.to_json()))
    assert (data["seed"], data["n_boot"]) == (7, 300)
    (pair,) = data["paired"]
    assert (pair["a"], pair["b"]) == ("text", "dift")
    overall = pair["groups"]["overall"]
    assert overall["n"] == 60 and overall["videos"] == 20 and len(overall["ci95"]) == 2
    assert overall["ci95"][0] <= overall["difference"] <= overall["ci95"][1]
    assert set(data["conclusions"]) == {"text", "dift"}


def test_duplicate_question_raises_naming_file_and_lines(tmp_path):
    path = write(tmp_path / "dup.jsonl", [sample("v0", "q", "A", "A"), sample("v1", "q", "A", "B"),
                                          sample("v0", "q", "A", "C")])
    with pytest.raises(ValueError, match=rf"{path}:3: .*'q' on video v0 already at line 1"):
        load_outcomes(path)


def test_other_questions_are_refused_missing_media_dropped(tmp_path):
    a = write(tmp_path / "a.jsonl", [sample("v0", "q0", "A", "A"), sample("v1", "q1", "A", "A")])
    b = write(tmp_path / "b.jsonl", [sample("v0", "q0", "A", "B"), sample("v2", "q2", "A", "A")])
    with pytest.raises(ValueError, match=rf"{a} and {b} hold different questions: 1 only in the first, 1 only"):
        paired_difference(load_outcomes(a), load_outcomes(b), n_boot=10)

    # the same, but each run reports one question skipped for missing media: the unshared questions drop out
    a = write(tmp_path / "a.jsonl", [sample("v0", "q0", "A", "A", missing=1), sample("v1", "q1", "A", "A", missing=1)])
    b = write(tmp_path / "b.jsonl", [sample("v0", "q0", "A", "B", missing=1), sample("v2", "q2", "A", "A", missing=1)])
    rows = paired_difference(load_outcomes(a), load_outcomes(b), n_boot=10)
    assert rows[OVERALL].n == 1 and rows[OVERALL].difference == -1

    # a shared question whose options differ means another benchmark
    b = write(tmp_path / "b.jsonl", [sample("v0", "q0", "A", "B", options=OPTIONS[::-1]),
                                     sample("v1", "q1", "A", "A")])
    with pytest.raises(ValueError, match=rf"{a}:1 and {b}:1: the same question differs"):
        paired_difference(load_outcomes(a), load_outcomes(b), n_boot=10)


def test_scores_count_every_line_when_media_were_missing(tmp_path):
    # ``missing_media`` on a record is the run's count of skipped questions, not a flag of that question
    path = write(tmp_path / "s.jsonl", [sample("v0", "q0", "A", "A", missing=2),
                                        sample("v1", "q1", "A", "B", missing=2)])
    overall = report.scores_from_samples(path)["overall"]
    assert (overall.correct, overall.total) == (1, 2)
    assert load_outcomes(path).missing_media == 2


@pytest.mark.parametrize("template", [CONCISE, FULL])
def test_conclusion_from_the_quickstart_templates(template):
    for option in OPTIONS:
        text = option[3:]
        response = template.format(text) + "<answer>C</answer>"
        assert stated_conclusion(response, OPTIONS) == option[0]
    # generation cut before </think> still has its conclusion; the answer span is not read
    assert stated_conclusion(CONCISE.format("It moves right")[:-len("</think>")], OPTIONS) == "B"
    assert stated_conclusion("<think>no idea</think><answer>It moves up</answer>", OPTIONS) is None


def test_conclusion_is_the_last_named_option_and_whole_words_only():
    think = "<think>It moves left at first, then it moves up. So: it moves UP!</think><answer>A</answer>"
    assert stated_conclusion(think, OPTIONS) == "C"
    # an option contained in a longer one: the longer wins where both end
    options = ["A. It moves away", "B. It moves away from the camera", "C. It moves up", "D. It stays"]
    assert stated_conclusion("<think>So: it moves away from the camera.</think>", options) == "B"
    assert stated_conclusion("<think>So: it moves away.</think>", options) == "A"
    # "It moves upward" does not name "It moves up"
    assert stated_conclusion("<think>It moves upward</think>", OPTIONS) is None


@pytest.mark.parametrize("garbage", ["", "\n\n\n", "<think></think>", "<answer>B</answer>", "So: . the . is",
                                     "<think>left right up away</think>", "<|latent_pad|>" * 5])
def test_conclusion_of_garbage_is_none(garbage):
    assert stated_conclusion(garbage, OPTIONS) is None


def test_conclusion_diagnostics_count_truth_and_agreement(tmp_path):
    lines = [
        # sees the motion, picks its letter: right conclusion, agreeing letter
        sample("v0", "q0", "A", "A", response=CONCISE.format("It moves left") + "<answer>A</answer>"),
        # sees the motion, wrong letter
        sample("v0", "q1", "A", "C", response=CONCISE.format("It moves left") + "<answer>C</answer>"),
        # wrong conclusion, its own letter
        sample("v1", "q2", "A", "B", group="rel_dis", response=FULL.format("It moves right") + "<answer>B</answer>"),
        # no conclusion at all
        sample("v1", "q3", "A", None, group="rel_dis", response="\n\n\n"),
    ]
    rows = conclusion_diagnostics(load_outcomes(write(tmp_path / "c.jsonl", lines)))
    assert list(rows) == [OVERALL, "abs_dir", "rel_dis"]
    overall = rows[OVERALL]
    assert (overall.n, overall.letter_correct, overall.recognised, overall.conclusion_correct, overall.agreeing) == \
        (4, 1, 3, 2, 2)
    assert rows["abs_dir"].to_dict() == {"n": 2, "letter_correct": 1, "recognised": 2, "conclusion_correct": 2,
                                         "agreeing": 1}


def test_markdown_sections_and_old_signature(tmp_path):
    rng = np.random.default_rng(4)
    videos = [f"v{i // 2}" for i in range(40)]
    groups = ["abs_dir", "rel_dis"] * 20
    paths = {label: arm(tmp_path, label.replace(" ", "_"), rng.random(40) < p, videos, groups)
             for label, p in [("text-only SFT", 0.3), ("DIFT", 0.5), ("DIFT + 4DRL", 0.6)]}
    scores = {label: report.scores_from_samples(path) for label, path in paths.items()}
    plain = report.markdown(scores, {"eval": 1.0}, {"seed": 0}, [])
    assert "Paired differences" not in plain

    stats = report.arm_statistics(paths, [("text-only SFT", "DIFT"), ("DIFT", "DIFT + 4DRL")], seed=5, n_boot=200)
    text = report.markdown(scores, {"eval": 1.0}, {"seed": 0}, [], statistics=stats)
    assert text.startswith(plain.split("## Time per stage")[0])
    section = text.split("## Paired differences")[1].split("## Conclusion")[0]
    d = stats.paired[("text-only SFT", "DIFT")][OVERALL]
    assert f"| DIFT − text-only SFT | {100 * d.accuracy_a:.1f} → {100 * d.accuracy_b:.1f} |" in section
    assert "| DIFT + 4DRL − DIFT |" in section and "200 replicates, seed 5" in section
    assert "| comparison | abs_dir | rel_dis |" in section and "n=20 |" in section
    assert all(f"| {label} |" in text.split("## Conclusion")[1] for label in paths)

    with pytest.raises(ValueError, match=r"pairs name arm\(s\) \['ablation'\]"):
        report.arm_statistics(paths, [("DIFT", "ablation")])


def test_bad_lines_name_file_line_and_field(tmp_path):
    line = sample("v0", "q", "A", "A")
    del line["doc"]["video_id"], line["accuracy"]["prediction"]
    path = write(tmp_path / "f.jsonl", [sample("v1", "q", "A", "A"), line])
    with pytest.raises(ValueError, match=rf"{path}:2: missing field\(s\) \['doc.video_id', 'accuracy.prediction'\]"):
        load_outcomes(path)
    path.write_text(json.dumps(sample("v1", "q", "A", "A")) + "\n{truncated\n")
    with pytest.raises(ValueError, match=rf"{path}:2: not a JSON line"):
        load_outcomes(path)
    path.write_text(json.dumps({"doc": {}}) + "\n")
    with pytest.raises(ValueError, match=rf"{path}:1: no 'doc' and per-question 'accuracy' record"):
        load_outcomes(path)


def test_samples_as_lmms_eval_tracker_writes_them_load(tmp_path):
    """lmms-eval's EvaluationTracker drops ``doc`` from the samples file; the accuracy record carries its fields."""
    line = sample("v0", "q", "A", "A")
    line["accuracy"].update(question=line["doc"]["question"], options=line["doc"]["options"])
    del line["doc"]
    outcome = load_outcomes(write(tmp_path / "f.jsonl", [line])).questions[("v0", "q")]
    assert outcome.options == tuple(OPTIONS) and outcome.prediction == "A"


def test_responses_from_repeats_are_refused(tmp_path):
    line = sample("v0", "q", "A", "A")
    line["filtered_resps"] = [["<answer>A</answer>", "<answer>B</answer>"]]
    path = write(tmp_path / "r.jsonl", [line])
    with pytest.raises(ValueError, match=rf"{path}:1: 2 responses"):
        load_outcomes(path)
    assert math.isclose(mcnemar_exact(1, 0), 1.0)
