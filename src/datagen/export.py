"""Stage 7 (``export``): DIFT / 4DRL JSONL, Hugging Face datasets and a DSR-Bench style held-out benchmark.

Paths inside the JSONL files are relative to the JSONL file (docs/architecture.md section 4). Clips are split
deterministically by a hash of their id: ``benchmark_fraction`` of them form the held-out benchmark
(``benchmark/benchmark.parquet`` + ``benchmark/{videoID}.mp4``) and never appear in the training files.

Both dataset forms load straight into the trainers: ``export/README.md`` names each file as a ``load_dataset``
configuration with a ``train`` split (``trl-latent grpo --dataset_name export --dataset_config rl``; other files in the
folder, such as ``validation.json``, are never read as splits), and ``hf_dataset/{dift,dift_text_only,rl}`` are
``save_to_disk`` folders with a ``train`` split whose media paths are relative to that folder
(``--dataset_name export/hf_dataset/rl``).

``visible_fraction`` below 1 gives the model only the start of each clip (its ``image_input`` frames and the
benchmark's videos) while questions and imagery keep covering the whole clip: an answer about the clip's later part
then needs the imagery of moments the input does not show (the future), which the text path cannot read off the video.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .camera_qa import CAMERA_TYPES
from .cot.checks import OUTPUT_IMAGE
from .io import atomic_write, read_json, write_jsonl, write_text
from .mcq import question_with_options, stable_hash


DSR_TYPES = ("abs_dis", "abs_dir", "abs_ori", "abs_spd", "abs_spd_comp", "abs_dir_pred", "rel_dis", "rel_dir",
             "rel_ori", "rel_spd", "rel_spd_comp", "rel_dir_pred", "non_temp")
QUESTION_TYPES = CAMERA_TYPES + DSR_TYPES


@dataclass
class ExportConfig:
    benchmark_fraction: float = 0.0
    """Fraction of clips held out as the benchmark (0 = none)."""
    text_only: bool = True
    """Also write ``dift_text_only.jsonl``: the same questions and answers without imagery (ablation)."""
    hf_dataset: bool = True
    """Also save ``hf_dataset/{dift,dift_text_only,rl}``: ``save_to_disk`` folders with a ``train`` split each."""
    types: list[str] | None = None
    """Only questions of these types are exported, to the training files and the benchmark alike (default: all)."""
    benchmark_types: list[str] | None = None
    """Types the held-out benchmark keeps (default: DSR-Bench's 13 object-motion types). Camera types such as
    ``cam_dir`` are asked by this pipeline but not by DSR-Bench; name them here to evaluate what is trained on."""
    visible_fraction: float = 1.0
    """Share of each clip, from its start, given to the model (training ``image_input`` and benchmark videos alike),
    rounded up to an even number of frames (Qwen's temporal patch is 2); questions and imagery still cover the whole
    clip (module docstring)."""


def visible_count(num_frames: int, fraction: float) -> int:
    """Frames of a ``num_frames`` clip the model sees under ``visible_fraction`` (at least 2, even where it can be)."""
    return min(num_frames, max(2, 2 * math.ceil(fraction * num_frames / 2)))


def is_held_out(clip_id: str, fraction: float) -> bool:
    return stable_hash(f"benchmark/{clip_id}") % 10_000 < fraction * 10_000


def strip_imagery(text_output: str) -> str:
    """The CoT without its ``<output_image>`` tags (and the spaces they leave)."""
    text = re.sub(rf"\s*{re.escape(OUTPUT_IMAGE)}", "", text_output)
    return re.sub(r"[ \t]{2,}", " ", text)


def _rel(path: Path, start: Path) -> str:
    return os.path.relpath(path, start)


def collect_records(out: Path, clip_ids: list[str], config: ExportConfig) -> dict[str, list[dict]]:
    """Build the DIFT, text-only, RL and benchmark rows from the stage outputs under ``out``."""
    export_dir = out / "export"
    kept = set(config.types or QUESTION_TYPES)
    benchmark_types = kept & set(config.benchmark_types or DSR_TYPES)
    rows = {"dift": [], "dift_text_only": [], "rl": [], "benchmark": []}
    for clip_id in clip_ids:
        clip_path = out / "frames" / clip_id / "clip.json"
        if not clip_path.exists():
            continue
        clip = read_json(clip_path)
        visible = visible_count(len(clip["files"]), config.visible_fraction)
        frames = [_rel(out / "frames" / clip_id / f, export_dir) for f in clip["files"][:visible]]
        imagery_path = out / "imagery" / f"{clip_id}.json"
        imagery = read_json(imagery_path) if imagery_path.exists() else {}
        held_out = is_held_out(clip_id, config.benchmark_fraction)
        for kind in ("camera", "object"):
            qa_path = out / "qa" / kind / f"{clip_id}.json"
            for qa in read_json(qa_path) if qa_path.exists() else []:
                if qa["type"] not in kept:
                    continue
                text_input = question_with_options(qa)
                if held_out:
                    if qa["type"] in benchmark_types:
                        rows["benchmark"].append({"videoID": clip_id, "question": qa["question"],
                                                  "options": qa["options"], "answer": qa["answer"], "type": qa["type"],
                                                  "clip": clip, "visible": visible})
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


def _relative_to(rows: list[dict], export_dir: Path, folder: Path) -> list[dict]:
    """``rows`` with their media paths (relative to ``export_dir``) made relative to ``folder`` instead."""
    def move(path: str) -> str:
        return _rel(Path(os.path.normpath(export_dir / path)), folder)

    return [{**row, "image_input": [move(p) for p in row["image_input"]],
             **({"image_output": [move(p) for p in row["image_output"]]} if "image_output" in row else {})}
            for row in rows]


def _save_hf(rows: dict[str, list[dict]], export_dir: Path, path: Path) -> None:
    """One ``save_to_disk`` folder per training file under ``path``, each a ``DatasetDict`` with a ``train`` split,
    written next to ``path`` and swapped in whole."""
    from datasets import Dataset, DatasetDict

    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for name in ("dift", "dift_text_only", "rl"):
        if rows[name]:
            split = Dataset.from_list(_relative_to(rows[name], export_dir, path / name))
            DatasetDict({"train": split}).save_to_disk(str(tmp / name))
    old = path.with_name(f".{path.name}.old")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def dataset_card(configs: dict[str, str]) -> str:
    """``README.md`` of the export folder, a Hub dataset card (``huggingface_hub.DatasetCard``): one ``load_dataset``
    configuration per JSONL file (``{name: path}``), the first the default, each with one ``train`` split, plus the
    task, tags and the 4DThinker citation. (The benchmark is not a configuration: ``load_dataset`` reads a folder with
    one builder, and the benchmark is parquet read by the lmms-eval task.) No license is set: it is that of the source
    videos, which the pipeline does not know."""
    from huggingface_hub import DatasetCard, DatasetCardData

    from trl_latent.citations import CITATION_4DTHINKER

    data = DatasetCardData(
        configs=[{"config_name": name, "data_files": [{"split": "train", "path": path}], **({"default": True} if i == 0 else {})}
                 for i, (name, path) in enumerate(configs.items())],
        language=["en"], task_categories=["video-text-to-text"], pretty_name="trl-latent datagen export",
        tags=["trl-latent", "4dthinker", "latent-reasoning", "video-question-answering", "spatial-reasoning"],
    )
    text = "\n".join([
        "# trl-latent datagen export", "",
        "DIFT (`dift`, `dift_text_only`) and 4DRL (`rl`) records written by the 4DThinker data pipeline as",
        "re-implemented in trl-latent; media paths are relative to this folder. Train on one with",
        "`trl-latent dift|grpo --dataset_name <this folder> --dataset_config <name>`, or load its file with",
        "`datasets.load_dataset(\"json\", data_files=\"<this folder>/<name>.jsonl\")`: `load_dataset(<this folder>, <name>)`",
        "keys the `datasets` cache by the folder's name, so another export of the same name, or this one edited, would",
        "be served from the cache. The license is that of the source videos.", "",
        "## Citation", "", f"```bibtex\n{CITATION_4DTHINKER}\n```", "",
    ])
    return str(DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{text}"))


def _write_prefix(clip: dict, frames_dir: Path, visible: int, target: Path) -> None:
    """The clip's first ``visible`` extracted frames (the JPEGs its training rows show) as an H.264 video at their
    sampling rate, so the evaluation's sampling at that rate reads exactly these frames back."""
    import numpy as np
    from PIL import Image

    from .synthetic.video import encode_mp4

    times = clip["timestamps"][:visible]
    rate = (visible - 1) / (times[-1] - times[0])
    frames = np.stack([np.asarray(Image.open(frames_dir / name).convert("RGB")) for name in clip["files"][:visible]])
    encode_mp4(frames, target, fps=rate)


def _save_benchmark(rows: list[dict], out: Path, folder: Path) -> None:
    """The parquet plus one video per held-out clip: a copy of the source, or its visible start re-encoded (always
    rewritten, so a changed ``visible_fraction`` never leaves a stale video behind)."""
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    for row in {r["videoID"]: r for r in rows}.values():
        clip, target = row["clip"], folder / f"{row['videoID']}.mp4"
        if row["visible"] < len(clip["files"]):
            _write_prefix(clip, out / "frames" / clip["clip_id"], row["visible"], target)
        elif not target.exists() or target.stat().st_size != Path(clip["video"]).stat().st_size:
            atomic_write(target, lambda tmp, src=clip["video"]: shutil.copyfile(src, tmp), suffix=".mp4")
    frame = pd.DataFrame([{k: v for k, v in r.items() if k not in ("clip", "visible")} for r in rows],
                         columns=["videoID", "question", "options", "answer", "type"])
    atomic_write(folder / "benchmark.parquet", lambda tmp: frame.to_parquet(tmp, index=False), suffix=".parquet")


def export(out: Path, clip_ids: list[str], config: ExportConfig) -> dict[str, Path]:
    """Write every export under ``out/export``; returns ``{name: path}``."""
    export_dir = out / "export"
    rows = collect_records(out, clip_ids, config)
    paths = {"dift": write_jsonl(export_dir / "dift.jsonl", rows["dift"]),
             "rl": write_jsonl(export_dir / "rl.jsonl", rows["rl"])}
    if config.text_only:
        paths["dift_text_only"] = write_jsonl(export_dir / "dift_text_only.jsonl", rows["dift_text_only"])
    if config.hf_dataset and (rows["dift"] or rows["rl"]):
        _save_hf(rows, export_dir, export_dir / "hf_dataset")
        paths["hf_dataset"] = export_dir / "hf_dataset"
    if rows["benchmark"]:
        _save_benchmark(rows["benchmark"], out, export_dir / "benchmark")
        paths["benchmark"] = export_dir / "benchmark" / "benchmark.parquet"
    configs = {name: paths[name].relative_to(export_dir).as_posix()
               for name in ("dift", "dift_text_only", "rl") if name in paths}
    paths["card"] = write_text(export_dir / "README.md", dataset_card(configs))
    return paths
