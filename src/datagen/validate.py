"""``validate``: check every exported record and count passes and failures per check.

Checks: ``files_exist`` (every image path, relative to the JSONL file), ``placeholder_count`` (``<output_image>`` tags
== ``image_output`` length; none in text-only records), ``answer_in_options`` (the answer letter is one of the
question's ``X. …`` option lines), ``think_answer_tags`` (``<think>…</think><answer>…</answer>``, nothing given away
inside the thinking). A failure names the file, the line and the check.
"""

from __future__ import annotations

import re
from pathlib import Path

from .cot.checks import OUTPUT_IMAGE, answer_letter, check_cot
from .io import read_jsonl


CHECKS = ("files_exist", "placeholder_count", "answer_in_options", "think_answer_tags")
OPTION_RE = re.compile(r"^([A-Z])\.\s", re.M)


def _paths(value) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def check_record(record: dict, base: Path) -> dict[str, bool]:
    """Outcome of each applicable check for one DIFT or 4DRL record (``base``: the JSONL's folder)."""
    results = {}
    files = _paths(record.get("image_input")) + _paths(record.get("video")) + _paths(record.get("image_output"))
    results["files_exist"] = bool(files) and all((base / f).is_file() for f in files)
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
    return results


def validate_jsonl(path: str | Path) -> dict:
    """``{"records": n, "checks": {check: {"passed": p, "failed": f}}, "failures": ["file:line: check", …]}``."""
    path = Path(path)
    report = {"records": 0, "checks": {c: {"passed": 0, "failed": 0} for c in CHECKS}, "failures": []}
    for lineno, record in enumerate(read_jsonl(path), 1):
        report["records"] += 1
        for check, ok in check_record(record, path.parent).items():
            report["checks"][check]["passed" if ok else "failed"] += 1
            if not ok:
                report["failures"].append(f"{path}:{lineno}: {check}")
    return report


def format_report(reports: dict[str, dict]) -> str:
    lines = []
    for name, report in reports.items():
        lines.append(f"{name}: {report['records']} records")
        for check, counts in report["checks"].items():
            if counts["passed"] or counts["failed"]:
                lines.append(f"  {check:<18} passed {counts['passed']:>6}  failed {counts['failed']:>6}")
        lines.extend(f"  {f}" for f in report["failures"][:20])
    return "\n".join(lines)
