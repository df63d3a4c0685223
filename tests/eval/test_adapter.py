"""The ``latent_qwen2_5_vl`` adapter end to end: entry point → tiny offline checkpoints → real ``simple_evaluate``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("lmms_eval")
pytest.importorskip("torchvision")  # the Qwen2.5-VL video processor needs it

from lmms_eval.evaluator import simple_evaluate  # noqa: E402
from lmms_eval.models import get_model  # noqa: E402
from lmms_eval.tasks import TaskManager  # noqa: E402
from transformers import LogitsProcessor, LogitsProcessorList  # noqa: E402

import lmms_eval_dsr.models.latent_qwen2_5_vl as adapter  # noqa: E402
from lmms_eval_dsr import tasks_dir  # noqa: E402
from lmms_eval_dsr.scoring import INFERENCE_FAILED  # noqa: E402

MODEL_ARGS = "dtype=float32,max_pixels=3136,max_frames=4"


class ForceTokenAt(LogitsProcessor):
    """Make ``token`` the only choice at the given completion steps (so a random tiny model opens latent blocks)."""

    def __init__(self, prompt_length: int, steps: set[int], token: int) -> None:
        self.prompt_length, self.steps, self.token = prompt_length, steps, token

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[1] - self.prompt_length in self.steps:
            forced = torch.full_like(scores, float("-inf"))
            forced[:, self.token] = 0.0
            return forced
        return scores


@pytest.fixture(scope="module")
def task_manager() -> TaskManager:
    return TaskManager(include_path=tasks_dir(), include_defaults=False)


def run(task: str, checkpoint: Path, task_manager: TaskManager, batch_size: int = 1, **kwargs) -> dict:
    return simple_evaluate(
        model="latent_qwen2_5_vl", model_args=f"pretrained={checkpoint},{MODEL_ARGS}", tasks=[task],
        task_manager=task_manager, bootstrap_iters=0, batch_size=batch_size, log_samples=True, **kwargs,
    )


def test_entry_point_resolves_by_name() -> None:
    assert get_model("latent_qwen2_5_vl") is adapter.LatentQwen2_5_VL


def test_latent_checkpoint_runs_latent_loop_and_logs_blocks(checkpoints, dsr_root, monkeypatch, task_manager) -> None:
    monkeypatch.setenv("DSR_BENCH_ROOT", str(dsr_root))
    calls = []
    real = adapter.generate_with_latents

    def forced(model, input_ids, attention_mask=None, *, spec, **kwargs):
        calls.append(input_ids.shape[0])
        force = ForceTokenAt(input_ids.shape[1], {0, 7}, spec.start_id)  # blocks at steps 0-5 and 7-12
        return real(model, input_ids, attention_mask, spec=spec, logits_processor=LogitsProcessorList([force]), **kwargs)

    monkeypatch.setattr(adapter, "generate_with_latents", forced)
    out = run("dsr_bench_think", checkpoints["latent"], task_manager, batch_size=2, gen_kwargs="max_new_tokens=16")
    assert calls == [2, 2, 1]  # 5 questions in batches of 2
    samples = out["samples"]["dsr_bench_think"]
    assert [s["accuracy"]["latent_blocks"] for s in samples] == [2] * 5
    text = samples[0]["resps"][0][0]
    assert text.startswith("<|latent_start|>" + "<|latent_pad|>" * 4 + "<|latent_end|>")
    assert out["results"]["dsr_bench_think"]["latent_blocks,none"] == 2.0


def test_saved_latents_are_the_ones_each_answer_was_given(checkpoints, dsr_root, monkeypatch, task_manager,
                                                           tmp_path) -> None:
    """``save_latents`` keeps, per doc, the vectors fed back at its latent positions: feeding them in again reproduces
    every answer, and feeding each question another's changes answers (so the check can fail)."""
    monkeypatch.setenv("DSR_BENCH_ROOT", str(dsr_root))
    real = adapter.generate_with_latents
    given: list[torch.Tensor | None] | None = None
    batches: list[int] = []

    def forced(model, input_ids, attention_mask=None, *, spec, **kwargs):
        start = sum(batches)
        batches.append(input_ids.shape[0])
        if given is not None:
            kwargs["latent_inputs"] = given[start : start + input_ids.shape[0]]
        force = ForceTokenAt(input_ids.shape[1], {0, 7}, spec.start_id)
        return real(model, input_ids, attention_mask, spec=spec, logits_processor=LogitsProcessorList([force]), **kwargs)

    monkeypatch.setattr(adapter, "generate_with_latents", forced)

    def answers(save: Path | None = None) -> list[str]:
        del batches[:]
        extra = f",save_latents={save}" if save else ""
        out = simple_evaluate(model="latent_qwen2_5_vl", model_args=f"pretrained={checkpoints['latent']},{MODEL_ARGS}{extra}",
                              tasks=["dsr_bench_think"], task_manager=task_manager, bootstrap_iters=0, batch_size=2,
                              log_samples=True, gen_kwargs="max_new_tokens=16")
        samples = sorted(out["samples"]["dsr_bench_think"], key=lambda s: s["doc_id"])
        return [s["resps"][0][0] for s in samples]

    own = answers(tmp_path / "latents")
    (path,) = (tmp_path / "latents").iterdir()
    assert path.name == adapter.LATENTS_FILE.format(task="dsr_bench_think", rank=0)
    saved = torch.load(path)
    assert sorted(saved) == list(range(5)) and all(len(v) == 1 and v[0].shape[0] == 8 for v in saved.values())
    given = [saved[doc][0] for doc in range(5)]
    assert answers() == own
    given = given[1:] + given[:1]
    assert answers() != own


def test_save_latents_needs_a_latent_checkpoint(checkpoints, tmp_path) -> None:
    with pytest.raises(ValueError, match="has no latent tokens"):
        adapter.LatentQwen2_5_VL(pretrained=str(checkpoints["stock"]), dtype="float32", save_latents=str(tmp_path))


def test_batched_equals_one_by_one(checkpoints, dyn_root, monkeypatch, task_manager) -> None:
    monkeypatch.setenv("DYN_BENCH_ROOT", str(dyn_root))
    texts = {}
    for batch_size in (1, 3):
        out = run("dyn_bench", checkpoints["latent"], task_manager, batch_size, gen_kwargs="max_new_tokens=6")
        texts[batch_size] = [s["resps"][0][0] for s in out["samples"]["dyn_bench"]]
    assert texts[1] == texts[3] and len(texts[1]) == 6


def test_stock_checkpoint_uses_plain_generate(checkpoints, dsr_root, monkeypatch, task_manager) -> None:
    monkeypatch.setenv("DSR_BENCH_ROOT", str(dsr_root))
    monkeypatch.setattr(adapter, "generate_with_latents", lambda *a, **k: pytest.fail("latent loop on a stock model"))
    out = run("dsr_bench", checkpoints["stock"], task_manager, gen_kwargs="max_new_tokens=4")
    samples = out["samples"]["dsr_bench"]
    assert len(samples) == 5 and all(s["accuracy"]["latent_blocks"] == 0 for s in samples)
    assert all("<|" not in s["resps"][0][0] for s in samples)  # special tokens are not leaked into the text


def test_seeded_sampling_is_reproducible(checkpoints, dsr_root, monkeypatch, task_manager) -> None:
    monkeypatch.setenv("DSR_BENCH_ROOT", str(dsr_root))

    def texts(gen_kwargs: str) -> list[str]:
        out = run("dsr_bench", checkpoints["latent"], task_manager, batch_size=2, gen_kwargs=gen_kwargs, limit=2)
        return [s["resps"][0][0] for s in out["samples"]["dsr_bench"]]

    sampled = "max_new_tokens=6,temperature=1.0,top_p=0.9,seed=3"
    first = texts(sampled)
    assert first == texts(sampled) and first != texts("max_new_tokens=6")


def test_release_protocol_counts_a_failed_inference_as_wrong(checkpoints, dsr_root, monkeypatch, task_manager) -> None:
    monkeypatch.setenv("DSR_BENCH_ROOT", str(dsr_root))
    def failing_on_v1(read):
        def wrapped(path, **settings):
            if path.endswith("v1.mp4"):
                raise RuntimeError("CUDA out of memory (simulated)")
            return read(path, **settings)
        return wrapped

    monkeypatch.setattr(adapter, "read_video_release", failing_on_v1(adapter.read_video_release))
    out = run("dsr_bench_4dthinker", checkpoints["stock"], task_manager, batch_size=2, gen_kwargs="max_new_tokens=3")
    samples = out["samples"]["dsr_bench_4dthinker"]
    texts = [s["resps"][0][0] for s in samples]
    # q2, q3 are on v1: no answer (the error is logged with the sample), scored wrong, and counted
    assert len(samples) == 5 and texts[2] == texts[3] == f"{INFERENCE_FAILED} RuntimeError: CUDA out of memory (simulated)"
    assert all(t and not t.startswith(INFERENCE_FAILED) for i, t in enumerate(texts) if i not in (2, 3))
    assert [s["accuracy"]["score"] for s in samples][2:4] == [0.0, 0.0]
    assert out["results"]["dsr_bench_4dthinker"]["failed_inference,none"] == 2
    with pytest.raises(RuntimeError, match="simulated"):  # other protocols do not hide errors
        monkeypatch.setattr(adapter, "read_video_qwen", failing_on_v1(adapter.read_video_qwen))
        run("dsr_bench", checkpoints["stock"], task_manager, batch_size=2, gen_kwargs="max_new_tokens=3")


def test_dyn_bench_counts_a_failed_inference_as_wrong_and_runs_on(checkpoints, dyn_root, monkeypatch,
                                                                     task_manager) -> None:
    """Dyn-Bench's eval.py scores a question whose inference raises as wrong (prediction '') and goes on."""
    monkeypatch.setenv("DYN_BENCH_ROOT", str(dyn_root))
    calls = []

    def fail_second_call(paths, fps, max_frames=50):
        calls.append(len(calls))
        if len(calls) == 2:
            raise RuntimeError("CUDA out of memory (simulated)")
        return read_frames(paths, fps, max_frames)

    read_frames = adapter.read_frames
    monkeypatch.setattr(adapter, "read_frames", fail_second_call)
    out = run("dyn_bench", checkpoints["stock"], task_manager, batch_size=1, gen_kwargs="max_new_tokens=3")
    samples = out["samples"]["dyn_bench"]
    assert len(samples) == 6 and samples[1]["resps"][0][0].startswith(INFERENCE_FAILED)
    assert samples[1]["accuracy"]["score"] == 0.0 and samples[1]["accuracy"]["prediction"] is None
    assert out["results"]["dyn_bench"]["failed_inference,none"] == 1


def test_sampling_defaults_come_from_the_checkpoint_when_the_task_says_so(checkpoints, monkeypatch) -> None:
    """The release's and Dyn-Bench's ``model.generate`` take top_k / repetition_penalty from generation_config."""
    model = adapter.LatentQwen2_5_VL(pretrained=str(checkpoints["latent"]), dtype="float32", device="cpu")
    model.model.generation_config.top_k, model.model.generation_config.repetition_penalty = 1, 1.3
    seen = []

    class Captured(Exception):
        pass

    def capture(*args, **kwargs):
        seen.append(kwargs)
        raise Captured

    monkeypatch.setattr(adapter, "generate_with_latents", capture)
    inputs = model._build_inputs(["hello"], [[]])
    sampled = {"max_new_tokens": 2, "temperature": 0.7, "top_p": 0.9}
    for extra in ({}, {"sampling_defaults": "checkpoint"}, {"sampling_defaults": "checkpoint", "top_k": 5}):
        with pytest.raises(Captured):
            model._generate(inputs, {**sampled, **extra})
    assert [(k["top_k"], k["repetition_penalty"]) for k in seen] == [(0, 1.0), (1, 1.3), (5, 1.3)]
    with pytest.raises(ValueError, match="sampling_defaults"):
        model._generate(inputs, {**sampled, "sampling_defaults": "model"})


def test_official_prompt_renders_like_dsr_suite_message_items(checkpoints) -> None:
    """DSR Suite sends the items '', video, frame text, question text; the chat template joins text items without a
    separator, so our one text after the video renders to the same prompt."""
    from transformers import AutoProcessor

    from lmms_eval_dsr.prompts import DSR_BENCH_PREAMBLE, dsr_bench_prompt

    processor = AutoProcessor.from_pretrained(checkpoints["stock"])
    theirs = [{"type": "text", "text": ""}, {"type": "video"}, {"type": "text", "text": f"\n{DSR_BENCH_PREAMBLE}\n"},
              {"type": "text", "text": "Question: Where?\nA. left\nB. right\nAnswer: "}]
    ours = [{"type": "video"}, {"type": "text", "text": dsr_bench_prompt("Where?", ["A. left", "B. right"])}]

    def render(content):
        return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                             tokenize=False)

    assert render(theirs) == render(ours)
    assert render(ours).endswith("<|vision_end|>\nThese are the frames of a video. Select the best answer to the "
                                 "following multiple-choice question based on the video. Respond with only the letter "
                                 "(A, B, C, or D) of the correct option.\nQuestion: Where?\nA. left\nB. right\nAnswer: "
                                 "<|im_end|>\n<|im_start|>assistant\n")


def test_repeats_of_a_sampled_protocol_are_different_draws(checkpoints, dsr_root, monkeypatch, task_manager) -> None:
    monkeypatch.setenv("DSR_BENCH_ROOT", str(dsr_root))
    out = run("dsr_bench_4dthinker", checkpoints["latent"], task_manager, batch_size=1, limit=1, repeats=3,
              gen_kwargs="max_new_tokens=8")
    responses = out["samples"]["dsr_bench_4dthinker"][0]["resps"][0]
    assert len(responses) == 3 and len(set(responses)) > 1  # the seed is set once, not once per batch
