"""Per-stage manifests and the resumable item loop every stage runs through.

A manifest is an append-only JSONL file (``<out>/manifests/<stage>.jsonl``); each line records one finished or
failed item. Appending one short line per item is cheap and crash-safe: a line cut by a kill is ignored when the
file is read back, and the item's own output was written atomically before its ``done`` line, so a rerun that
trusts the manifest never trusts a missing or partial output.

A ``done`` line carries the item's *fingerprint*: a hash of the settings the stage read and of the versions of the
upstream items it consumed (see :mod:`datagen.fingerprint`). A rerun reuses an item only when the fingerprint it
would have now is the recorded one, so a changed threshold, or an upstream item that was redone, makes it run again.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import traceback
from concurrent.futures import ThreadPoolExecutor, as_completed
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
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

    def fingerprint(self, item: str) -> str | None:
        """The fingerprint ``item`` was made with, ``None`` unless it is done."""
        return self.status[item].get("fingerprint") if self.is_done(item) else None

    def version(self, item: str) -> str | None:
        """Which making of ``item`` is on disk (fingerprint and time), ``None`` unless it is done: downstream items
        key on it, so redoing an item, even with the same settings, redoes what was made from it."""
        return f"{self.fingerprint(item)}@{self.status[item]['time']}" if self.is_done(item) else None

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
    """What one run of a stage did; ``failed`` maps item → error message, ``details`` says where all of them are."""

    stage: str
    done: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    details: str = ""
    note: str = ""
    outputs: dict[str, Path] = field(default_factory=dict)

    def summary(self) -> str:
        return f"{self.stage}: {len(self.done)} done, {len(self.reused)} reused, {len(self.failed)} failed"


def format_summary(results: Iterable[StageResult], max_failures: int = 5) -> str:
    """The end-of-run table: done / reused / failed per stage, where all failures are listed, the first few."""
    results = list(results)
    lines = [f"{'stage':<10} {'done':>6} {'reused':>6} {'failed':>6}  notes"]
    for r in results:
        where = f"failures: {r.details}" if r.failed and r.details else ""
        notes = "; ".join(n for n in (r.note, where) if n)
        lines.append(f"{r.stage:<10} {len(r.done):>6} {len(r.reused):>6} {len(r.failed):>6}  {notes}".rstrip())
    for r in results:
        for item, error in list(r.failed.items())[:max_failures]:
            lines.append(f"  {r.stage} failed {item}: {error[:300]}")
        if len(r.failed) > max_failures:
            lines.append(f"  {r.stage}: {len(r.failed) - max_failures} more in {r.details}")
    return "\n".join(lines)


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


Outcome = tuple[str, object, Exception | None]
"""``(item, what process returned, the exception it raised)``: one of them is ``None``."""

Execute = Callable[[list[str], Callable[[str], object], Callable[[], None] | None], Iterable[Outcome]]
"""``execute(items, run, setup)`` runs ``setup`` (where ``run`` will run) and then ``run(item)`` for every item, and
yields each item's :data:`Outcome` as it completes."""


def run_items(
    stage: str,
    items: Iterable[str],
    process: Callable[[str], object],
    manifest: Manifest,
    outputs: Callable[[str], list[Path]],
    fingerprint: Callable[[str], str],
    progress: bool = True,
    workers: int = 1,
    setup: Callable[[], None] | None = None,
    execute: Execute | None = None,
) -> StageResult:
    """Run ``process(item)`` for every item not yet done; record each outcome in ``manifest``.

    ``outputs(item)`` lists what the item writes, the file written last first. An item is reused only when the
    manifest says it is done with today's ``fingerprint(item)`` *and* that first file exists: deleting an output
    file is enough to have it rebuilt. Every other item has its old outputs removed before it runs, so a failure
    never leaves stale results behind. An ordinary exception marks the item failed (the next run retries it) and
    the loop goes on; ``KeyboardInterrupt`` / ``SystemExit`` stop the loop at once, and everything already recorded
    stays valid. ``setup()`` runs once before the first pending item (loading a model, probing an API): when it
    raises, the stage stops before any item is tried. With ``workers > 1`` items run in threads (for I/O-bound
    work such as API calls). ``execute`` runs the pending items elsewhere instead (:mod:`datagen.distributed`, on
    Ray); either way the manifest is only written from the calling thread, as items complete.
    """
    result = StageResult(stage, details=str(manifest.path))
    pending, fingerprints = [], {}
    for item in items:
        fingerprints[item] = fingerprint(item)
        if manifest.fingerprint(item) == fingerprints[item] and outputs(item)[0].exists():
            result.reused.append(item)
        else:
            pending.append(item)

    def run(item: str) -> object:
        for path in outputs(item):
            remove(path)
        return process(item)

    def record(item: str, outcome: object, error: Exception | None) -> None:
        if error is None:
            info = outcome if isinstance(outcome, dict) else {}
            manifest.mark_done(item, fingerprint=fingerprints[item], **info)
            result.done.append(item)
            return
        message = f"{type(error).__name__}: {error}"
        logger.warning("%s: %s failed: %s", stage, item, message)
        logger.info("".join(traceback.format_exception(error, limit=3)))  # -v
        manifest.mark_failed(item, message)
        result.failed[item] = message

    bar = tqdm(total=len(pending), desc=stage, disable=not progress, leave=False)
    if pending:
        execute = execute or partial(run_locally, workers=workers)
        for item, outcome, error in execute(pending, run, setup):
            record(item, outcome, error)
            bar.update()
    bar.close()
    logger.info(result.summary())
    return result


def run_locally(items: list[str], run: Callable[[str], object], setup: Callable[[], None] | None,
                workers: int = 1) -> Iterator[Outcome]:
    """The in-process :data:`Execute`: in order, or in ``workers`` threads."""
    if setup is not None:
        setup()
    if workers <= 1:
        for item in items:
            try:
                yield item, run(item), None
            except Exception as e:  # noqa: BLE001 - one bad clip must not stop a 10k-clip run
                yield item, None, e
        return
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = {pool.submit(run, item): item for item in items}
        for future in as_completed(futures):
            error = future.exception()
            yield futures[future], None if error else future.result(), error
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
