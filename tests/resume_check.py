"""A run interrupted after ``checkpoint-2`` and resumed from it must end where the uninterrupted run ends."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from safetensors.torch import load_file


@contextmanager
def transformers_warnings() -> Iterator[list[str]]:
    """Collect what transformers logs at warning level or above (the suite runs with its verbosity at error)."""
    from transformers.utils import logging as hf_logging

    messages: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    library = logging.getLogger("transformers")
    verbosity = hf_logging.get_verbosity()
    library.addHandler(handler)
    hf_logging.set_verbosity_warning()
    try:
        yield messages
    finally:
        library.removeHandler(handler)
        hf_logging.set_verbosity(verbosity)


def saved_weights(folder: Path) -> dict:
    """The trained weights of an output folder: the full model, or the LoRA adapter."""
    file = folder / "model.safetensors"
    return load_file(file if file.is_file() else folder / "adapter_model.safetensors")


def logged_losses(folder: Path) -> list[tuple[int, float]]:
    state = json.loads((folder / "trainer_state.json").read_text())
    return [(entry["step"], entry["loss"]) for entry in state["log_history"] if "loss" in entry]


def assert_resume_matches(main: Callable[[list[str]], int], args: list[str], tmp_path: Path) -> Path:
    """Train 3 steps saving every 2 (uninterrupted), then resume from a copy of its ``checkpoint-2`` (what an
    interrupted run leaves) into another folder; both must end with the same weights (1e-5, CPU fp32) and the same
    logged losses, with no missing/unexpected-key warnings. Returns the copied checkpoint."""
    schedule = ["--save_strategy", "steps", "--save_steps", "2", "--max_steps", "3"]
    full, resumed, checkpoint = tmp_path / "full", tmp_path / "resumed", tmp_path / "interrupted" / "checkpoint-2"
    assert main([*args, *schedule, "--output_dir", str(full)]) == 0
    shutil.copytree(full / "checkpoint-2", checkpoint)
    with transformers_warnings() as warnings:
        assert main([*args, *schedule, "--output_dir", str(resumed), "--resume_from_checkpoint", str(checkpoint)]) == 0
    assert not [w for w in warnings if "missing keys" in w or "unexpected keys" in w], warnings

    expected, got, at_checkpoint = saved_weights(full), saved_weights(resumed), saved_weights(checkpoint)
    assert set(got) == set(expected)
    assert max((got[k] - expected[k]).abs().max().item() for k in expected) <= 1e-5
    # the resumed step did train (so weights restored from anywhere else could not match)
    assert max((got[k] - at_checkpoint[k]).abs().max().item() for k in got) > 1e-5
    assert [step for step, _ in logged_losses(resumed)] == [1, 2, 3]
    for (_, loss), (_, reference) in zip(logged_losses(resumed), logged_losses(full), strict=True):
        assert abs(loss - reference) <= 1e-6
    return checkpoint
