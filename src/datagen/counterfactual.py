"""Counterfactual imagery: pair each DIFT row with the same question's imagery from a counterfactual twin world.

A counterfactual twin of the synthetic world has the same clips (same clip ids) up to a given frame, after which
every moving object leaves its path. Datagen run on the twin as on the original, into another data folder and with
``object_qa.questions_from`` naming the original's (so that it asks the same object questions, word for word), writes
rows for the same questions with the same visible frames but imagery of another end of the clip and, sometimes,
another answer. That twin imagery is the best negative the imagery contrast (docs/dift.md, "Imagery
contrast") can get: it agrees with everything the model sees and differs only in what it does not, so the text can
prefer the row's own imagery only by reading what the block shows, never by matching it against the video. A batch
neighbour's imagery (another scene) or the row's own images reversed (a motion the frames contradict) can both be
told apart from the video alone.

:func:`attach_counterfactual_imagery` writes those negatives into the original ``dift.jsonl`` as the field
``counterfactual_output``, which :func:`trl_latent.data.normalize_record` reads: the twin row's ``image_output``
paths, relative to the folder of the file written, or ``[]`` where the twin gives no negative.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .errors import USER_ERRORS, debug_requested, one_line
from .io import numbered_jsonl, write_jsonl

FIELD = "counterfactual_output"
COUNTS = ("rows", "paired", "same_answer", "no_twin_row", "image_count_differs", "twin_duplicates")
"""The keys of :func:`attach_counterfactual_imagery`'s counts, in order."""
REQUIRED = ("id", "text_input", "image_output", "text_output")
"""Fields both exports' rows must have (what :func:`datagen.export.collect_records` writes into ``dift.jsonl``)."""


def clip_id_of(row_id: str) -> str:
    """The clip of a question id ``{clip_id}-{kind}-{number:03d}`` (:class:`datagen.mcq.QuestionWriter`): everything
    before the last two ``-``, since clip ids come from ``metadata.csv`` and may hold ``-`` themselves."""
    parts = row_id.rsplit("-", 2)
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"id {row_id!r} is not a datagen question id <clip_id>-<kind>-<number>")
    return parts[0]


def _read_rows(path: Path) -> list[tuple[int, dict]]:
    """``(line number, row)`` for every non-blank line of a DIFT export, each checked for :data:`REQUIRED`."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: DIFT export not found")
    rows = []
    for lineno, row in numbered_jsonl(path):
        where = f"{path}:{lineno}"
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
        missing = [name for name in REQUIRED if name not in row]
        if missing:
            raise ValueError(f"{where}: missing field(s) {missing}")
        for name in ("id", "text_input", "text_output"):
            if not isinstance(row[name], str):
                raise ValueError(f"{where}: field {name!r} must be a string, got {type(row[name]).__name__}")
        images = row["image_output"]
        if not isinstance(images, list) or not all(isinstance(p, str) and p for p in images):
            raise ValueError(f"{where}: field 'image_output' must be a list of image paths, got {images!r}")
        try:
            clip_id_of(row["id"])
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        rows.append((lineno, row))
    return rows


def attach_counterfactual_imagery(
    rows_path: str | Path, twin_rows_path: str | Path, out_path: str | Path | None = None
) -> dict[str, int]:
    """Write ``rows_path``'s rows to ``out_path`` (default: ``rows_path`` itself) with ``counterfactual_output`` set.

    A row's twin is the first row of ``twin_rows_path`` of the same clip (:func:`clip_id_of`) and the same
    ``text_input``: question numbers may differ between the worlds, since the twin's motion can ask other questions.
    It gives its ``image_output`` paths (made relative to ``out_path``'s folder, each checked to exist) when it has as
    many images and another ``text_output`` (another conclusion: a negative with a right answer to prefer); otherwise
    the field is ``[]`` (the same text: both imageries rightly give it; another count: no image-for-image negative).
    Every other field and the row order are kept; a field already there is replaced, so a rerun is idempotent.

    ``out_path`` must lie in ``rows_path``'s folder, where the rows' other paths are relative to. The file is written
    to a temporary name and moved into place. Returns the counts ``rows``, ``paired``, ``same_answer``,
    ``no_twin_row``, ``image_count_differs`` and ``twin_duplicates`` (twin rows left out because an earlier twin row
    has the same clip and ``text_input``).
    """
    rows_path, twin_rows_path = Path(rows_path), Path(twin_rows_path)
    out_path = rows_path if out_path is None else Path(out_path)
    if out_path.parent.resolve() != rows_path.parent.resolve():
        raise ValueError(f"{out_path}: must be in the folder of {rows_path}, where its rows' media paths are relative "
                         "to (write next to it, e.g. dift_counterfactual.jsonl)")
    if twin_rows_path.resolve() == rows_path.resolve():
        raise ValueError(f"{twin_rows_path}: the twin export is the original export itself")
    rows, twins = _read_rows(rows_path), _read_rows(twin_rows_path)

    counts = dict.fromkeys(COUNTS, 0)
    first: dict[tuple[str, str], tuple[int, dict]] = {}
    for lineno, twin in twins:
        key = (clip_id_of(twin["id"]), twin["text_input"])
        if key in first:
            counts["twin_duplicates"] += 1
        else:
            first[key] = (lineno, twin)

    twin_dir, out_dir = twin_rows_path.parent, out_path.parent
    written = []
    for _, row in rows:
        counts["rows"] += 1
        match = first.get((clip_id_of(row["id"]), row["text_input"]))
        paths: list[str] = []
        if match is None:
            counts["no_twin_row"] += 1
        elif len(match[1]["image_output"]) != len(row["image_output"]):
            counts["image_count_differs"] += 1
        elif match[1]["text_output"] == row["text_output"]:
            counts["same_answer"] += 1
        else:
            lineno, twin = match
            for path in twin["image_output"]:
                target = Path(os.path.normpath(twin_dir / path))
                if not target.is_file():
                    raise FileNotFoundError(f"row {row['id']!r}: counterfactual image {target} not found (image_output "
                                            f"of twin row {twin['id']!r}, {twin_rows_path}:{lineno})")
                paths.append(os.path.relpath(target, out_dir))
            counts["paired"] += 1
        written.append({**row, FIELD: paths})
    write_jsonl(out_path, written)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m datagen.counterfactual", description=__doc__.split("\n\n")[0])
    parser.add_argument("rows", type=Path, help="the original world's export/dift.jsonl")
    parser.add_argument("twin_rows", type=Path, help="the counterfactual twin world's export/dift.jsonl")
    parser.add_argument("--out", type=Path, default=None, help="file to write, in the folder of ROWS (default: ROWS)")
    parser.add_argument("--debug", action="store_true", help="full traceback on errors")
    args = parser.parse_args(argv)
    try:
        counts = attach_counterfactual_imagery(args.rows, args.twin_rows, args.out)
    except USER_ERRORS as e:
        if debug_requested(args.debug):
            raise
        raise one_line(parser.prog, e) from None
    print(" ".join(f"{name}={count}" for name, count in counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
