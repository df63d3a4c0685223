"""4DRL reward functions, in TRL's reward-function form: ``f(completions, **columns) -> list[float]``.

Use them from a recipe by dotted path (``reward_funcs: [trl_latent.rewards.accuracy, trl_latent.rewards.format]``)
and weight them with ``GRPOConfig.reward_weights`` (the release uses 1.0 and 0.2). :func:`consistency` (the letter
agrees with the reasoning's own conclusion) and :func:`conclusion` (the reasoning concludes the right option) are ours,
not the release's. Answers are read with
:func:`trl_latent.answers.extract_choice`, the parser of the ``think`` evaluation protocol, so training never rewards
what that protocol marks wrong. (The release's reward used its first-capital rule, like its evaluation; the published
scorers' rules are kept for the ``official`` / ``4dthinker`` protocols, not for training, because they credit a capital
inside a word, e.g. the B of "Because".)
``LatentGRPOTrainer`` hands rewards the completions with the latent tokens kept, which is what :func:`format` checks.
"""

from __future__ import annotations

import re
from typing import Any

from .answers import choice_correct, extract_choice, mean_relative_accuracy, parse_number, stated_conclusion
from .tokens import LATENT_END, LATENT_PAD, LATENT_START

_OPTION_LINE = re.compile(r"^\s*\(?([A-Z])[.)]\s+\S.*$", re.MULTILINE)
_LETTER = re.compile(r"^\(?([A-Za-z])\)?\.?$")
_LATENT_ANY = re.compile("|".join(re.escape(token) for token in (LATENT_START, LATENT_PAD, LATENT_END)))
_LATENT_BLOCK = re.compile(f"{re.escape(LATENT_START)}(?:{re.escape(LATENT_PAD)})+{re.escape(LATENT_END)}")
_THINK_THEN_ANSWER = re.compile(r"\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*", re.DOTALL)
_TAG = re.compile(r"</?(?:think|answer)>")


def completion_text(completion: str | list[dict[str, Any]]) -> str:
    """The text of a completion, conversational (``[{"role": "assistant", "content": …}]``) or plain."""
    if isinstance(completion, str):
        return completion
    content = completion[-1]["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if part.get("type") == "text")


def _prompt_text(prompt: str | list[dict[str, Any]] | None) -> str:
    if prompt is None:
        return ""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(completion_text([message]) for message in prompt if message.get("role") == "user")


def options_in(question: str) -> list[str]:
    """The option lines ("A. …", "(B) …") of a question, in order from A; ``[]`` when it lists none."""
    lines = [(m.group(1), m.group(0).strip()) for m in _OPTION_LINE.finditer(question)]
    options = []
    for letter, line in lines:
        if letter == chr(ord("A") + len(options)):
            options.append(line)
    return options


def _numeric(answer: Any) -> float | None:
    if isinstance(answer, bool):
        return None
    if isinstance(answer, (int, float)):
        return float(answer)
    try:
        return float(str(answer).strip())
    except ValueError:
        return None


def _answer_letter(answer: Any) -> str | None:
    """The option letter an answer column names (``B``, ``(b)``, ``B.``), in upper case; ``None`` for anything else."""
    match = _LETTER.match(str(answer).strip())
    return match.group(1).upper() if match else None


def score_answer(text: str, answer: Any, question: str = "") -> float:
    """1/0 for a multiple-choice letter, mean relative accuracy (thresholds 0.50…0.95) for a numeric answer.

    The options listed in ``question`` let a reply that repeats an option's text count as that option's letter.
    """
    target = _numeric(answer)
    if target is not None:
        return mean_relative_accuracy(parse_number(text), target)
    letter = _answer_letter(answer)
    if letter is None:
        raise ValueError(f"answer {answer!r} is neither an option letter nor a number")
    return float(choice_correct(text, letter, options_in(question) or None))


def accuracy(completions: list, answer: list, prompts: list | None = None, **kwargs: Any) -> list[float]:
    """Outcome reward: is the ``<answer>`` right? Letters score 0/1, numbers score mean relative accuracy."""
    prompts = prompts if prompts is not None else [None] * len(completions)
    return [
        score_answer(completion_text(completion), target, _prompt_text(prompt))
        for completion, target, prompt in zip(completions, answer, prompts, strict=True)
    ]


def consistency(completions: list, prompts: list | None = None, **kwargs: Any) -> list[float]:
    """Consistency reward: 1.0 when the ``<answer>`` letter is the option the reasoning concludes, else 0.0.

    Why: the accuracy reward reads the letter alone, so a rollout whose reasoning concludes one option and whose
    letter happens to name the right other one is rewarded as much as a right answer, and nothing pays for the
    letter following the reasoning (on the quickstart, 4DRL with accuracy + format only was measured leaving letters
    that disagree with their own written conclusion on 17% of held-out questions, against 2% before it). The
    conclusion is read with
    :func:`trl_latent.answers.stated_conclusion` (the option whose words the ``<think>`` span names last), the letter
    with :func:`trl_latent.answers.extract_choice` (as the accuracy reward). A question without option lines, or a
    reasoning that names no option, scores 0.0. Not in the release (which rewards accuracy and format only).
    """
    prompts = prompts if prompts is not None else [None] * len(completions)
    rewards = []
    for completion, prompt in zip(completions, prompts, strict=True):
        options = options_in(_prompt_text(prompt))
        text = completion_text(completion)
        concluded = stated_conclusion(text, options) if options else None
        rewards.append(float(concluded is not None and extract_choice(text, options) == concluded))
    return rewards


def conclusion(completions: list, answer: list, prompts: list | None = None, **kwargs: Any) -> list[float]:
    """Conclusion reward: 1.0 when the reasoning concludes the right option, else 0.0.

    Why: :func:`consistency` pays the letter for following the reasoning whether the reasoning is right or not, so
    where the written conclusions are worse than the letters it pulls right letters onto wrong conclusions (measured
    on the quickstart's study preset, docs/quickstart.md). This reward pays the conclusion for being right instead;
    next to :func:`accuracy` (the letter for being right) no term pays a letter or a conclusion for moving towards a
    wrong answer. The conclusion is read as :func:`consistency` reads it (:func:`trl_latent.answers.stated_conclusion`);
    a question without option lines (a numeric answer), or a reasoning that names no option, scores 0.0. In place of
    :func:`consistency` on the study preset it changed nothing measurable (ten seeds, docs/quickstart.md), so the
    quickstart leaves it off.
    """
    prompts = prompts if prompts is not None else [None] * len(completions)
    rewards = []
    for completion, target, prompt in zip(completions, answer, prompts, strict=True):
        options = options_in(_prompt_text(prompt))
        letter = _answer_letter(target) if options else None
        rewards.append(float(letter is not None and stated_conclusion(completion_text(completion), options) == letter))
    return rewards


def format_ok(text: str) -> bool:
    """One ``<think>…</think>`` then one non-empty ``<answer>…</answer>``, nothing else around them; latent blocks
    (start, pads, end) are whole and appear only inside the thinking."""
    match = _THINK_THEN_ANSWER.fullmatch(text)
    if match is None or len(_TAG.findall(text)) != 4:
        return False
    thinking, answer = match.groups()
    if not answer.strip() or _LATENT_ANY.search(answer):
        return False
    return _LATENT_ANY.search(_LATENT_BLOCK.sub("", thinking)) is None


def format(completions: list, **kwargs: Any) -> list[float]:  # noqa: A001 - the name recipes use
    """Format reward: 1.0 when :func:`format_ok`, else 0.0."""
    return [float(format_ok(completion_text(completion))) for completion in completions]
