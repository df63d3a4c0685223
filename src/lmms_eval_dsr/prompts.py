"""Benchmark prompts, one per evaluation protocol: each benchmark's official wording, the 4DThinker release's, ours.

The official prompts reproduce the official evaluation code byte for byte (the chat template concatenates a message's
text items, so DSR Suite's items '', video, frame text, question text become the video followed by one string); the
``4dthinker`` prompt is the release's ``dsr_eval.py`` one; the ``think`` prompts end with the instruction trl-latent
models are trained with (DIFT and 4DRL).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from trl_latent.answers import RELEASE_PROMPT_SUFFIX, THINK_PROMPT_SUFFIX

DSR_BENCH_PREAMBLE = (
    "These are the frames of a video. Select the best answer to the following multiple-choice question based on the "
    "video. Respond with only the letter (A, B, C, or D) of the correct option."
)
DYN_BENCH_POST_PROMPT = "Answer with the option's letter from the given choices directly."


def dsr_bench_prompt(question: str, options: Sequence[str]) -> str:
    """The official DSR-Bench (DSR Suite VLMEvalKit) text after the video: its frame text (with its leading and
    trailing newline), then ``Question: …``, the option lines and ``Answer: ``."""
    return f"\n{DSR_BENCH_PREAMBLE}\nQuestion: {question}\n" + "\n".join(options) + "\nAnswer: "


def release_prompt(question: str, options: Sequence[str]) -> str:
    """The 4DThinker release's evaluation prompt: question, a blank line, the option lines, its suffix appended."""
    return f"{question}\n\n" + "\n".join(options) + RELEASE_PROMPT_SUFFIX


def dyn_bench_prompt(question: str, options: Sequence[str]) -> str:
    """The official Dyn-Bench prompt: question, option lines, then the answer-with-the-letter instruction."""
    return f"{question}\n" + "\n".join(options) + f"\n{DYN_BENCH_POST_PROMPT}"


def think_prompt(question: str, options: Sequence[str], suffix: str = THINK_PROMPT_SUFFIX) -> str:
    """The 4DThinker prompt: question, a blank line, the option lines, then the think-with-imagery instruction."""
    return f"{question}\n\n" + "\n".join(options) + f"\n{suffix}"


def protocol_prompt(prompts: Mapping[str, Callable[[str, Sequence[str]], str]], doc: Mapping[str, Any],
                    lmms_eval_specific_kwargs: Mapping[str, Any] | None) -> str:
    """The prompt of the task's ``protocol`` (its ``lmms_eval_specific_kwargs``; ``official`` when unset)."""
    protocol = (lmms_eval_specific_kwargs or {}).get("protocol", "official")
    if protocol not in prompts:
        raise ValueError(f"unknown protocol {protocol!r}; this benchmark has {sorted(prompts)}")
    return prompts[protocol](doc["question"], doc["options"])
