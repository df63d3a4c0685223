"""Fixtures of the 4DRL tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import write_rl_jsonl


@pytest.fixture
def rl_jsonl(tmp_path: Path) -> Path:
    """A small RL JSONL: an image question with options and a 4-frame video question with a numeric answer."""
    return write_rl_jsonl(tmp_path / "data")
