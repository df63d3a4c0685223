"""The 4DRL rewards on tricky completions, called the way GRPOTrainer calls them."""

from __future__ import annotations

import pytest

from trl_latent import rewards
from trl_latent.tokens import LATENT_END, LATENT_PAD, LATENT_START

from .helpers import QUESTION

BLOCK = LATENT_START + LATENT_PAD * 4 + LATENT_END
PROMPT = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": QUESTION}]}]


def as_completion(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


@pytest.mark.parametrize(
    ("text", "answer", "expected"),
    [
        ("<think>it drifts</think><answer>B</answer>", "B", 1.0),
        ("<think>x</think><answer>(B)</answer>", "B", 1.0),
        ("<think>x</think><answer>B. right</answer>", "B", 1.0),
        ("<think>x</think><answer>right</answer>", "B", 1.0),  # the option text itself
        ("<think>x</think><answer>The answer is B</answer>", "B", 1.0),
        ("<think>A looks wrong</think><answer>C</answer>", "B", 0.0),  # letters in the thinking do not count
        ("<think>x</think><answer>A</answer>", "b", 0.0),
        # no answer tag: read as the benchmarks read it (answers.py falls back to the whole output); format() is 0
        ("<think>Because it moves, B</think>", "B", 1.0),
        (f"<think>{BLOCK} moving right</think><answer>B</answer>", "B", 1.0),
        ("<think>x</think><answer>it is probably going to go somewhere far away from here</answer>", "B", 0.0),
        ("<think>x</think><answer>3.5 m</answer>", "3.5", 1.0),
        ("<think>x</think><answer>3.0</answer>", "3.5", 0.8),  # relative error 0.143: thresholds 0.50…0.85
        ("<think>x</think><answer>7</answer>", "3.5", 0.0),
        ("<think>x</think><answer>no idea</answer>", "3.5", 0.0),
        ("<think>x</think><answer>0</answer>", 0, 1.0),
    ],
)
def test_accuracy(text, answer, expected):
    got = rewards.accuracy(completions=[as_completion(text)], answer=[answer], prompts=[PROMPT], trainer_state=None)
    assert got == [pytest.approx(expected)]


def test_accuracy_reads_plain_string_completions_and_rejects_unusable_answers():
    assert rewards.accuracy(["<answer>D</answer>"], ["D"]) == [1.0]
    with pytest.raises(ValueError, match="neither an option letter nor a number"):
        rewards.accuracy(["<answer>D</answer>"], ["left"])


def test_options_are_read_from_the_question():
    assert rewards.options_in(QUESTION) == ["A. left", "B. right", "C. up", "D. down"]
    assert rewards.options_in("How far is it?") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>reasoning</think><answer>B</answer>", 1.0),
        (f"<think>look {BLOCK} then {BLOCK} done</think>\n<answer>B</answer>", 1.0),
        ("  <think>a</think> <answer>B</answer>\n", 1.0),
        ("<answer>B</answer>", 0.0),
        ("<think>a</think>", 0.0),
        ("<answer>B</answer><think>a</think>", 0.0),
        ("<think>a</think><answer> </answer>", 0.0),
        ("<think>a</think><think>b</think><answer>B</answer>", 0.0),
        ("<think>a</think><answer>B</answer><answer>C</answer>", 0.0),
        ("preamble <think>a</think><answer>B</answer>", 0.0),
        (f"<think>a</think><answer>{BLOCK}B</answer>", 0.0),  # imagery outside the thinking
        (f"{BLOCK}<think>a</think><answer>B</answer>", 0.0),
        (f"<think>{LATENT_START}{LATENT_PAD * 2}</think><answer>B</answer>", 0.0),  # truncated block
        (f"<think>{LATENT_PAD}{LATENT_END}</think><answer>B</answer>", 0.0),  # stray pad
        (f"<think>{LATENT_START}{LATENT_END}</think><answer>B</answer>", 0.0),  # empty block
    ],
)
def test_format(text, expected):
    assert rewards.format(completions=[as_completion(text)], answer=["B"]) == [expected]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>It moves. So: right.</think><answer>B</answer>", 1.0),
        (f"<think>{BLOCK} So: left.</think><answer>A</answer>", 1.0),  # consistent, whatever the truth
        ("<think>So: left.</think><answer>B</answer>", 0.0),  # the letter contradicts the reasoning
        ("<think>Not up: it goes down.</think><answer>D</answer>", 1.0),  # the option named last is the conclusion
        ("<think>no option named</think><answer>B</answer>", 0.0),
        ("<think>So: right.</think>", 0.0),  # no letter
        ("<think>So: right.</think><answer>right</answer>", 1.0),  # the option text is its letter
    ],
)
def test_consistency_rewards_a_letter_that_follows_the_reasoning(text, expected):
    got = rewards.consistency(completions=[as_completion(text)], prompts=[PROMPT], answer=["B"], trainer_state=None)
    assert got == [expected]


def test_consistency_is_zero_without_options():
    assert rewards.consistency(["<think>So: 3 m.</think><answer>3</answer>"], prompts=["How far?"]) == [0.0]
    assert rewards.consistency(["<think>So: right.</think><answer>B</answer>"]) == [0.0]  # no prompt, no options


@pytest.mark.parametrize(
    ("text", "answer", "expected"),
    [
        ("<think>It moves. So: right.</think><answer>B</answer>", "B", 1.0),
        ("<think>It moves. So: right.</think><answer>A</answer>", "B", 1.0),  # the letter is accuracy's business
        ("<think>So: left.</think><answer>B</answer>", "B", 0.0),  # a right letter does not pay a wrong conclusion
        ("<think>So: left.</think><answer>A</answer>", "A", 1.0),
        ("<think>Not up: it goes down.</think><answer>D</answer>", "C", 0.0),  # the option named last concludes
        ("<think>no option named</think><answer>B</answer>", "B", 0.0),
        ("<think>So: right.</think>", "(b)", 1.0),  # no letter needed; the answer column read as accuracy reads it
        ("<answer>right</answer>", "B", 0.0),  # words outside the thinking conclude nothing
    ],
)
def test_conclusion_rewards_reasoning_that_concludes_the_right_option(text, answer, expected):
    got = rewards.conclusion(completions=[as_completion(text)], answer=[answer], prompts=[PROMPT], trainer_state=None)
    assert got == [expected]


def test_conclusion_is_zero_without_options():
    assert rewards.conclusion(["<think>So: 3 m.</think><answer>3</answer>"], answer=["3"], prompts=["How far?"]) == [0.0]
    assert rewards.conclusion(["<think>So: right.</think><answer>B</answer>"], answer=["B"]) == [0.0]
