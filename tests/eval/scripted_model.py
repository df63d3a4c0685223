"""A scripted lmms-eval model: answers looked up by question text, so task scores can be checked by hand.

An answer given as a list is one response per call, in order (for ``--repeats``)."""

from __future__ import annotations

from pathlib import Path

from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms

from lmms_eval_dsr.visuals import is_frame_video, is_ruled_video


class ScriptedLMM(lmms):
    """Returns ``answers[question]`` for the question found in the prompt; records the prompts and visuals seen."""

    def __init__(self, answers: dict[str, str | list[str]]) -> None:
        super().__init__()
        self.answers = answers
        self.seen: list[dict] = []

    def generate_until(self, requests: list[Instance]) -> list[str]:
        outputs = []
        for request in requests:
            context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            visuals = doc_to_visual(self.task_dict[task][split][doc_id])
            for visual in visuals:
                paths = visual["frames"] if is_frame_video(visual) else [visual["path"] if is_ruled_video(visual) else visual]
                assert all(Path(p).is_file() for p in paths), f"visual of {task} doc {doc_id} does not exist"
            question = next(q for q in self.answers if q in context)
            self.seen.append({"task": task, "context": context, "gen_kwargs": gen_kwargs, "visuals": visuals})
            answer = self.answers[question]
            outputs.append(answer.pop(0) if isinstance(answer, list) else answer)
        return outputs

    def loglikelihood(self, requests):
        raise NotImplementedError("the benchmarks are generation tasks")

    def generate_until_multi_round(self, requests):
        raise NotImplementedError("the benchmarks are single-turn")
