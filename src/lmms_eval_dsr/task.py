"""The lmms-eval task class that reads a benchmark from a local root instead of the Hugging Face Hub.

lmms-eval 0.7.3 loads task data with ``datasets.load_dataset(dataset_path, …)`` and has no way to take a path from the
environment; its own local-data tasks (``vstat``, ``physical_conflict``) instead name a ``ConfigurableTask`` subclass
with ``class: !function utils.<Class>`` and override ``download``. This module is that subclass for our benchmarks:
the root comes from ``dataset_kwargs.root`` or an environment variable, ``ids_file`` limits the run to listed question
ids, questions whose media are missing or undecodable are left out (their count is stored on every row so the
``missing_media`` metric can report it), and ``strict: true`` turns such a question into an error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from datasets import Dataset, DatasetDict
from lmms_eval.api.task import ConfigurableTask
from loguru import logger

from lmms_eval_dsr.benchmarks import BenchmarkNotFoundError, LoadedBenchmark


class LocalBenchmarkTask(ConfigurableTask):
    """A ``ConfigurableTask`` whose docs come from ``load_benchmark(**dataset_kwargs)`` (set by subclasses)."""

    load_benchmark: Callable[..., LoadedBenchmark]  # a staticmethod in subclasses
    download_hint: str = ""

    def __init__(self, *args: Any, config: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if config is not None:
            config = {k: v for k, v in config.items() if k != "class"}
        super().__init__(*args, config=config, **kwargs)

    def download(self, dataset_kwargs: dict[str, Any] | None = None) -> None:
        kwargs = dict(dataset_kwargs or {})
        strict = bool(kwargs.pop("strict", False))
        loaded = self.load_benchmark(**kwargs)
        missing = loaded.missing_media
        if missing:
            broken = f"; undecodable videos: {', '.join(loaded.undecodable)}" if loaded.undecodable else ""
            message = (
                f"{self.config.task}: {len(missing)} question(s) skipped because their video/frames are missing or "
                f"undecodable (first: {', '.join(missing[:3])}{broken}). {self.download_hint}"
            )
            if strict:
                raise BenchmarkNotFoundError(message)
            logger.warning(message)
        rows = [{**row, "missing_media": len(missing)} for row in loaded.rows]
        split = self.config.test_split
        self.dataset = DatasetDict({split: Dataset.from_list(rows)})
        if self.config.process_docs is not None:
            self.dataset[split] = self.config.process_docs(self.dataset[split])
        self.dataset_no_image = self.dataset
        logger.info(f"{self.config.task}: {len(rows)} questions loaded, {len(missing)} skipped for missing media")
