"""Answer extraction on a table of tricky outputs, and numeric parsing / MRA worked by hand."""

from __future__ import annotations

import pytest

from trl_latent.answers import (
    extract_answer_span,
    extract_choice,
    mean_relative_accuracy,
    parse_number,
    strip_answer_prefixes,
)

OPTIONS = ["A. Moving left", "B. Moving right", "C. Closer then farther", "D. Stationary"]
BLOCK = "<|latent_start|>" + "<|latent_pad|>" * 4 + "<|latent_end|>"


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("B", "B"),
        ("(B)", "B"),
        ("B.", "B"),
        ("B. Moving right", "B"),
        (" b ", None),  # lower case is not an option letter
        ("The answer is C.", "C"),
        ("The best answer is: (D)", "D"),
        ("Answer: A", "A"),
        ("Option: B", "B"),
        ("Moving right", "B"),  # the option text itself
        ("closer then farther", "C"),  # option text, case and punctuation ignored
        ("Based on the video, D", "D"),  # standalone letter beats the capital of "Based"
        ("Because it stays put", "B"),  # no standalone letter: the release's first-capital rule
        ("the object seems to be moving toward the left side of the frame", None),  # > 10 words, no capital
        ("E", None),  # not among A-D
        (f"<think>A car {BLOCK} moves; D is wrong</think><answer>B</answer>", "B"),
        ("<think>A is tempting</think><answer>The answer is C", "C"),  # cut at the </answer> stop string
        ("<think>A or B?</think> so D", "D"),  # no answer tag: the text after the reasoning
        ("<answer>A</answer> then <answer>D</answer>", "D"),  # the last answer tag wins
        (f"{BLOCK}C<|im_end|>", "C"),
        ("", None),
    ],
)
def test_extract_choice(output: str, expected: str | None) -> None:
    assert extract_choice(output, OPTIONS) == expected


def test_letters_follow_the_number_of_options() -> None:
    assert extract_choice("C", ["A. x", "B. y"]) is None
    assert extract_choice("F", None, letters="ABCDEF") == "F"  # the RL reward's A-F range


def test_span_and_prefixes() -> None:
    assert extract_answer_span("x <ANSWER> B </ANSWER>") == "B"
    assert strip_answer_prefixes("The correct answer is Answer: B") == "B"


@pytest.mark.parametrize(
    ("output", "expected"),
    [("3.5 m", 3.5), ("<answer>1,200</answer>", 1200.0), ("-2", -2.0), ("The answer is seven", 7.0),
     ("about .5", 0.5), ("no idea", None)],
)
def test_parse_number(output: str, expected: float | None) -> None:
    assert parse_number(output) == expected


def test_mean_relative_accuracy_by_hand() -> None:
    # relative error 0.12: passes thresholds with 1 - θ ≥ 0.12, i.e. θ ∈ {0.50, …, 0.85} → 8 of 10
    assert mean_relative_accuracy(11.2, 10.0) == pytest.approx(0.8)
    assert mean_relative_accuracy(10.0, 10.0) == 1.0
    assert mean_relative_accuracy(25.0, 10.0) == 0.0
    assert mean_relative_accuracy(None, 10.0) == 0.0
    assert (mean_relative_accuracy(0.0, 0.0), mean_relative_accuracy(0.1, 0.0)) == (1.0, 0.0)
