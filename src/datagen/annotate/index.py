"""``metadata.csv`` for a folder of raw videos, so they can enter the pipeline (and ``annotate``) at all.

Every video under ``<root>/videos/`` becomes one row: id = file stem, group = its first folder under ``videos/``
(``0`` when it lies directly in ``videos/``), fps, frame count and size probed with PyAV. Run it once, then
``trl-latent-datagen run`` with ``annotate`` among the stages::

    trl-latent-datagen index data/my_videos      # or: python -m datagen.annotate.index data/my_videos
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from ..errors import USER_ERRORS, debug_requested, one_line
from ..io import atomic_write

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm")
COLUMNS = ("id", "group_id", "video_path", "fps", "num_frames", "width", "height", "caption", "objects",
           "motion_tags")


def probe_video(path: Path) -> dict:
    """``fps``, ``num_frames``, ``width``, ``height`` of a video (frames counted by decoding when the container
    does not say)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.average_rate is None:
            raise ValueError(f"{path}: video stream has no frame rate")
        frames = stream.frames or sum(1 for _ in container.decode(video=0))
        return {"fps": float(stream.average_rate), "num_frames": frames, "width": stream.width,
                "height": stream.height}


def index_videos(root: str | Path) -> Path:
    """Write ``<root>/metadata.csv`` for the videos under ``<root>/videos``; refuses to replace an existing one."""
    root = Path(root)
    out = root / "metadata.csv"
    if out.exists():
        raise FileExistsError(f"{out} exists; remove it to index {root / 'videos'} again")
    videos = sorted(p for p in (root / "videos").rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        where = root / "videos"
        raise FileNotFoundError(f"{where}: no {'/'.join(VIDEO_SUFFIXES)} files"
                                + ("" if where.is_dir() else " (the folder does not exist)"))
    rows, seen = [], {}
    for path in videos:
        relative = path.relative_to(root)
        if path.stem in seen:
            raise ValueError(f"{relative} and {seen[path.stem]}: two videos with the id {path.stem!r}")
        seen[path.stem] = relative
        group = relative.parts[1] if len(relative.parts) > 2 else "0"
        rows.append({"id": path.stem, "group_id": group, "video_path": relative.as_posix(), **probe_video(path)})

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS, restval="")
            writer.writeheader()
            writer.writerows(rows)

    return atomic_write(out, write)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m datagen.annotate.index DATASET_ROOT   (videos under DATASET_ROOT/videos/)")
    try:
        print(index_videos(sys.argv[1]))
    except USER_ERRORS as e:
        if debug_requested():
            raise
        raise one_line("datagen.annotate.index", e) from None
