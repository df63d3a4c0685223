"""Answer extraction: our ``think`` rule (shared by the 4DRL accuracy reward) and the published scorers' rules.

``extract_choice`` is our rule, used by the ``think`` evaluation protocol and by the 4DRL accuracy reward, so a model
is never rewarded for an answer that protocol marks wrong: the last ``<answer>`` span, "The answer is"-style prefixes
stripped, an exact option text, a standalone letter ("(B)", "B.", "B") before the first capital option letter, and a
long answer without any option letter is no answer. It differs from the published scorers in both directions
("Because the car moves left, the answer is C." is C here, B under the first-capital rule), which is why the
benchmarks' ``official`` and ``4dthinker`` protocols use :func:`official_dsr_choice`, :func:`release_dsr_choice` and
:func:`dyn_bench_choice` instead, each a re-statement of its scorer's rule (quirks included).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

# The think-with-imagery instruction appended to questions in DIFT, 4DRL and the ``_think`` benchmark variants. It
# lives next to its parser because the tags it asks for are exactly what ``extract_answer_span`` reads.
THINK_PROMPT_SUFFIX = (
    "Think with mental imagery first: imagine the relevant object or region across the video frames, then reason "
    "about its motion and position step by step. Put the whole reasoning inside <think> </think> tags and only the "
    "final answer inside <answer> </answer> tags, for example <think> ... </think><answer>B</answer>."
)

# The 4DThinker release's own suffixes, byte for byte (its ``dift/src/task.py`` and ``evaluation/dsr_eval.py``, and its
# 4DRL script ``grpo_4dthinker.py``), appended directly to the question. They are needed to evaluate or continue the
# released checkpoints under the prompt they were trained with; the RL one keeps the release's ``</think>...</think>``
# typo because that is the text those rollouts saw.
RELEASE_PROMPT_SUFFIX = (
    "\nFirst, think about the reasoning process with mental imagery of the relevant object or region, then provide the "
    "user with the answer. Put the reasoning in <think>...</think> and only the final answer in <answer>...</answer>, "
    "e.g. <think> reasoning process (with mental imagery as needed) </think><answer> answer here </answer>."
)
RELEASE_RL_PROMPT_SUFFIX = (
    "\nFirst, think about the reasoning process with a mental image of the relevant object or region, then provide the "
    "user with the answer. Put the reasoning in </think>...</think> and only the final answer in <answer>...</answer>, "
    "e.g. </think> reasoning process (with mental imagery as needed) </think><answer> answer here </answer>."
)

PROMPT_SUFFIXES = {"think": THINK_PROMPT_SUFFIX, "release": RELEASE_PROMPT_SUFFIX, "release_rl": RELEASE_RL_PROMPT_SUFFIX}
"""The instructions a recipe can pick by name (``prompt_suffix`` in the DIFT and 4DRL configs)."""

MRA_THRESHOLDS: tuple[float, ...] = tuple(round(0.50 + 0.05 * i, 2) for i in range(10))  # 0.50, 0.55, …, 0.95

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_OPEN_ANSWER_TAG = re.compile(r"<answer>(.*)$", re.DOTALL | re.IGNORECASE)
_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_LATENT_TOKENS = re.compile(r"<\|latent_(?:start|pad|end)\|>")
_CHAT_TOKENS = re.compile(r"<\|(?:im_end|im_start|endoftext)\|>")
_PREFIXES = re.compile(
    r"^\s*(?:(?:the\s+)?(?:best|correct|final)?\s*(?:answer|option|choice)\s*(?:is|would\s+be)?\s*[:：]?"
    r"|answer\s*[:：]|option\s*[:：]|best\s+option\s*[:：]?)\s*",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")
_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100,
}
_OPTION_PREFIX = re.compile(r"^\s*\(?([A-Z])\s*[.):：]\s*")
_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)
_THINK_END = re.compile(r"</think>|<answer>", re.IGNORECASE)


def extract_answer_span(text: str) -> str:
    """The text the answer is read from: the last ``<answer>…</answer>`` span, else the whole output.

    Without an answer tag, latent block tokens, chat special tokens and a closed ``<think>…</think>`` block are
    removed first, so that letters inside the reasoning are not mistaken for the answer. An unclosed ``<answer>`` tag
    (generation cut at max_new_tokens) still yields what follows it.
    """
    spans = _ANSWER_TAG.findall(text)
    if spans:
        return spans[-1].strip()
    cleaned = _CHAT_TOKENS.sub("", _LATENT_TOKENS.sub("", text))
    unclosed = _OPEN_ANSWER_TAG.search(cleaned)
    if unclosed:
        return unclosed.group(1).strip()
    without_think = _THINK_BLOCK.sub("", cleaned).strip()
    return without_think if without_think else cleaned.strip()


def strip_answer_prefixes(text: str) -> str:
    """Remove leading phrases such as "The answer is", "Answer:", "Option:", "The best option is" (repeatedly)."""
    previous = None
    while previous != text:
        previous = text
        text = _PREFIXES.sub("", text, count=1)
    return text.strip()


def option_letters(options: Sequence[str] | None, default: str = "ABCD") -> str:
    """The letters a question allows: one per option (A, B, …), or ``default`` when the options are unknown."""
    if not options:
        return default
    return "".join(chr(ord("A") + i) for i in range(len(options)))


def normalise(text: str) -> str:
    """Lower case, every run of characters other than letters and digits one space: how texts are compared."""
    return re.sub(r"[^0-9a-z]+", " ", text.lower()).strip()


def option_words(option: str) -> str:
    """An option's text without its "A." prefix, normalised (:func:`normalise`)."""
    return normalise(_OPTION_PREFIX.sub("", option))


def _match_option_text(span: str, options: Sequence[str]) -> str | None:
    """The letter of the option whose text (without its "A." prefix) equals the reply, ignoring case and punctuation."""
    reply = option_words(span)
    if not reply:
        return None
    for index, option in enumerate(options):
        match = _OPTION_PREFIX.match(option)
        letter = match.group(1) if match else chr(ord("A") + index)
        if option_words(option) == reply:
            return letter
    return None


def extract_choice(text: str, options: Sequence[str] | None = None, letters: str | None = None) -> str | None:
    """The option letter a model output commits to, or ``None`` when it commits to none.

    Steps: answer span → prefix stripping → exact option-text match (when ``options`` are given) → a reply of more
    than 10 words without any allowed capital letter is no answer → a standalone letter ("B", "(B)", "B. text") →
    the first allowed capital letter anywhere (the release's rule). ``letters`` defaults to one per option, else A–D.
    """
    allowed = letters or option_letters(options)
    span = strip_answer_prefixes(extract_answer_span(text))
    if options:
        matched = _match_option_text(span, options)
        if matched is not None and matched in allowed:
            return matched
    if len(span.split()) > 10 and not re.search(f"[{allowed}]", span):
        return None
    standalone = re.search(rf"(?<![A-Za-z0-9])([{allowed}])(?![A-Za-z0-9])", span)
    if standalone:
        return standalone.group(1)
    first_capital = re.search(f"[{allowed}]", span)
    return first_capital.group(0) if first_capital else None


def think_span(text: str) -> str:
    """The reasoning of a response: after the first ``<think>`` (or from the start when there is none) up to the
    first ``</think>`` or ``<answer>`` after it (or the end, when generation stopped inside the reasoning)."""
    opened = _THINK_OPEN.search(text)
    start = opened.end() if opened else 0
    closed = _THINK_END.search(text, start)
    return text[start:closed.start() if closed else len(text)]


def stated_conclusion(text: str, options: tuple[str, ...] | list[str]) -> str | None:
    """The letter of the option whose text the reasoning names last, ``None`` when it names none.

    Rule: in the think span (:func:`think_span`), compared without case and punctuation, find every whole-word
    occurrence of each option's text (its ``A.`` prefix removed); the option whose last occurrence ends latest wins,
    the longer text on a tie (an option contained in another). This reads the quickstart's templates ("So: <text>."
    and "the observation that fits is: <text>.") and any other phrasing that ends the reasoning on an option's words.
    Failure modes: a reasoning that names its conclusion and then quotes a rejected option ("…, not <text>") is read
    as concluding the rejected one, and a paraphrase that never repeats an option's words has no conclusion.
    """
    span = f" {normalise(think_span(text))} "
    best: tuple[int, int, str] | None = None
    for letter, option in zip(option_letters(options), options):
        words = option_words(option)
        at = span.rfind(f" {words} ") if words else -1
        if at >= 0:
            candidate = (at + len(words), len(words), letter)
            best = candidate if best is None or candidate[:2] > best[:2] else best
    return best[2] if best else None


# DSR Suite's VLMEvalKit phrase list (``vlmeval/dataset/utils/videomme.py``) as it executes: two missing commas make
# Python join "The best option is" + "The correct option is" and "Best answer:" + "Best option:" into single phrases
# that real outputs never contain, so those four phrases are never removed.
OFFICIAL_DSR_PHRASES: tuple[str, ...] = (
    "The best answer is", "The correct answer is", "The answer is", "The answer",
    "The best option isThe correct option is", "Best answer:Best option:", "Answer:", "Option:",
)
# The 4DThinker release's copy of that list (``evaluation/dsr_eval.py``) has the commas, so all ten phrases apply.
RELEASE_DSR_PHRASES: tuple[str, ...] = (
    "The best answer is", "The correct answer is", "The answer is", "The answer", "The best option is",
    "The correct option is", "Best answer:", "Best option:", "Answer:", "Option:",
)
_FIRST_ANSWER_SPAN = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL | re.IGNORECASE)


def first_option_letter(text: str, phrases: Sequence[str] = OFFICIAL_DSR_PHRASES) -> str | None:
    """The VLMEvalKit rule: delete every listed phrase (anywhere, case-sensitive), then the first ``[ABCD]``.

    No word boundary is checked, so the capital of "Because" counts. (The scorer's extra clause "more than 10 words
    and no A–D → ''" changes nothing: without any of A–D there is no letter either way.)
    """
    text = text.strip()
    for phrase in phrases:
        text = text.replace(phrase, "")
    match = re.search(r"[ABCD]", text)
    return match.group(0) if match else None


def official_dsr_choice(text: str) -> str | None:
    """DSR-Bench as its authors score it (DSR Suite VLMEvalKit, exact matching): :func:`first_option_letter`.

    Their fallback for an empty result (option-text matching against options parsed from the question's extra
    lines) has no options to match on DSR-Bench's single-line questions and yields 'Z', i.e. wrong, as ``None`` does.
    """
    return first_option_letter(text, OFFICIAL_DSR_PHRASES)


def release_dsr_choice(text: str) -> str | None:
    """The 4DThinker release's DSR-Bench rule: the first ``<answer>`` span (else the whole output), then the raw
    output, then the output with latent tokens replaced by spaces, each read with its (comma-complete) phrase list and
    the first ``[ABCD]``; the first of the three that yields a letter wins."""
    span = _FIRST_ANSWER_SPAN.search(text)
    candidates = (span.group(1).strip() if span else text.strip(), text.strip(),
                  re.sub(r"\s+", " ", _LATENT_TOKENS.sub(" ", text)).strip())
    for candidate in candidates:
        letter = first_option_letter(candidate, RELEASE_DSR_PHRASES)
        if letter:
            return letter
    return None


def dyn_bench_choice(text: str) -> str | None:
    """Dyn-Bench's own scorer (``utils/cal_metrics.py``): the first whitespace-separated word, trailing ``.,;:!?``
    stripped, upper-cased, must equal the answer letter ("b" is B; "The answer is B" reads "THE", "(B)" reads "(B)":
    wrong). Returned only when it is a single letter, since nothing else can equal one."""
    words = text.split()
    word = words[0].rstrip(".,;:!?").upper() if words else ""
    return word if len(word) == 1 and word.isalpha() else None


def choice_correct(text: str, answer: str, options: Sequence[str] | None = None) -> bool:
    """Whether the output's extracted letter equals the ground-truth letter (case and surrounding space ignored)."""
    predicted = extract_choice(text, options)
    return predicted is not None and predicted == answer.strip().upper()


def parse_number(text: str) -> float | None:
    """The first number in the answer span ("3.5 m", "1,200", "-2", "seven"), or ``None``."""
    span = strip_answer_prefixes(extract_answer_span(text))
    match = _NUMBER.search(span)
    if match:
        return float(match.group(0).replace(",", ""))
    for word in re.findall(r"[a-z]+", span.lower()):
        if word in _NUMBER_WORDS:
            return float(_NUMBER_WORDS[word])
    return None


def mean_relative_accuracy(prediction: float | None, target: float, thresholds: Iterable[float] = MRA_THRESHOLDS) -> float:
    """VSI-Bench's MRA: the share of thresholds θ with ``|pred − gt| / |gt| ≤ 1 − θ``; 0 for no prediction.

    A zero target has no relative error, so only an exact zero prediction scores there.
    """
    thresholds = tuple(thresholds)
    if prediction is None:
        return 0.0
    if target == 0:
        return 1.0 if prediction == 0 else 0.0
    relative_error = abs(prediction - target) / abs(target)
    return sum(relative_error <= 1.0 - theta + 1e-12 for theta in thresholds) / len(thresholds)
