"""Read DSR-Bench and Dyn-Bench from disk into plain rows, with errors that name the file, row and field.

Kept free of lmms-eval so that data problems can be checked (and tested) without the evaluation stack. Neither
benchmark can be downloaded automatically (DSR-Bench is gated and its videos come from Koala-36M URLs; Dyn-Bench's
dataset id is not settled), so a missing root says exactly what to fetch and where to put it.
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DSR_BENCH_ENV = "DSR_BENCH_ROOT"
DSR_BENCH_VIDEO_ENV = "DSR_BENCH_VIDEO_ROOT"
DYN_BENCH_ENV = "DYN_BENCH_ROOT"
DSR_BENCH_IDS_ENV = "DSR_BENCH_IDS_FILE"
DYN_BENCH_IDS_ENV = "DYN_BENCH_IDS_FILE"

DSR_BENCH_HINT = (
    "DSR-Bench: download `benchmark.parquet` from the gated Hugging Face dataset TencentARC/DSR_Suite-Data and the "
    "benchmark videos (Koala-36M clips, fetched with the Panda-70M downloader as the DSR Suite README explains); put "
    "them as <root>/benchmark.parquet and <root>/<videoID>.mp4 (or the videos under DSR_BENCH_VIDEO_ROOT), then set "
    f"{DSR_BENCH_ENV}=<root> or the task's dataset_kwargs `root`."
)
DYN_BENCH_HINT = (
    "Dyn-Bench: download the Dyn-Bench release (see the Dynamics-X/Thinking-in-Dynamics README for the dataset id) "
    "and unpack it so that <root>/frames/<source>/<scene>/*.jpg and "
    "<root>/multi_json/<source>/<scene>_{cameraqa,qa,sceneqa}.json exist, then set "
    f"{DYN_BENCH_ENV}=<root> or the task's dataset_kwargs `root`."
)

# Dyn-Bench QA file suffix → category, as the official loader maps them.
DYN_CATEGORIES: dict[str, str] = {"cameraqa": "Camera-Object", "qa": "Inter-Object", "sceneqa": "Object-Scene"}
_DYN_QA_FILE = re.compile(r"^(?P<scene>.+)_(?P<suffix>cameraqa|qa|sceneqa)\.json$")
# Dyn-Bench's loader (utils/load_tasks.py) takes the first of these globs that matches anything, so a scene folder
# holding frame_*.jpg plus other images (masks, thumbnails) gives only its frames.
FRAME_GLOBS = ("frame_*.jpg", "frame_*.png", "*.jpg", "*.png")
_LETTER_PREFIX = re.compile(r"^\s*\(?([A-Z])\s*[.):：]\s*")


class BenchmarkDataError(ValueError):
    """A benchmark file or row is malformed; the message names the file, the row and the field."""


class BenchmarkNotFoundError(FileNotFoundError):
    """A benchmark root or its media are missing; the message says what to download and where to put it."""


@dataclass
class LoadedBenchmark:
    """Rows ready for evaluation plus the questions left out because their video or frames are missing/undecodable."""

    rows: list[dict[str, Any]]
    missing_media: list[str] = field(default_factory=list)
    undecodable: list[str] = field(default_factory=list)  # the videos among ``missing_media`` that exist but won't decode


def read_ids(path: str | os.PathLike) -> list[str]:
    """Question ids to score, from a JSON list or a text file with one id per line (blank lines and ``#`` ignored)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise BenchmarkNotFoundError(f"ids_file {path} not found")
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise BenchmarkDataError(f"{path}: not a valid JSON list of ids ({error})") from error
        return [str(v).strip() for v in values]
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def select_ids(loaded: LoadedBenchmark, all_ids: Sequence[str], ids_file: str | os.PathLike | None) -> LoadedBenchmark:
    """Only the questions named in ``ids_file`` (a fixed subset, e.g. the 1,413 the 4DThinker release scored); an id
    the benchmark does not have is an error naming the file and the id."""
    if not ids_file:
        return loaded
    wanted = read_ids(ids_file)
    unknown = sorted(set(wanted) - set(all_ids))
    if unknown:
        raise BenchmarkDataError(f"{ids_file}: {len(unknown)} id(s) not in the benchmark, e.g. {unknown[:3]}")
    keep = set(wanted)
    return LoadedBenchmark(
        rows=[r for r in loaded.rows if str(r["question_id"]) in keep],
        missing_media=[m for m in loaded.missing_media if m.split(" ")[0] in keep],
        undecodable=loaded.undecodable,
    )


def normalize_type(value: Any) -> str:
    """A question type key as the release compares them: ``str(value).strip().lower()``; missing → ''."""
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    return "" if missing else str(value).strip().lower()


def resolve_root(explicit: str | os.PathLike | None, env_var: str, hint: str) -> Path:
    """The benchmark root from the task kwarg, else the environment variable; it must be an existing folder."""
    value = explicit if explicit not in (None, "") else os.environ.get(env_var)
    if not value:
        raise BenchmarkNotFoundError(f"No benchmark root given: set {env_var} or dataset_kwargs `root`. {hint}")
    root = Path(value).expanduser()
    if not root.is_dir():
        raise BenchmarkNotFoundError(f"Benchmark root {root} (from {env_var} or `root`) is not a folder. {hint}")
    return root


def normalize_options(value: Any, where: str) -> list[str]:
    """Options as a list of "A. text" strings, from a list, a numpy array, a string repr of a list, or lines.

    Options without a letter prefix get one in order, so prompts always show the letters the answer refers to.
    """
    if hasattr(value, "tolist"):  # numpy array as read from parquet
        value = value.tolist()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError) as error:
                raise BenchmarkDataError(f"{where}: field `options` is not a readable list: {text[:80]!r}") from error
        else:
            value = [line for line in text.splitlines() if line.strip()]
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(o, str) for o in value):
        raise BenchmarkDataError(f"{where}: field `options` must be a non-empty list of strings, got {value!r:.80}")
    options = [str(o).strip() for o in value]
    if all(_LETTER_PREFIX.match(o) for o in options):
        return options
    return [f"{chr(ord('A') + i)}. {o}" for i, o in enumerate(options)]


def normalize_answer(value: Any, options: Sequence[str], where: str) -> str:
    """The ground-truth letter ("B", "(B)", "B. text" accepted); it must name one of the options."""
    text = str(value).strip() if value is not None else ""
    match = _LETTER_PREFIX.match(text.upper()) or re.fullmatch(r"([A-Za-z])", text)
    letter = match.group(1).upper() if match else ""
    allowed = "".join(chr(ord("A") + i) for i in range(len(options)))
    if not letter or letter not in allowed:
        raise BenchmarkDataError(f"{where}: field `answer` must be one of the option letters {allowed}, got {value!r}")
    return letter


def load_dsr_bench(
    root: str | os.PathLike | None = None,
    parquet: str | os.PathLike | None = None,
    video_root: str | os.PathLike | None = None,
    ids_file: str | os.PathLike | None = None,
) -> LoadedBenchmark:
    """DSR-Bench-style rows from ``benchmark.parquet`` (the synthetic held-out set uses the same layout).

    Questions whose ``{video_root}/{videoID}.mp4`` is missing, or exists but does not decode, are left out and listed
    in ``missing_media`` as ``"<question id> <videoID>"`` (the release skips both the same way and reports accuracy
    over the evaluated questions); none usable at all is an error. ``question_id`` is the row index (the release's
    ``index``), which is what ``ids_file`` lists.
    """
    import pandas as pd

    from lmms_eval_dsr.media import UndecodableVideoError, probe_video

    root_path = resolve_root(root, DSR_BENCH_ENV, DSR_BENCH_HINT)
    parquet_path = Path(parquet).expanduser() if parquet else root_path / "benchmark.parquet"
    if not parquet_path.is_file():
        raise BenchmarkNotFoundError(f"{parquet_path} not found. {DSR_BENCH_HINT}")
    videos = Path(video_root or os.environ.get(DSR_BENCH_VIDEO_ENV) or root_path).expanduser()
    frame = pd.read_parquet(parquet_path)
    missing_columns = [c for c in ("videoID", "question", "options", "answer") if c not in frame.columns]
    if missing_columns:
        raise BenchmarkDataError(f"{parquet_path}: missing column(s) {missing_columns}; found {list(frame.columns)}")
    rows, missing, undecodable = [], [], []
    checked: dict[str, bool] = {}
    for index, record in enumerate(frame.to_dict("records")):
        where = f"{parquet_path} row {index}"
        video_id = str(record["videoID"]).strip()
        if not video_id:
            raise BenchmarkDataError(f"{where}: field `videoID` is empty")
        options = normalize_options(record["options"], where)
        row = {
            "question_id": index,
            "video_id": video_id,
            "video": str(videos / f"{video_id}.mp4"),
            "question": str(record["question"]).strip(),
            "options": options,
            "answer": normalize_answer(record["answer"], options, where),
            "type": normalize_type(record.get("type")),
        }
        if video_id not in checked:
            checked[video_id] = Path(row["video"]).is_file()
            if checked[video_id]:
                try:
                    probe_video(row["video"])
                except UndecodableVideoError:
                    checked[video_id] = False
                    undecodable.append(video_id)
        if checked[video_id]:
            rows.append(row)
        else:
            missing.append(f"{index} {video_id}")
    ids_file = ids_file or os.environ.get(DSR_BENCH_IDS_ENV)
    loaded = select_ids(LoadedBenchmark(rows, missing, undecodable), [str(i) for i in range(len(frame))], ids_file)
    rows, missing = loaded.rows, loaded.missing_media
    if not rows:
        raise BenchmarkNotFoundError(
            f"None of the {len(missing)} DSR-Bench videos was found under {videos} (expected <videoID>.mp4, e.g. "
            f"{videos / (missing[0].split(' ')[-1] + '.mp4') if missing else videos}). {DSR_BENCH_HINT}"
        )
    return loaded


def list_frames(frames_dir: str | os.PathLike) -> list[str]:
    """The frame image paths of a Dyn-Bench scene in temporal (file name) order: the first of :data:`FRAME_GLOBS`
    that matches, as Dyn-Bench's loader picks them."""
    folder = Path(frames_dir)
    for pattern in FRAME_GLOBS if folder.is_dir() else ():
        found = sorted(str(p) for p in folder.glob(pattern))
        if found:
            return found
    return []


def load_dyn_bench(root: str | os.PathLike | None = None, ids_file: str | os.PathLike | None = None) -> LoadedBenchmark:
    """Dyn-Bench QA rows from ``multi_json/<source>/<scene>_<suffix>.json`` with frames at ``frames/<source>/<scene>``.

    Files whose name contains ``frame_sampling`` are not QA files (the official loader skips them too). Scenes without
    frames are left out and listed in ``missing_media``.
    """
    root_path = resolve_root(root, DYN_BENCH_ENV, DYN_BENCH_HINT)
    qa_root = root_path / "multi_json"
    if not qa_root.is_dir():
        raise BenchmarkNotFoundError(f"{qa_root} not found. {DYN_BENCH_HINT}")
    rows: list[dict[str, Any]] = []
    missing: list[str] = []
    all_ids: list[str] = []
    for qa_file in sorted(qa_root.glob("*/*.json")):
        match = _DYN_QA_FILE.match(qa_file.name)
        if "frame_sampling" in qa_file.name or not match:
            continue
        source, scene, suffix = qa_file.parent.name, match.group("scene"), match.group("suffix")
        try:
            items = json.loads(qa_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise BenchmarkDataError(f"{qa_file}: not valid JSON ({error})") from error
        if not isinstance(items, list):
            raise BenchmarkDataError(f"{qa_file}: expected a JSON list of questions, got {type(items).__name__}")
        frames_dir = root_path / "frames" / source / scene
        all_ids.extend(f"{source}/{scene}/{suffix}/{i}" for i in range(len(items)))
        if not list_frames(frames_dir):
            missing.extend(f"{source}/{scene}/{suffix}/{i}" for i in range(len(items)))
            continue
        for index, item in enumerate(items):
            where = f"{qa_file} item {index}"
            if not isinstance(item, dict) or "question" not in item:
                raise BenchmarkDataError(f"{where}: field `question` missing")
            options = normalize_options(item.get("options"), where)
            rows.append(
                {
                    "question_id": f"{source}/{scene}/{suffix}/{index}",
                    "video_id": f"{source}/{scene}",
                    "source": source,
                    "scene": scene,
                    "category": DYN_CATEGORIES[suffix],
                    "frames_dir": str(frames_dir),
                    "question": str(item["question"]).strip(),
                    "options": options,
                    "answer": normalize_answer(item.get("answer"), options, where),
                }
            )
    loaded = select_ids(LoadedBenchmark(rows, missing), all_ids, ids_file or os.environ.get(DYN_BENCH_IDS_ENV))
    if not loaded.rows:
        detail = f"frames missing for {len(missing)} questions" if missing else "no *_{cameraqa,qa,sceneqa}.json files"
        raise BenchmarkNotFoundError(f"No Dyn-Bench question could be loaded from {root_path} ({detail}). {DYN_BENCH_HINT}")
    return loaded
