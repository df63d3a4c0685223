"""Four-option multiple-choice questions with balanced answer letters.

Answer letters rotate through A–D within a clip, starting at an offset fixed by the clip id, so a data set has the
same number of A, B, C and D answers up to one per clip (a model that always says "A" scores 25 %), and reruns
give identical files. Distractor order after the correct answer is a seeded shuffle of the same clip key.
"""

from __future__ import annotations

import hashlib
import random


LETTERS = "ABCD"


def stable_hash(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)


class QuestionWriter:
    """Builds the QA records of one clip; ``add`` assigns the next answer letter."""

    def __init__(self, clip_id: str, kind: str):
        self.clip_id = clip_id
        self.kind = kind
        self.offset = stable_hash(clip_id) % 4
        self.rng = random.Random(stable_hash(f"{clip_id}/{kind}"))
        self.records: list[dict] = []

    def add(self, qtype: str, question: str, correct: str, distractors: list[str], **fields) -> dict | None:
        """Append a question unless fewer than three distinct distractors exist; returns the record or ``None``."""
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
