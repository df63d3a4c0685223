"""Fixtures of the datagen tests (the world itself lives in dg_world.py)."""

from pathlib import Path

import pytest
from dg_world import SPECS, write_dataset


@pytest.fixture
def dataset(tmp_path) -> Path:
    return write_dataset(tmp_path / "data", SPECS)
