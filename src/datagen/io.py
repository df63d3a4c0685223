"""Atomic file writes and JSON helpers.

Every stage writes its per-item outputs through these functions: the data go to a temporary file in the same
folder and are moved into place with ``os.replace``, so an interrupted run (Ctrl-C, crash, OOM kill) leaves either
the old file or the new one, never a truncated file that a rerun would mistake for finished work.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def atomic_write(path: str | Path, writer: Callable[[Path], None], suffix: str = "") -> Path:
    """Call ``writer(tmp_path)`` and move the result to ``path`` atomically.

    ``suffix`` keeps the extension on the temporary name for libraries that choose a format from it (PIL, numpy).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    try:
        writer(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=1, ensure_ascii=False) + "\n")


def write_jsonl(path: str | Path, records: Iterable[dict]) -> Path:
    return write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON ({e})") from e


def read_jsonl(path: str | Path) -> list[dict]:
    return [record for _, record in numbered_jsonl(path)]


def numbered_jsonl(path: str | Path) -> list[tuple[int, Any]]:
    """``(line number, record)`` of every non-blank line; invalid JSON is an error naming ``file:line``."""
    path = Path(path)
    records = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append((lineno, json.loads(line)))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{lineno}: invalid JSON ({e})") from e
    return records


def save_image(path: str | Path, image, quality: int = 90) -> Path:
    """Save a PIL image atomically (format from the extension of ``path``)."""
    path = Path(path)
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else None
    kwargs = {"quality": quality} if fmt == "JPEG" else {}
    return atomic_write(path, lambda tmp: image.save(tmp, format=fmt or path.suffix[1:].upper(), **kwargs))


def save_npz(path: str | Path, **arrays) -> Path:
    import numpy as np

    return atomic_write(path, lambda tmp: np.savez_compressed(tmp, **arrays), suffix=".npz")
