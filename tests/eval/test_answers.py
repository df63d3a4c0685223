"""Answer extraction on tables of tricky outputs (ours, and each protocol where the rules disagree), numeric parsing
and MRA worked by hand."""

from __future__ import annotations

import pytest

from lmms_eval_dsr.scoring import DSR_EXTRACTORS, DYN_EXTRACTORS
from trl_latent.answers import (
    extract_answer_span,
    extract_choice,
    first_option_letter,
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


# (output, DSR official, DSR 4dthinker, DSR think, Dyn official): each protocol's verdict, worked out from its scorer's
# code (DSR Suite videomme.extract_characters_regex, 4DThinker dsr_eval.py, Dyn-Bench cal_metrics.fuzzy_matching).
PROTOCOL_TABLE = [
    # the capital of "Because" comes first; ours finds the standalone C
    ("Because the car moves left, the answer is C.", "B", "B", "C", None),
    # the first <answer> span for the release, the first letter anywhere officially; ours takes the last span
    ("<answer>A</answer><answer>C</answer>", "A", "A", "C", None),
    # the official phrase list misses two commas: "Best answer:" is never removed, so its B counts
    ("Best answer: C", "B", "C", "C", None),
    ("Best option: D", "B", "D", "D", None),
    # Dyn-Bench takes the first word only
    ("The answer is B", "B", "B", "B", None),
    ("b", None, None, None, "B"),
    ("B.", "B", "B", "B", "B"),
    ("(C) up", "C", "C", "C", None),
    # an empty <answer> span: the release falls back to the raw output, whose first letter sits in the reasoning
    ("<think>D is wrong</think><answer>The answer is</answer>", "D", "D", None, None),
    # option text alone: only ours maps it to its letter
    ("moving right", None, None, "B", None),
    # a long reply without any of A-D is no answer everywhere
    ("i cannot tell what happens in this video clip at all from these frames", None, None, None, "I"),  # "I"!
    # latent blocks between the reasoning and the answer
    (f"<think>{BLOCK}</think><answer>D</answer>", "D", "D", "D", None),
    # the article "A" reads as the letter A under every rule
    ("A car moves away, so D.", "A", "A", "A", "A"),
]


@pytest.mark.parametrize(("output", "official", "release", "think", "dyn"), PROTOCOL_TABLE)
def test_protocol_verdicts(output: str, official: str | None, release: str | None, think: str | None,
                           dyn: str | None) -> None:
    assert DSR_EXTRACTORS["official"](output, OPTIONS) == official
    assert DSR_EXTRACTORS["4dthinker"](output, OPTIONS) == release
    assert DSR_EXTRACTORS["think"](output, OPTIONS) == think
    assert DYN_EXTRACTORS["think"](output, OPTIONS) == think
    assert DYN_EXTRACTORS["official"](output, OPTIONS) == dyn


def test_first_option_letter_phrase_lists() -> None:
    assert first_option_letter("The correct option is D") == "D"  # lower-case "correct option": no capital before D
    assert first_option_letter("Answer: Option: C") == "C"  # both phrases removed anywhere, not only in front
    assert first_option_letter("Best option: A", ("Best option:",)) == "A"


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
