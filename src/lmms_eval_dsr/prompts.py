"""Benchmark prompts: each benchmark's official wording, and the think-with-imagery variant used by trl-latent models.

The direct prompts reproduce the official evaluation code so that numbers for stock models stay comparable with
published ones; the ``think`` prompts put the options in the same place and end with the instruction the model was
trained with (DIFT and 4DRL), so the ``_think`` tasks measure the latent-reasoning model as it was trained.
"""

from __future__ import annotations

from collections.abc import Sequence

from trl_latent.answers import THINK_PROMPT_SUFFIX

DSR_BENCH_PREAMBLE = (
    "These are the frames of a video. Select the best answer to the following multiple-choice question based on the "
    "video. Respond with only the letter (A, B, C, or D) of the correct option."
)
DYN_BENCH_POST_PROMPT = "Answer with the option's letter from the given choices directly."


def dsr_bench_prompt(question: str, options: Sequence[str]) -> str:
    """The official DSR-Bench (VLMEvalKit) prompt: preamble, question, option lines, then ``Answer: ``."""
    return f"{DSR_BENCH_PREAMBLE}\nQuestion: {question}\n" + "\n".join(options) + "\nAnswer: "


def dyn_bench_prompt(question: str, options: Sequence[str]) -> str:
    """The official Dyn-Bench prompt: question, option lines, then the answer-with-the-letter instruction."""
    return f"{question}\n" + "\n".join(options) + f"\n{DYN_BENCH_POST_PROMPT}"


def think_prompt(question: str, options: Sequence[str], suffix: str = THINK_PROMPT_SUFFIX) -> str:
    """The 4DThinker prompt: question, a blank line, the option lines, then the think-with-imagery instruction."""
    return f"{question}\n\n" + "\n".join(options) + f"\n{suffix}"
