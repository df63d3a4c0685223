"""The quickstart's latent diagnostics: held-out imagery lookup, the swap partner, and the summary's arithmetic (the
full path, through trained arms and the report, runs in tests/test_quickstart.py)."""

import json
import re

import pytest
import torch

from trl_latent.quickstart import diagnostics
from trl_latent.quickstart.diagnostics import SAMPLES_FILE, heldout_imagery, summarise, swap_partner
from trl_latent.quickstart.stats import load_outcomes

OPTIONS = ["A. It moves left", "B. It moves right", "C. It moves up", "D. It moves down"]


def _row(video, question, answer="A", group="cam_dir"):
    return {"question_id": 0, "video_id": video, "video": f"/x/{video}.mp4", "question": question,
            "options": OPTIONS, "answer": answer, "type": group}


def _write(path, rows, letters):
    from lmms_eval_dsr.tasks.dsr_bench.utils import dsr_process_results_think

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        for row, letter in zip(rows, letters):
            text = f"<think>x</think><answer>{letter}</answer>"
            record = dsr_process_results_think(row, [[text]])["accuracy"]
            handle.write(json.dumps({"doc": row, "accuracy": record, "filtered_resps": [[text]]}) + "\n")


def test_heldout_imagery_matches_questions_by_video_and_wording(tmp_path):
    (tmp_path / "qa" / "camera").mkdir(parents=True)
    (tmp_path / "imagery").mkdir()
    qa = [{"qa_id": "v1-cam-000", "question": "Between 0s and 2s, where?"},
          {"qa_id": "v1-cam-001", "question": "Between 1s and 3s, where?"}]
    (tmp_path / "qa" / "camera" / "v1.json").write_text(json.dumps(qa))
    (tmp_path / "imagery" / "v1.json").write_text(json.dumps({"v1-cam-001": {"images": ["b_0.jpg", "b_1.jpg"]}}))
    rows = [_row("v1", "Between 1s and 3s, where? "), _row("v1", "Between 0s and 2s, where?"), _row("v2", "q")]
    found = heldout_imagery(tmp_path, rows)
    assert found == [[tmp_path / "imagery" / "v1" / "b_0.jpg", tmp_path / "imagery" / "v1" / "b_1.jpg"], [], []]


def test_swap_partner_takes_another_video_half_the_list_away():
    rows = [_row(v, f"q{i}") for i, v in enumerate(["a", "a", "b", "b", "c", "c"])]
    partners = swap_partner(rows)
    assert partners == [3, 4, 5, 0, 1, 2]
    assert all(rows[i]["video_id"] != rows[j]["video_id"] for i, j in enumerate(partners))
    rows = [_row(v, f"q{i}") for i, v in enumerate(["a", "a", "a", "b"])]
    assert swap_partner(rows) == [3, 3, 3, 1]  # half-way lands on the same video: moved on to the next other one
    assert swap_partner([_row("a", "q0"), _row("a", "q1")]) == [1, 0]  # one video: another question at least


def test_summary_is_oracle_minus_self_and_self_minus_swapped_per_family(tmp_path):
    rows = [_row("a", "q0", "A"), _row("b", "q1", "B"), _row("c", "q2", "C", "cam_rot"), _row("d", "q3", "D", "cam_rot")]
    _write(tmp_path / "self_fed" / SAMPLES_FILE, rows, "AABB")  # 1 of 4 right
    _write(tmp_path / "oracle" / SAMPLES_FILE, rows, "ABCD")  # 4 of 4
    _write(tmp_path / "swapped" / SAMPLES_FILE, rows, "BBBB")  # 1 of 4 (another one)
    summary = summarise(tmp_path, n_boot=200)
    assert (summary["self_fed"], summary["oracle"], summary["swapped"]) == (0.25, 1.0, 0.25)
    assert summary["imagination_gap"] == pytest.approx(0.75) and summary["content_dependence"] == pytest.approx(0.0)
    rot = summary["by_family"]["cam_rot"]
    assert rot["n"] == 2 and rot["self_fed"] == 0.0 and rot["oracle"] == 1.0
    assert rot["imagination_gap"]["b_only"] == 2 and rot["imagination_gap"]["a_only"] == 0
    gap = summary["by_family"]["overall"]["content_dependence"]
    assert (gap["b_only"], gap["a_only"]) == (1, 1)  # self-fed right on q0 only, swapped on q1 only
    # headroom: oracle − text-only on the diagnosed questions, text-only's fifth (undiagnosed) question left out
    _write(tmp_path / "text_only.jsonl", [*rows, _row("e", "q4", "A")], "AACDA")  # 3 of the 4 diagnosed right
    diagnostics.add_headroom(summary, load_outcomes(tmp_path / "text_only.jsonl"), tmp_path, n_boot=200)
    assert summary["headroom"] == pytest.approx(0.25) and summary["by_family"]["overall"]["headroom"]["n"] == 4
    assert summary["by_family"]["cam_dir"]["headroom"]["b_only"] == 1  # q1: the oracle right, text-only not
    text = "\n".join(diagnostics.markdown({"DIFT": {**summary, "norm_ratio": 1.5, "feedback_norm": None,
                                                   "questions_with_latents": 3}}))
    assert "| DIFT | cam_rot | 2 | 0.0% | 100.0% | 0.0% | +100.0" in text and "norm ratio 1.50" in text
    assert re.search(r"\| DIFT \| cam_dir \| 2 \| 50.0% \| 100.0% \| 50.0% \| \+50.0 \([^|]*\) \| \+0.0 \([^|]*\) \| "
                     r"\+50.0 \([^|]*\) \|", text)  # gap, content dependence, headroom
    _write(tmp_path / "short.jsonl", rows[:3], "AAC")
    with pytest.raises(ValueError, match=r"short.jsonl lacks 1 of the questions of .*oracle.*'q3' on video d"):
        diagnostics.add_headroom(summary, load_outcomes(tmp_path / "short.jsonl"), tmp_path)


def test_self_fed_probes_leave_out_a_latent_block_cut_by_the_token_limit():
    """A derailed answer can stop mid-block (here 2 whole blocks of K = 4 and 3 vectors of a third); the probe reads
    the whole blocks, and a question without one is not counted."""
    generator = torch.Generator().manual_seed(0)
    rows = [_row(f"v{i}", f"q{i}", "AB"[i % 2]) for i in range(12)]
    latents = [torch.randn(11 if i == 0 else 8, 5, generator=generator) for i in range(11)] + [torch.randn(3, 5)]
    for i, row in enumerate(rows[:11]):  # the answer is in the sign of the first feature
        latents[i][:, 0] = 3.0 if row["answer"] == "A" else -3.0
    probes = diagnostics.self_fed_probes(rows, latents, latent_size=4)
    assert probes["cam_dir"]["n_self_fed"] == 11 and probes["cam_dir"]["self_fed"] == 1.0


def test_self_fed_answers_and_latents_come_from_the_evaluation_matched_by_question(tmp_path):
    from lmms_eval_dsr.models.latent_qwen2_5_vl import LATENTS_FILE

    rows = [_row("v1", "q1"), _row("v2", "q2")]
    log = tmp_path / "model" / f"20261205_000000_{SAMPLES_FILE}"
    _write(log, rows[::-1], ["B", "C"])  # the log in another order than the rows
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    log.write_text("".join(json.dumps({**line, "doc_id": doc}) + "\n" for doc, line in zip((7, 3), lines)))
    with pytest.raises(FileNotFoundError, match="save_latents="):
        diagnostics.evaluated(tmp_path, rows)
    (tmp_path / diagnostics.LATENTS_DIR).mkdir()
    fed = {3: [torch.ones(2, 4)], 7: [torch.zeros(1, 4)]}
    torch.save(fed, tmp_path / diagnostics.LATENTS_DIR / LATENTS_FILE.format(task=diagnostics.TASK, rank=0))
    texts, latents = diagnostics.evaluated(tmp_path, rows)
    assert texts == ["<think>x</think><answer>C</answer>", "<think>x</think><answer>B</answer>"]
    assert torch.equal(latents[0], fed[3][0]) and torch.equal(latents[1], fed[7][0])
    with pytest.raises(ValueError, match=r"held-out question 2 \(v3: 'q3'\).*smaller --limit"):
        diagnostics.evaluated(tmp_path, [*rows, _row("v3", "q3")])


def test_closeness_tells_imagining_the_mean_picture_from_imagining_the_question():
    torch.manual_seed(0)
    shared = torch.randn(2, 8) * 4  # K = 2 slots sharing most of their direction
    targets = [(shared + torch.randn(2, 8)) for _ in range(4)] + [None]
    center = torch.stack(targets[:4]).double().mean(0)
    partners = [2, 3, 0, 4, 1]  # question 3's partner has no target: left out of "other"
    mean_picture = [center.clone() for _ in range(4)] + [torch.empty(0, 8)]
    near = diagnostics.closeness(mean_picture, targets, partners, latent_size=2)
    assert (near["n"], near["n_other"]) == (4, 3)
    assert near["mean"] == pytest.approx(1.0) and near["own"] == pytest.approx(near["other"], abs=0.02)
    assert near["own_centred"] == pytest.approx(0.0, abs=1e-6)  # nothing of the question's own picture

    imagined = [t + 0.3 * torch.randn(2, 8) for t in targets[:4]] + [torch.randn(2, 8)]
    near = diagnostics.closeness(imagined, targets, partners, latent_size=2)

    def cos(a, b):
        return torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=-1)

    own = torch.cat([cos(imagined[i] - center, targets[i] - center) for i in range(4)]).mean()
    other = torch.cat([cos(imagined[i] - center, targets[partners[i]] - center) for i in (0, 1, 2)]).mean()
    assert near["own_centred"] == pytest.approx(own.item()) and near["other_centred"] == pytest.approx(other.item())
    assert near["own_centred"] > 0.8 > near["other_centred"]
    assert near["own"] == pytest.approx(torch.cat([cos(imagined[i], targets[i]) for i in range(4)]).mean().item())
    # a latent block cut short (another shape than the targets) is left out; no matching question at all: None
    assert diagnostics.closeness([torch.randn(1, 8)] * 5, targets, partners, latent_size=2) is None
