"""The release's acceptance rules for a CoT, shared by the ``cot`` stage and ``validate``."""

from __future__ import annotations

import re


OUTPUT_IMAGE = "<output_image>"  # the data placeholder of docs/architecture.md section 1
COT_RE = re.compile(r"^\s*<think>(?P<think>.*?)</think>\s*<answer>(?P<answer>.*?)</answer>\s*$", re.S)
ANSWER_IN_THINK = re.compile(r"<answer>|\b(?:answer|option)\s*(?:is|:)\s*\(?[A-D]\b", re.I)


def answer_letter(text: str) -> str | None:
    """First capital A–D of an answer (the same rule as the accuracy reward)."""
    match = re.search(r"[A-D]", text)
    return match.group() if match else None


def check_cot(
    text: str, num_images: int, correct: str | None = None, min_think_chars: int = 100, group_chars: int = 150
) -> list[str]:
    """Names of the rules ``text`` breaks (empty when it is acceptable).

    Rules: ``format`` (``<think>…</think><answer>…</answer>``, answer after thinking), ``think_length`` (at least
    ``min_think_chars``), ``placeholder_count`` (exactly ``num_images`` tags, none in the answer),
    ``placeholder_grouping`` (the tags form one run, at most ``group_chars`` characters per tag),
    ``answer_in_think`` (no answer given away inside the thinking), ``answer_mismatch`` (answer letter ≠ ``correct``).
    """
    match = COT_RE.match(text)
    if not match:
        return ["format"]
    problems = []
    think, answer = match.group("think"), match.group("answer")
    if len(think.strip()) < min_think_chars:
        problems.append("think_length")
    if think.count(OUTPUT_IMAGE) != num_images or OUTPUT_IMAGE in answer:
        problems.append("placeholder_count")
    elif num_images > 1:
        first, last = think.find(OUTPUT_IMAGE), think.rfind(OUTPUT_IMAGE)
        if last - first > group_chars * num_images:
            problems.append("placeholder_grouping")
    if ANSWER_IN_THINK.search(think):
        problems.append("answer_in_think")
    if correct is not None and answer_letter(answer) != correct:
        problems.append("answer_mismatch")
    return problems
