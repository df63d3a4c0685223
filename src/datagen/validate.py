"""``validate``: check every exported record and count passes and failures per check.

Checks: ``files_exist`` (every image path, relative to the JSONL file), ``placeholder_count`` (``<output_image>`` tags
== ``image_output`` length; none in text-only records), ``answer_in_options`` (the answer letter is one of the
question's ``X. …`` option lines), ``think_answer_tags`` (``<think>…</think><answer>…</answer>``, nothing given away
inside the thinking), and with ``decode`` also ``decodes`` (every frame of every referenced image or video file
decodes: a file with a valid header and a corrupt middle passes ``files_exist`` and loading, then crashes training).
A failure names the file, the line and the check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .cot.checks import OUTPUT_IMAGE, answer_letter, check_cot
from .io import read_jsonl


CHECKS = ("files_exist", "placeholder_count", "answer_in_options", "think_answer_tags", "decodes")
OPTION_RE = re.compile(r"^([A-Z])\.\s", re.M)
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")


@dataclass
class ValidateConfig:
    decode: bool = False
    """Also decode every frame of every image and video the records reference (slow: reads all media)."""


def decode_error(path: Path) -> str | None:
    """Why ``path`` does not decode completely (``None`` when every frame does): videos frame by frame with PyAV
    (fewer frames than the container declares counts as a failure), images fully with PIL."""
    try:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            import av

            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                declared = stream.frames
                decoded = sum(1 for _ in container.decode(stream))
            if declared and decoded < declared:
                return f"{decoded} of {declared} frames decoded"
            if not decoded:
                return "no frame decoded"
        else:
            from PIL import Image, ImageFile

            # lmms-eval turns PIL's leniency for truncated images on at import; a check must not inherit it
            lenient, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
            try:
                with Image.open(path) as image:
                    image.load()
            finally:
                ImageFile.LOAD_TRUNCATED_IMAGES = lenient
    except Exception as e:  # noqa: BLE001 - any decoder error means the file is unusable
        return f"{type(e).__name__}: {e}"
    return None


def _paths(value) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _media(files: list[str], base: Path, decoded: dict[Path, str | None] | None) -> tuple[dict[str, bool], str]:
    """``files_exist`` (and with a ``decoded`` cache, ``decodes``) for media paths relative to ``base``, plus the
    broken files with their decoder errors, to append to a failure line."""
    results = {"files_exist": bool(files) and all((base / f).is_file() for f in files)}
    if decoded is None:
        return results, ""
    for path in {base / f for f in files if (base / f).is_file()} - set(decoded):
        decoded[path] = decode_error(path)
    errors = [f"{f} ({decoded[base / f]})" for f in files if decoded.get(base / f)]
    results["decodes"] = results["files_exist"] and not errors
    return results, f" ({'; '.join(errors)})" if errors else ""


def check_record(record: dict, base: Path, decoded: dict[Path, str | None] | None = None) -> tuple[dict[str, bool], str]:
    """Outcome of each applicable check for one DIFT or 4DRL record (``base``: the JSONL's folder), and the details
    of a ``decodes`` failure. With ``decoded`` (a cache shared by the records of a run, path → :func:`decode_error`),
    media are decoded too."""
    files = _paths(record.get("image_input")) + _paths(record.get("video")) + _paths(record.get("image_output"))
    results, detail = _media(files, base, decoded)
    options = OPTION_RE.findall(record.get("text_input", ""))
    if "text_output" in record:  # DIFT
        text = record["text_output"]
        num_images = len(_paths(record.get("image_output")))
        problems = check_cot(text, num_images, min_think_chars=0)
        results["placeholder_count"] = "placeholder_count" not in problems and "format" not in problems \
            and text.count(OUTPUT_IMAGE) == num_images
        results["think_answer_tags"] = not ({"format", "answer_in_think"} & set(problems))
        match = re.search(r"<answer>(.*?)</answer>", text, re.S)
        letter = answer_letter(match.group(1)) if match else None
    else:  # 4DRL
        letter = str(record.get("answer", ""))
    results["answer_in_options"] = bool(options) and letter in options
    return results, detail


def _report(checked) -> dict:
    """``{"records": n, "checks": {check: {"passed": p, "failed": f}}, "failures": ["file:line: check", …]}`` from
    ``(where, results, decode detail)`` per record."""
    report = {"records": 0, "checks": {c: {"passed": 0, "failed": 0} for c in CHECKS}, "failures": []}
    for where, results, detail in checked:
        report["records"] += 1
        for check, ok in results.items():
            report["checks"][check]["passed" if ok else "failed"] += 1
            if not ok:
                report["failures"].append(f"{where}: {check}" + (detail if check == "decodes" else ""))
    return report


def validate_jsonl(path: str | Path, decode: bool = False) -> dict:
    """The per-check report of one DIFT / 4DRL JSONL file (a ``decodes`` failure names the files and the error)."""
    path, decoded = Path(path), {} if decode else None
    return _report((f"{path}:{lineno}", *check_record(record, path.parent, decoded))
                   for lineno, record in enumerate(read_jsonl(path), 1))


def validate_benchmark(path: str | Path, decode: bool = False) -> dict:
    """The same report for the held-out ``benchmark.parquet``: each question's ``{videoID}.mp4`` exists (and decodes),
    its answer letter is one of its options."""
    import pandas as pd

    path, decoded = Path(path), {} if decode else None

    def check(row: dict) -> tuple[dict[str, bool], str]:
        results, detail = _media([f"{row['videoID']}.mp4"], path.parent, decoded)
        results["answer_in_options"] = row["answer"] in OPTION_RE.findall("\n".join(row["options"]))
        return results, detail

    rows = pd.read_parquet(path).to_dict("records")
    return _report((f"{path}:{number}", *check(row)) for number, row in enumerate(rows, 1))


def format_report(reports: dict[str, dict]) -> str:
    lines = []
    for name, report in reports.items():
        lines.append(f"{name}: {report['records']} records")
        for check, counts in report["checks"].items():
            if counts["passed"] or counts["failed"]:
                lines.append(f"  {check:<18} passed {counts['passed']:>6}  failed {counts['failed']:>6}")
        lines.extend(f"  {f}" for f in report["failures"][:20])
    return "\n".join(lines)
