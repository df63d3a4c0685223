"""Samples whose media fail to decode mid-run: skipped and counted under ``skip_invalid_samples``, else a clear error.

Loading validates every record and opens every media header (:func:`trl_latent.data.load_records`), but a video with
a valid header and a corrupt middle only fails when its frames are decoded, at step time: in the DIFT collator and in
the 4DRL rollout. Neither may end a long multi-GPU run, and neither may change the shape of a step (every process
must still take it), so each trainer turns a failed sample into a no-op of its own kind (DIFT drops the row, 4DRL
masks the rows out of the loss) and reports it here: one warning per sample and a run total, ``skipped_samples``, in
every training log (the final one included, so it lands in ``trainer_state.json``).
"""

from __future__ import annotations

import logging

import torch

from .data import DataRecordError

logger = logging.getLogger(__name__)


def skip_or_raise(error: DataRecordError, skip: bool) -> None:
    """Log ``error`` as a skipped sample when ``skip``; otherwise raise it, naming the setting that would skip it."""
    if not skip:
        raise DataRecordError(
            error.source, error.field, f"{error.problem} (set skip_invalid_samples: true to skip and count such samples)"
        ) from error
    logger.warning("skipping a sample that fails to decode: %s", error)


class SkippedSamplesMixin:
    """Keeps the run total of skipped samples over all processes and adds it to every training log.

    Put it before the TRL trainer in the bases; the trainer calls :meth:`count_skipped` on every process at the same
    point of a step (it gathers).
    """

    skipped_samples: int = 0

    def count_skipped(self, count: float) -> None:
        """Add this process's ``count`` (summed over processes) to the run total."""
        local = torch.tensor(float(count), device=self.accelerator.device)
        self.skipped_samples += round(self.accelerator.gather(local).sum().item())

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self.args.skip_invalid_samples and not any(key.startswith("eval_") for key in logs):
            logs = {**logs, "skipped_samples": self.skipped_samples}
        super().log(logs, start_time)

