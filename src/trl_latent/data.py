"""DIFT and 4DRL records: loading, up-front validation, and visual decoding.

One loader serves both stages (and the evaluation code), so a record that trains is a record that rolls out. Records
come from a JSONL file (one sample a line; the public 4DThinker schema) or from a Hugging Face ``datasets`` source (a
folder written by ``save_to_disk``, a folder ``load_dataset`` reads, a parquet / json / arrow file; a split and a
configuration pick the part; a folder's data files are read afresh every time, never from the ``datasets`` cache).
Every record is validated before training starts, with errors naming ``file:line`` and the field: a bad sample found
at step 30,000 of a multi-GPU run is far more expensive than one found at load time. A 4DRL answer, and the
``<answer>`` of a DIFT target, must be a number or one of the question's option letters, as the accuracy reward reads
them.
``skip_invalid=True`` drops bad samples instead, logging each one and the total. (Media that open but fail to decode
are caught where they are decoded, at step time: :mod:`trl_latent.skipping`.)

Normalised record (the columns of the returned ``Dataset``; paths are absolute)::

    source        "data.jsonl:12"  where the sample came from, for error messages at collate time
    frames        list[str]        frame paths of the user video (``image_input`` list), or []
    image         str              a single user image (``image_input`` string), or ""
    video         str              a user video file (``video``), or ""
    prompt        str              ``text_input`` with the chosen suffix appended (``prompt_suffix``; default
                                   :data:`FOUR_D_PROMPT_SUFFIX`)
    # DIFT only
    image_output  list[str]        imagery images, one per ``<output_image>``
    text_output   str              assistant text with ``<output_image>`` placeholders
    counterfactual_output
                  list[str]        the same question's imagery in a counterfactual twin of the clip (one per
                                   ``image_output`` image), or [] (an optional field; :mod:`datagen.counterfactual`
                                   writes it): the negatives of the imagery contrast's ``counterfactual`` mode
    # 4DRL only
    answer        str              ground truth (numbers kept as their text), ``type`` str ("" when absent)

4DRL records may also come in the release's own format (``video_path`` or ``frame_paths``, ``Question``, ``A``-``D``,
``Correct``): :func:`from_release_rl` maps them onto the fields above.

Visuals: :func:`load_visual` turns a record into what the Qwen2.5-VL processor takes (a PIL image, or ``uint8
[T, H, W, 3]`` frames plus the fps they are sampled at, which the processor needs as ``video_metadata`` so temporal
mRoPE spaces the frames by real time). Frames and images are resized to a pixel budget with sides multiples of 28.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from .answers import PROMPT_SUFFIXES, THINK_PROMPT_SUFFIX
from .tokens import count_output_images

logger = logging.getLogger(__name__)

FOUR_D_PROMPT_SUFFIX = THINK_PROMPT_SUFFIX
"""Instruction appended to every question: think with mental imagery inside ``<think>…</think>``, then answer inside
``<answer>…</answer>``. The same string is used by DIFT, 4DRL and the ``_think`` benchmark tasks (it is defined next
to the answer parser in :mod:`trl_latent.answers`, which reads the tags it asks for)."""

PIXEL_UNIT = 28  # patch 14 x merge 2: Qwen2.5-VL image sides are multiples of this
Task = Literal["dift", "rl"]
_VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")


class DataRecordError(ValueError):
    """A record that cannot be used; the message names its ``file:line`` and the offending field."""

    def __init__(self, source: str, field: str, problem: str) -> None:
        super().__init__(f"{source}: field {field!r}: {problem}")
        self.source, self.field, self.problem = source, field, problem


def build_prompt(question: str, suffix: str = FOUR_D_PROMPT_SUFFIX) -> str:
    """The user text: the question, a newline, the 4D suffix (not added twice if the data already carries it).

    A suffix that starts with a newline (the release's, :data:`trl_latent.answers.PROMPT_SUFFIXES`) is appended to
    the question as it is, which is how the release builds its prompts, so the text matches byte for byte.
    """
    if suffix.startswith("\n"):
        return question if question.endswith(suffix) else question + suffix
    question = question.rstrip()
    return question if question.endswith(suffix) else f"{question}\n{suffix}"


# ----------------------------------------------------------------------------------------------------------------
# Loading and validation


def _is_saved_dataset(folder: Path) -> bool:
    """A folder written by ``save_to_disk`` (a ``Dataset`` or a ``DatasetDict``), as opposed to a folder of data files."""
    return any((folder / name).is_file() for name in ("dataset_dict.json", "state.json"))


def _no_split(source: Path, split: str, splits: Iterable[str]) -> ValueError:
    return ValueError(f"{source}: no split {split!r} (splits: {list(splits)}); choose one with --dataset_train_split")


def folder_data_files(folder: Path, split: str, config: str | None) -> list[Path]:
    """The data files of ``split`` in a folder ``load_dataset`` reads: those its README's ``configs`` name for
    ``config`` (the default configuration when ``None``), else those ``datasets`` infers from the file names.

    Only the file list is taken from ``datasets``, never the rows: ``load_dataset(folder, config)`` keys its cache by
    the folder's name, the configuration and the README's file patterns (datasets 5.2), so two datagen exports (both
    named ``export``) share one cache entry, and a file edited in place keeps serving its old rows.
    """
    import datasets

    data_files = datasets.load_dataset_builder(str(folder), name=config).config.data_files or {}
    if split not in data_files:
        raise _no_split(folder, split, data_files)
    return [Path(file) for file in data_files[split]]


def _hf_table(path: Path, split: str) -> Any:
    """The ``split`` of a ``datasets`` source: a ``save_to_disk`` folder, or a parquet / json / arrow / csv file
    (folders of data files are read file by file, see :func:`_raw_rows`). ``load_dataset`` with explicit
    ``data_files`` keys its cache by each file's path and modification time, so an edited file is read again."""
    import datasets

    if path.is_dir():
        table = datasets.load_from_disk(str(path))
    else:
        builder = {".parquet": "parquet", ".arrow": "arrow", ".csv": "csv"}.get(path.suffix, "json")
        table = datasets.load_dataset(builder, data_files={split: str(path)})
    if isinstance(table, datasets.DatasetDict):
        if split not in table:
            raise _no_split(path, split, table)
        table = table[split]
    return table


def _raw_rows(path: Path, split: str = "train", config: str | None = None) -> Iterator[tuple[str, Any]]:
    """``(source, raw row)`` pairs; a JSONL line that is not a JSON object is reported as that row's problem."""
    if path.is_dir() and not _is_saved_dataset(path):
        for file in folder_data_files(path, split, config):
            yield from _raw_rows(file, split)
        return
    if path.is_dir() or path.suffix in (".parquet", ".arrow", ".json", ".csv"):
        for index, row in enumerate(_hf_table(path, split)):
            yield f"{path}:row {index}", row
        return
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            source = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                yield source, DataRecordError(source, "<line>", f"not valid JSON ({error.msg} at column {error.colno})")
                continue
            yield source, row


def _text(row: dict, field: str, source: str) -> str:
    value = row.get(field)
    if not isinstance(value, str) or not value.strip():
        raise DataRecordError(source, field, "missing or not a non-empty string")
    return value


def _existing(value: Any, field: str, source: str, base: Path) -> str:
    if not isinstance(value, str) or not value:
        raise DataRecordError(source, field, f"expected a file path, got {value!r}")
    path = (base / value).resolve()
    if not path.is_file():
        raise DataRecordError(source, field, f"file not found: {path}")
    return str(path)


def _check_image(path: str, field: str, source: str) -> None:
    try:
        with Image.open(path) as image:
            image.verify()
    except Exception as error:  # PIL raises several unrelated types for unreadable files
        raise DataRecordError(source, field, f"unreadable image {path}: {error}") from error


def _check_video(path: str, field: str, source: str) -> None:
    try:
        import av

        with av.open(path) as container:
            if not container.streams.video:
                raise ValueError("no video stream")
    except Exception as error:
        raise DataRecordError(source, field, f"unreadable video {path}: {error}") from error


def _visual_fields(row: dict, source: str, base: Path, check_media: bool) -> dict[str, Any]:
    has_video = row.get("video") not in (None, "")
    has_images = row.get("image_input") not in (None, "", [])
    if has_video == has_images:
        raise DataRecordError(source, "image_input/video", "give exactly one of `image_input` and `video`")
    if has_video:
        video = _existing(row["video"], "video", source, base)
        if check_media:
            _check_video(video, "video", source)
        return {"frames": [], "image": "", "video": video}
    value = row["image_input"]
    if isinstance(value, str):
        image = _existing(value, "image_input", source, base)
        if check_media:
            _check_image(image, "image_input", source)
        return {"frames": [], "image": image, "video": ""}
    if not isinstance(value, list):
        raise DataRecordError(source, "image_input", f"expected a path or a list of frame paths, got {type(value).__name__}")
    frames = [_existing(item, f"image_input[{i}]", source, base) for i, item in enumerate(value)]
    if check_media:
        for i, frame in enumerate(frames):
            _check_image(frame, f"image_input[{i}]", source)
    return {"frames": frames, "image": "", "video": ""}


def _checked_answer(answer: str, question: str, source: str, field: str = "answer") -> str:
    """``answer`` when the accuracy reward can score it: a number, or the letter of one of the question's options
    (read with :func:`trl_latent.rewards.options_in`, the reward's own parser). ``field`` names where the answer was
    read, for the error."""
    from .rewards import options_in

    try:
        float(answer)
        return answer
    except ValueError:
        pass
    letters = [option.lstrip("(")[0] for option in options_in(question)]
    what = "" if field == "answer" else "the answer "
    if len(answer) != 1 or not answer.isalpha():
        raise DataRecordError(source, field, f"{what}{answer!r} is neither a number nor an option letter")
    if answer.upper() not in letters:
        listed = ", ".join(letters) if letters else "no 'A. …' option lines"
        raise DataRecordError(source, field, f"{what}{answer!r} is not among the options of text_input ({listed})")
    return answer


def _check_target_answer(text_output: str, question: str, source: str) -> None:
    """A DIFT target must answer a multiple-choice question with one of its options, as 4DRL and ``datagen validate``
    require: the letter the evaluator reads from the ``<answer>`` span (:func:`trl_latent.answers.extract_choice`)
    is checked by :func:`_checked_answer`. Questions without option lines and targets without an ``<answer>`` tag
    are free text."""
    from .answers import extract_answer_span, extract_choice
    from .rewards import options_in

    options = options_in(question)
    if not options or "<answer>" not in text_output.lower():
        return
    span = extract_answer_span(text_output)
    _checked_answer(extract_choice(span, options) or span, question, source, field="text_output")


RELEASE_RL_OPTIONS = ("A", "B", "C", "D")


def from_release_rl(row: dict, source: str) -> dict:
    """A record of the release's 4DRL JSONL (``video_path`` or ``frame_paths``, ``Question``, ``A``-``D``,
    ``Correct``) in this module's schema. The question text is built as the release builds it: the question, a blank
    line, then one ``"X. option"`` line per non-empty option."""
    question = _text(row, "Question", source)
    options = [f"{letter}. {row[letter]}" for letter in RELEASE_RL_OPTIONS if row.get(letter)]
    correct = row.get("Correct")
    if not isinstance(correct, str) or not correct.strip():
        raise DataRecordError(source, "Correct", f"missing or not an option letter: {correct!r}")
    present = [letter for letter in RELEASE_RL_OPTIONS if row.get(letter)]
    if correct.strip().upper() not in present:
        raise DataRecordError(source, "Correct", f"{correct!r} is not one of the given options ({', '.join(present)})")
    converted = {"text_input": question + ("\n\n" + "\n".join(options) if options else ""),
                 "answer": correct.strip().upper()}
    if row.get("frame_paths") not in (None, "", []):
        converted["image_input"] = row["frame_paths"]
        if not isinstance(converted["image_input"], list):
            raise DataRecordError(source, "frame_paths", "expected a list of frame paths")
    elif row.get("video_path") not in (None, ""):
        converted["video"] = row["video_path"]
    else:
        raise DataRecordError(source, "video_path/frame_paths", "give one of `video_path` and `frame_paths`")
    return converted


def normalize_record(
    row: Any, source: str, base: Path, task: Task, check_media: bool = True, prompt_suffix: str = "think"
) -> dict[str, Any]:
    """Validate one raw record and return its normalised form (see the module docstring); raise
    :class:`DataRecordError` naming ``source`` and the field otherwise. ``prompt_suffix`` names the instruction
    appended to the question (a key of :data:`trl_latent.answers.PROMPT_SUFFIXES`). For ``task="rl"`` a record in
    the release's 4DRL format (with ``Question``) is accepted as it is."""
    if isinstance(row, Exception):
        raise row
    if not isinstance(row, dict):
        raise DataRecordError(source, "<record>", f"expected a JSON object, got {type(row).__name__}")
    release = task == "rl" and "Question" in row and "text_input" not in row
    if release:
        row = from_release_rl(row, source)
    try:
        record = {"source": source, **_visual_fields(row, source, base, check_media)}
    except DataRecordError as error:
        if not release:
            raise
        field = error.field.replace("image_input", "frame_paths").replace("video", "video_path")
        raise DataRecordError(source, field, error.problem) from error
    record["prompt"] = build_prompt(_text(row, "text_input", source), PROMPT_SUFFIXES[prompt_suffix])
    if task == "dift":
        text_output = _text(row, "text_output", source)
        outputs = row.get("image_output")
        if not isinstance(outputs, list):
            raise DataRecordError(source, "image_output", "missing or not a list of imagery image paths")
        placeholders = count_output_images(text_output)
        if placeholders != len(outputs):
            raise DataRecordError(
                source, "image_output",
                f"{len(outputs)} imagery images but text_output has {placeholders} <output_image> placeholders",
            )
        record["image_output"] = _imagery_paths(outputs, "image_output", source, base, check_media)
        record["counterfactual_output"] = _counterfactual_output(row, len(outputs), source, base, check_media)
        _check_target_answer(text_output, row["text_input"], source)
        record["text_output"] = text_output
    elif task == "rl":
        answer = row.get("answer")
        if answer is None or isinstance(answer, (list, dict)) or str(answer).strip() == "":
            raise DataRecordError(source, "answer", f"missing or not a letter/number: {answer!r}")
        record["answer"] = _checked_answer(str(answer).strip(), row["text_input"], source)
        record["type"] = str(row.get("type") or "")
    else:
        raise ValueError(f"task must be 'dift' or 'rl', got {task!r}")
    return record


def _counterfactual_output(row: dict[str, Any], count: int, source: str, base: Path, check_media: bool) -> list[str]:
    """The optional ``counterfactual_output`` paths, absolute: empty, or one per ``image_output`` image."""
    paths = row.get("counterfactual_output")
    if paths is None:
        return []
    if not isinstance(paths, list):
        raise DataRecordError(source, "counterfactual_output", "not a list of imagery image paths")
    if paths and len(paths) != count:
        raise DataRecordError(source, "counterfactual_output",
                              f"{len(paths)} images but image_output has {count}: a counterfactual gives every "
                              "imagery image its negative, or is empty")
    return _imagery_paths(paths, "counterfactual_output", source, base, check_media)


def _imagery_paths(paths: list[Any], field: str, source: str, base: Path, check_media: bool) -> list[str]:
    """``paths`` (the list in ``field``) resolved against ``base``, each an existing file that opens as an image
    when ``check_media``; errors name ``field[i]``."""
    resolved = [_existing(p, f"{field}[{i}]", source, base) for i, p in enumerate(paths)]
    if check_media:
        for i, path in enumerate(resolved):
            _check_image(path, f"{field}[{i}]", source)
    return resolved


def load_records(
    path: str | Path, task: Task = "dift", *, skip_invalid: bool = False, check_media: bool = True,
    split: str = "train", config: str | None = None, prompt_suffix: str = "think",
) -> datasets.Dataset:  # noqa: F821 - imported lazily
    """Load, validate and normalise every record of ``path`` into a ``datasets.Dataset``.

    ``path`` is a JSONL file, a parquet / json / arrow file, a ``save_to_disk`` folder or a folder ``load_dataset``
    reads; ``split`` picks the split of a ``DatasetDict`` (``--dataset_train_split``) and ``config`` the configuration
    of a folder whose README defines several (``--dataset_config``). Paths inside the records resolve relative to the
    data file (to the folder itself for a folder).
    ``check_media`` opens every image and video header, so unreadable files fail here rather than mid-training. A
    bad record raises :class:`DataRecordError`; with ``skip_invalid`` it is logged and dropped, and the total is
    logged too. An empty result is always an error. ``prompt_suffix`` picks the instruction appended to every question
    by name (``think``, ``release``, ``release_rl``).
    """
    import datasets

    if prompt_suffix not in PROMPT_SUFFIXES:
        raise ValueError(f"prompt_suffix must be one of {sorted(PROMPT_SUFFIXES)}, got {prompt_suffix!r}")

    path = Path(path).resolve()
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {path}")
    base = path if path.is_dir() else path.parent
    records, errors = [], []
    for source, row in _raw_rows(path, split, config):
        try:
            records.append(normalize_record(row, source, base, task, check_media, prompt_suffix))
        except DataRecordError as error:
            if not skip_invalid:
                raise
            errors.append(error)
            logger.warning("skipping invalid sample: %s", error)
    if errors:
        logger.warning("skipped %d invalid of %d samples in %s", len(errors), len(records) + len(errors), path)
    if not records:
        raise ValueError(f"{path}: no usable samples ({len(errors)} invalid)")
    return datasets.Dataset.from_list(records)


def first_frame_rows(dataset: datasets.Dataset, share: float) -> tuple[datasets.Dataset, int]:  # noqa: F821
    """``dataset`` (records of :func:`load_records`) with about ``share`` of its rows shown only the first frame of
    their frame list, as a still image, and how many were cut.

    A row is picked by a hash of its file name and line (:func:`_picked`): the same rows on every machine, in every
    epoch and after a resume, whatever the order the sampler draws them in. Rows whose input is already one image
    stay as they are; a picked row with a video file is refused by name, since cutting it would mean decoding it here.
    """
    if not 0.0 <= share < 1.0:
        raise ValueError(f"first_frame_share must be in [0, 1), got {share}")
    missing = {"source", "frames", "image", "video"} - set(getattr(dataset, "column_names", None) or ())
    if missing:
        raise ValueError(f"first_frame_share needs the records of trl_latent.data.load_records; the training dataset "
                         f"lacks {sorted(missing)}")
    sources, videos, frames = dataset["source"], dataset["video"], dataset["frames"]
    picked = [i for i, source in enumerate(sources) if _picked(source, share)]
    for i in picked:
        if videos[i]:
            raise DataRecordError(sources[i], "video", "first_frame_share cuts frame lists (image_input) to their "
                                  "first frame; this row's input is a video file")
    cut = {i for i in picked if frames[i]}
    if not cut:
        return dataset, 0
    return dataset.map(lambda row, i: {"image": row["frames"][0], "frames": []} if i in cut else {},
                       with_indices=True, desc="first-frame rows"), len(cut)


def _picked(source: str, share: float) -> bool:
    """Whether the row from ``source`` (``path:line``) is among ``share`` of all rows, by its file name and line."""
    path, _, line = source.rpartition(":")
    digest = hashlib.sha256(f"{Path(path).name}:{line}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


# ----------------------------------------------------------------------------------------------------------------
# Visuals


@dataclass(frozen=True)
class VisualOptions:
    """How user visuals are decoded. ``frames_fps`` is the rate an ``image_input`` frame list was extracted at."""

    fps: float = 1.0
    max_frames: int = 50
    min_pixels: int = 28 * 28
    max_pixels: int = 256 * 28 * 28
    frames_fps: float = 1.0

    def __post_init__(self) -> None:
        if self.fps <= 0 or self.frames_fps <= 0:
            raise ValueError(f"fps and frames_fps must be > 0, got {self.fps}, {self.frames_fps}")
        if self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {self.max_frames}")
        if not PIXEL_UNIT**2 <= self.min_pixels <= self.max_pixels:
            raise ValueError(f"need 784 <= min_pixels <= max_pixels, got {self.min_pixels}, {self.max_pixels}")


@dataclass
class Visual:
    """A decoded user visual: ``image`` for a single image, else ``frames [T, H, W, 3]`` uint8 sampled at ``fps``."""

    image: Image.Image | None = None
    frames: np.ndarray | None = None
    fps: float | None = None

    @property
    def is_video(self) -> bool:
        return self.frames is not None

    @property
    def video_metadata(self) -> dict[str, Any]:
        """What the processor needs to space the frames by real time (it assumes 24 fps otherwise); Qwen3-VL also
        writes each frame's timestamp from its index, and these frames are all of the sampled clip."""
        return {"fps": self.fps, "total_num_frames": len(self.frames), "frames_indices": list(range(len(self.frames)))}


def budget_size(height: int, width: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """``(height, width)`` rounded to multiples of 28 and scaled into ``[min_pixels, max_pixels]`` (Qwen's rule)."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    return smart_resize(height, width, factor=PIXEL_UNIT, min_pixels=min_pixels, max_pixels=max_pixels)


def resize_to_budget(image: Image.Image, min_pixels: int, max_pixels: int) -> Image.Image:
    image = image.convert("RGB")
    height, width = budget_size(image.height, image.width, min_pixels, max_pixels)
    return image if (height, width) == (image.height, image.width) else image.resize((width, height), Image.BICUBIC)


def load_image(path: str, min_pixels: int, max_pixels: int, source: str = "", field: str = "image") -> Image.Image:
    """Open an image and fit it to the budget; an unreadable file raises :class:`DataRecordError`."""
    try:
        with Image.open(path) as image:
            image.load()
            return resize_to_budget(image, min_pixels, max_pixels)
    except Exception as error:
        raise DataRecordError(source or path, field, f"unreadable image {path}: {error}") from error


def sample_indices(total: int, native_fps: float, fps: float, max_frames: int) -> tuple[list[int], float]:
    """Frame indices at ``fps`` (never above the native rate), thinned uniformly to ``max_frames``; plus the real
    rate of the result, so the timestamps the model sees stay true after thinning."""
    if total < 1:
        raise ValueError("the video has no frames")
    step = max(native_fps / fps, 1.0)
    indices = [min(round(i * step), total - 1) for i in range(max(1, math.floor(total / step)))]
    if len(indices) > max_frames:
        picks = np.linspace(0, len(indices) - 1, max_frames).round().astype(int)
        indices = [indices[i] for i in picks]
    duration = total / native_fps
    return indices, len(indices) / duration if len(indices) > 1 else min(fps, native_fps)


def _decode_decord(path: str, fps: float, max_frames: int) -> tuple[np.ndarray, float]:
    import decord

    reader = decord.VideoReader(path, num_threads=1)
    indices, rate = sample_indices(len(reader), float(reader.get_avg_fps()), fps, max_frames)
    return reader.get_batch(indices).asnumpy(), rate


def _decode_av(path: str, fps: float, max_frames: int) -> tuple[np.ndarray, float]:
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        native = float(stream.average_rate or stream.guessed_rate or fps)
    indices, rate = sample_indices(len(frames), native, fps, max_frames)
    return np.stack([frames[i] for i in indices]), rate


def decode_video(path: str, fps: float, max_frames: int) -> tuple[np.ndarray, float]:
    """``(frames [T, H, W, 3] uint8, sampled fps)`` with decord, or PyAV when decord is not installed."""
    try:
        import decord  # noqa: F401
    except ImportError:
        return _decode_av(path, fps, max_frames)
    return _decode_decord(path, fps, max_frames)


def _fit_frames(frames: Iterable[np.ndarray], options: VisualOptions) -> np.ndarray:
    frames = list(frames)
    height, width = budget_size(frames[0].shape[0], frames[0].shape[1], options.min_pixels, options.max_pixels)
    if (height, width) != frames[0].shape[:2]:
        frames = [np.asarray(Image.fromarray(f).resize((width, height), Image.BICUBIC)) for f in frames]
    return np.stack(frames)


def load_visual(record: dict[str, Any], options: VisualOptions) -> Visual:
    """Decode a normalised record's user visual; unreadable media raise :class:`DataRecordError` naming the record."""
    source = record.get("source", "")
    if record.get("image"):
        return Visual(image=load_image(record["image"], options.min_pixels, options.max_pixels, source, "image_input"))
    if record.get("video"):
        try:
            frames, rate = decode_video(record["video"], options.fps, options.max_frames)
        except Exception as error:
            raise DataRecordError(source, "video", f"unreadable video {record['video']}: {error}") from error
        return Visual(frames=_fit_frames(frames, options), fps=rate)
    paths = record.get("frames") or []
    if not paths:
        raise DataRecordError(source, "image_input/video", "the record has no visual input")
    indices, rate = sample_indices(len(paths), options.frames_fps, options.fps, options.max_frames)
    frames = []
    for i in indices:
        try:
            with Image.open(paths[i]) as image:
                frames.append(np.asarray(image.convert("RGB")))
        except Exception as error:
            raise DataRecordError(source, f"image_input[{i}]", f"unreadable image {paths[i]}: {error}") from error
    if len({f.shape for f in frames}) != 1:
        raise DataRecordError(source, "image_input", "frames of one video must share one size")
    return Visual(frames=_fit_frames(frames, options), fps=rate)
