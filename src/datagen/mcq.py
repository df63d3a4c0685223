"""Four-option multiple-choice questions, with balanced answer letters or with a fixed letter per answer.

``rotate`` (the default, DSR-Bench's kind): answer letters rotate through A–D within a clip, starting at an offset
fixed by the clip id, so a data set has the same number of A, B, C and D answers up to one per clip (a model that
always says "A" scores 25 %), and reruns give identical files. Distractor order is a seeded shuffle of the clip key.
Answering then needs the option lookup (find the line that states the conclusion, copy its letter), which a model
trained from scratch does not learn within minutes on a CPU (docs/quickstart.md).

``fixed``: a question family with exactly four possible answers lists all four in one canonical order, so each
letter always names the same answer ("A. It moves left" in every question of the family) and a model needs no
lookup; families with more possible answers are not asked. Chance is then the share of the most frequent answer,
not 25 % (the quickstart's report shows it).
"""

from __future__ import annotations

import hashlib
import random


LETTERS = "ABCD"


def stable_hash(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)


OPTION_ORDERS = ("rotate", "fixed")


class QuestionWriter:
    """Builds the QA records of one clip; ``add`` assigns the next answer letter (``rotate``) or the answer's place in
    its family's vocabulary (``fixed``)."""

    def __init__(self, clip_id: str, kind: str, option_order: str = "rotate"):
        if option_order not in OPTION_ORDERS:
            raise ValueError(f"option_order must be one of {OPTION_ORDERS}, got {option_order!r}")
        self.clip_id = clip_id
        self.kind = kind
        self.option_order = option_order
        self.offset = stable_hash(clip_id) % 4
        self.rng = random.Random(stable_hash(f"{clip_id}/{kind}"))
        self.records: list[dict] = []

    def add(self, qtype: str, question: str, correct: str, distractors: list[str],
            vocabulary: list[str] | None = None, **fields) -> dict | None:
        """Append a question unless fewer than three distinct distractors exist; returns the record or ``None``.

        ``vocabulary``: the family's four possible answers in canonical order, when it has exactly four; with
        ``option_order="fixed"`` the options are these (a question without one, or whose answer is outside it, is
        not asked)."""
        if self.option_order == "fixed":
            if vocabulary is None or correct not in vocabulary:
                return None
            if len(vocabulary) != 4 or len(set(vocabulary)) != 4:
                raise ValueError(f"{qtype}: a fixed-order vocabulary needs four distinct answers, got {vocabulary}")
            texts, index = list(vocabulary), vocabulary.index(correct)
        else:
            pool = [d for d in dict.fromkeys(distractors) if d != correct][:3]
            if len(pool) < 3:
                return None
            self.rng.shuffle(pool)
            index = (self.offset + len(self.records)) % 4
            texts = pool[:index] + [correct] + pool[index:]
        record = {
            "qa_id": f"{self.clip_id}-{self.kind}-{len(self.records):03d}",
            "clip_id": self.clip_id,
            "type": qtype,
            "question": question,
            "options": [f"{letter}. {text}" for letter, text in zip(LETTERS, texts)],
            "answer": LETTERS[index],
            "answer_text": correct,
            **fields,
        }
        self.records.append(record)
        return record


def format_time(seconds: float) -> str:
    return f"{seconds:.1f}".rstrip("0").rstrip(".") + "s"


def question_with_options(record: dict) -> str:
    """The question text as models see it: question, blank line, one ``X. option`` per line."""
    return record["question"] + "\n\n" + "\n".join(record["options"])
