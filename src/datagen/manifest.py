"""Per-stage manifests and the resumable item loop every stage runs through.

A manifest is an append-only JSONL file (``<out>/manifests/<stage>.jsonl``); each line records one finished or
failed item. Appending one short line per item is cheap and crash-safe: a line cut by a kill is ignored when the
file is read back, and the item's own output was written atomically before its ``done`` line, so a rerun that
trusts the manifest never trusts a missing or partial output.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from concurrent.futures import ThreadPoolExecutor, as_completed
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm


logger = logging.getLogger(__name__)


class Manifest:
    """Status of every item of one stage: ``done`` or ``failed`` (the last line about an item wins)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.status: dict[str, dict] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by a kill: the item simply runs again
                    continue
                if isinstance(entry, dict) and "item" in entry:
                    self.status[entry["item"]] = entry

    def is_done(self, item: str) -> bool:
        return self.status.get(item, {}).get("status") == "done"

    def _append(self, entry: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")
            f.flush()
        self.status[entry["item"]] = entry

    def mark_done(self, item: str, **info) -> None:
        self._append({"item": item, "status": "done", "time": time.time(), **info})

    def mark_failed(self, item: str, error: str) -> None:
        self._append({"item": item, "status": "failed", "time": time.time(), "error": error})

    def done_items(self) -> list[str]:
        return [k for k, v in self.status.items() if v.get("status") == "done"]

    def failed_items(self) -> dict[str, str]:
        return {k: v.get("error", "") for k, v in self.status.items() if v.get("status") == "failed"}


@dataclass
class StageResult:
    """What one run of a stage did; ``failed`` maps item → error message."""

    stage: str
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        return f"{self.stage}: {len(self.done)} done, {len(self.skipped)} already done, {len(self.failed)} failed"


def run_items(
    stage: str,
    items: Iterable[str],
    process: Callable[[str], object],
    manifest: Manifest,
    outputs_exist: Callable[[str], bool] = lambda item: True,
    progress: bool = True,
    workers: int = 1,
) -> StageResult:
    """Run ``process(item)`` for every item not yet done; record each outcome in ``manifest``.

    An item counts as finished only when the manifest says so *and* ``outputs_exist(item)``: deleting an output
    file is enough to have it rebuilt. An ordinary exception marks the item failed (the next run retries it) and
    the loop goes on; ``KeyboardInterrupt`` / ``SystemExit`` stop the loop at once, and everything already recorded
    stays valid. With ``workers > 1`` items run in threads (for I/O-bound work such as API calls); the manifest is
    only written from the calling thread.
    """
    result = StageResult(stage)
    pending = []
    for item in items:
        if manifest.is_done(item) and outputs_exist(item):
            result.skipped.append(item)
        else:
            pending.append(item)

    def record(item: str, outcome: object, error: Exception | None) -> None:
        if error is None:
            manifest.mark_done(item, **(outcome if isinstance(outcome, dict) else {}))
            result.done.append(item)
            return
        message = f"{type(error).__name__}: {error}"
        logger.warning("%s: %s failed: %s\n%s", stage, item, message,
                       "".join(traceback.format_exception(error, limit=3)))
        manifest.mark_failed(item, message)
        result.failed[item] = message

    bar = tqdm(total=len(pending), desc=stage, disable=not progress, leave=False)
    if workers <= 1:
        for item in pending:
            try:
                outcome, error = process(item), None
            except Exception as e:  # noqa: BLE001 - one bad clip must not stop a 10k-clip run
                outcome, error = None, e
            record(item, outcome, error)
            bar.update()
    else:
        pool = ThreadPoolExecutor(max_workers=workers)
        try:
            futures = {pool.submit(process, item): item for item in pending}
            for future in as_completed(futures):
                error = future.exception()
                record(futures[future], None if error else future.result(), error)
                bar.update()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    bar.close()
    logger.info(result.summary())
    return result
