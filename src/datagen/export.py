"""Stage 7 (``export``): DIFT / 4DRL JSONL, a Hugging Face dataset and a DSR-Bench style held-out benchmark.

Paths inside the JSONL files are relative to the JSONL file (docs/architecture.md section 4). Clips are split
deterministically by a hash of their id: ``benchmark_fraction`` of them form the held-out benchmark
(``benchmark/benchmark.parquet`` + ``benchmark/{videoID}.mp4``) and never appear in the training files.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .cot.checks import OUTPUT_IMAGE
from .io import atomic_write, read_json, write_jsonl
from .mcq import question_with_options, stable_hash


DSR_TYPES = ("abs_dis", "abs_dir", "abs_ori", "abs_spd", "abs_spd_comp", "abs_dir_pred", "rel_dis", "rel_dir",
             "rel_ori", "rel_spd", "rel_spd_comp", "rel_dir_pred", "non_temp")


@dataclass
class ExportConfig:
    benchmark_fraction: float = 0.0
    """Fraction of clips held out as the benchmark (0 = none)."""
    text_only: bool = True
    """Also write ``dift_text_only.jsonl``: the same questions and answers without imagery (ablation)."""
    hf_dataset: bool = True
    """Also save a ``datasets.DatasetDict`` (``dift``, ``rl``) with ``save_to_disk``."""


def is_held_out(clip_id: str, fraction: float) -> bool:
    return stable_hash(f"benchmark/{clip_id}") % 10_000 < fraction * 10_000


def strip_imagery(text_output: str) -> str:
    """The CoT without its ``<output_image>`` tags (and the spaces they leave)."""
    text = re.sub(rf"\s*{re.escape(OUTPUT_IMAGE)}", "", text_output)
    return re.sub(r"[ \t]{2,}", " ", text)


def _rel(path: Path, start: Path) -> str:
    return os.path.relpath(path, start)


def collect_records(out: Path, clip_ids: list[str], fraction: float) -> dict[str, list[dict]]:
    """Build the DIFT, text-only, RL and benchmark rows from the stage outputs under ``out``."""
    export_dir = out / "export"
    rows = {"dift": [], "dift_text_only": [], "rl": [], "benchmark": []}
    for clip_id in clip_ids:
        clip_path = out / "frames" / clip_id / "clip.json"
        if not clip_path.exists():
            continue
        clip = read_json(clip_path)
        frames = [_rel(out / "frames" / clip_id / f, export_dir) for f in clip["files"]]
        imagery_path = out / "imagery" / f"{clip_id}.json"
        imagery = read_json(imagery_path) if imagery_path.exists() else {}
        held_out = is_held_out(clip_id, fraction)
        for kind in ("camera", "object"):
            qa_path = out / "qa" / kind / f"{clip_id}.json"
            for qa in read_json(qa_path) if qa_path.exists() else []:
                text_input = question_with_options(qa)
                if held_out:
                    if qa["type"] in DSR_TYPES:
                        rows["benchmark"].append({"videoID": clip_id, "question": qa["question"],
                                                  "options": qa["options"], "answer": qa["answer"], "type": qa["type"],
                                                  "video": clip["video"]})
                    continue
                rows["rl"].append({"id": qa["qa_id"], "image_input": frames, "text_input": text_input,
                                   "answer": qa["answer"], "type": qa["type"]})
                cot_path = out / "cot" / f"{qa['qa_id']}.json"
                entry = imagery.get(qa["qa_id"])
                if entry is None or not cot_path.exists():
                    continue
                text_output = read_json(cot_path)["text_output"]
                images = [_rel(out / "imagery" / clip_id / name, export_dir) for name in entry["images"]]
                common = {"id": qa["qa_id"], "type": qa["type"], "image_input": frames, "text_input": text_input}
                rows["dift"].append({**common, "image_output": images, "text_output": text_output})
                rows["dift_text_only"].append({**common, "image_output": [], "text_output": strip_imagery(text_output)})
    return rows


def _save_hf(rows: dict[str, list[dict]], path: Path) -> None:
    from datasets import Dataset, DatasetDict

    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    DatasetDict({k: Dataset.from_list(rows[k]) for k in ("dift", "rl") if rows[k]}).save_to_disk(str(tmp))
    old = path.with_name(f".{path.name}.old")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def _save_benchmark(rows: list[dict], folder: Path) -> None:
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    for video_id, source in dict.fromkeys((r["videoID"], r["video"]) for r in rows):
        target = folder / f"{video_id}.mp4"
        if not target.exists():
            atomic_write(target, lambda tmp, src=source: shutil.copyfile(src, tmp), suffix=".mp4")
    frame = pd.DataFrame([{k: v for k, v in r.items() if k != "video"} for r in rows],
                         columns=["videoID", "question", "options", "answer", "type"])
    atomic_write(folder / "benchmark.parquet", lambda tmp: frame.to_parquet(tmp, index=False), suffix=".parquet")


def export(out: Path, clip_ids: list[str], config: ExportConfig) -> dict[str, Path]:
    """Write every export under ``out/export``; returns ``{name: path}``."""
    export_dir = out / "export"
    rows = collect_records(out, clip_ids, config.benchmark_fraction)
    paths = {"dift": write_jsonl(export_dir / "dift.jsonl", rows["dift"]),
             "rl": write_jsonl(export_dir / "rl.jsonl", rows["rl"])}
    if config.text_only:
        paths["dift_text_only"] = write_jsonl(export_dir / "dift_text_only.jsonl", rows["dift_text_only"])
    if config.hf_dataset and (rows["dift"] or rows["rl"]):
        _save_hf(rows, export_dir / "hf_dataset")
        paths["hf_dataset"] = export_dir / "hf_dataset"
    if rows["benchmark"]:
        _save_benchmark(rows["benchmark"], export_dir / "benchmark")
        paths["benchmark"] = export_dir / "benchmark" / "benchmark.parquet"
    return paths
