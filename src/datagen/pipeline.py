"""Stage drivers over a whole dataset, and :func:`run_pipeline`, the one-call entry point.

Each ``run_<stage>(config)`` walks the clips (or questions), skips what its manifest lists as done, and writes
per-item outputs atomically; see :mod:`datagen.manifest`. The output tree under ``config.output_dir``::

    frames/<clip>/{NNNNNN.jpg, clip.json}   masks/<clip>.npz   qa/{camera,object}/<clip>.json
    imagery/<clip>/<qa_id>_<k>.jpg + imagery/<clip>.json      cot/<qa_id>.json   cot_cache/   cot_usage.jsonl
    export/{dift,dift_text_only,rl}.jsonl  export/hf_dataset/  export/benchmark/  export/validation.json
    manifests/<stage>.jsonl
"""

from __future__ import annotations

import logging
from pathlib import Path

from .annotate import annotate_dataset
from .camera_qa import camera_questions
from .config import STAGES, DatagenConfig
from .cot.api import ChatCoT
from .cot.template import template_cot
from .export import export
from .frames import extract_clip, load_clip_record
from .imagery import render_question
from .io import read_json, write_json
from .layout import read_metadata
from .manifest import Manifest, StageResult, run_items
from .object_qa import object_questions
from .segment import get_segmenter, segment_clip
from .segment.base import load_masks, object_prompts
from .validate import format_report, validate_jsonl


logger = logging.getLogger(__name__)


def _manifest(config: DatagenConfig, stage: str) -> Manifest:
    return Manifest(config.out / "manifests" / f"{stage}.jsonl")


def clip_ids(config: DatagenConfig) -> list[str]:
    """Clips of this run: metadata order, filtered by ``clips`` and ``limit``."""
    metas = read_metadata(config.input_root)
    ids = [m.id for m in metas]
    if config.clips is not None:
        missing = sorted(set(config.clips) - set(ids))
        if missing:
            raise ValueError(f"clips {missing} are not in {Path(config.input_root) / 'metadata.csv'}")
        ids = [i for i in ids if i in set(config.clips)]
    return ids[: config.limit] if config.limit is not None else ids


def _extracted(config: DatagenConfig) -> list[str]:
    return [c for c in clip_ids(config) if (config.out / "frames" / c / "clip.json").exists()]


def run_annotate(config: DatagenConfig) -> StageResult:
    return annotate_dataset(config, clip_ids(config))


def run_frames(config: DatagenConfig) -> StageResult:
    metas = {m.id: m for m in read_metadata(config.input_root)}
    frames_dir = config.out / "frames"
    return run_items(
        "frames", clip_ids(config), lambda c: {"frames": len(extract_clip(metas[c], frames_dir, config.frames)["files"])},
        _manifest(config, "frames"), lambda c: (frames_dir / c / "clip.json").exists(), config.progress,
    )


def run_segment(config: DatagenConfig) -> StageResult:
    frames_dir, masks_dir = config.out / "frames", config.out / "masks"
    state: dict = {}

    def process(clip_id: str):
        if "segmenter" not in state:  # built lazily: a rerun with nothing to do loads no model
            state["segmenter"] = get_segmenter(config.segment)
        clip = load_clip_record(frames_dir, clip_id)
        ask = _llm_object_names(config) if config.segment.prompts_from == "api" else None
        prompts = object_prompts(clip, config.segment, ask)
        return segment_clip(clip, frames_dir, masks_dir / f"{clip_id}.npz", state["segmenter"], prompts)

    return run_items("segment", _extracted(config), process, _manifest(config, "segment"),
                     lambda c: (masks_dir / f"{c}.npz").exists(), config.progress)


def _llm_object_names(config: DatagenConfig):
    chat = ChatCoT(config.cot, config.out / "cot_cache", config.out / "cot_usage.jsonl")

    def ask(clip: dict) -> list[str]:
        prompt = (f"Video caption: {clip.get('caption', '')}\nName up to {config.segment.max_objects} distinct, "
                  "concrete, visible objects (short noun phrases, one per line, no numbering), moving ones first.")
        text = chat.complete([{"role": "user", "content": prompt}], f"{clip['clip_id']}#objects")
        return [line.strip(" -*\t") for line in text.splitlines() if line.strip(" -*\t")]

    return ask


def run_camera_qa(config: DatagenConfig) -> StageResult:
    frames_dir, qa_dir = config.out / "frames", config.out / "qa" / "camera"

    def process(clip_id: str):
        records = camera_questions(load_clip_record(frames_dir, clip_id), config.camera_qa)
        write_json(qa_dir / f"{clip_id}.json", records)
        return {"questions": len(records)}

    return run_items("camera-qa", _extracted(config), process, _manifest(config, "camera-qa"),
                     lambda c: (qa_dir / f"{c}.json").exists(), config.progress)


def run_object_qa(config: DatagenConfig) -> StageResult:
    frames_dir, qa_dir = config.out / "frames", config.out / "qa" / "object"

    def process(clip_id: str):
        masks, objects = load_masks(config.out / "masks" / f"{clip_id}.npz")
        records = object_questions(load_clip_record(frames_dir, clip_id), masks, objects, config.object_qa)
        write_json(qa_dir / f"{clip_id}.json", records)
        return {"questions": len(records)}

    return run_items("object-qa", _extracted(config), process, _manifest(config, "object-qa"),
                     lambda c: (qa_dir / f"{c}.json").exists(), config.progress)


def _questions(config: DatagenConfig, clip_id: str) -> list[dict]:
    out = []
    for kind in ("camera", "object"):
        path = config.out / "qa" / kind / f"{clip_id}.json"
        if path.exists():
            out.extend(read_json(path))
    return out


def run_imagery(config: DatagenConfig) -> StageResult:
    frames_dir, imagery_dir = config.out / "frames", config.out / "imagery"

    def process(clip_id: str):
        clip = load_clip_record(frames_dir, clip_id)
        masks, objects = load_masks(config.out / "masks" / f"{clip_id}.npz")
        index = {}
        for qa in _questions(config, clip_id):
            entry = render_question(qa, frames_dir, clip, masks, objects, imagery_dir / clip_id, config.imagery)
            if entry is not None:
                index[qa["qa_id"]] = entry
        write_json(imagery_dir / f"{clip_id}.json", index)  # last: lists only images already on disk
        return {"questions": len(index)}

    return run_items("imagery", _extracted(config), process, _manifest(config, "imagery"),
                     lambda c: (imagery_dir / f"{c}.json").exists(), config.progress)


def run_cot(config: DatagenConfig) -> StageResult:
    """One CoT per question that has imagery; API requests run ``cot.concurrency`` at a time."""
    out, cot_dir = config.out, config.out / "cot"
    jobs = {}
    for clip_id in _extracted(config):
        index_path = out / "imagery" / f"{clip_id}.json"
        index = read_json(index_path) if index_path.exists() else {}
        for qa in _questions(config, clip_id):
            if qa["qa_id"] in index:
                jobs[qa["qa_id"]] = (clip_id, qa, index[qa["qa_id"]])
    if config.cot.backend == "template":
        generate = None
    elif config.cot.backend == "api":
        generate = ChatCoT(config.cot, out / "cot_cache", out / "cot_usage.jsonl")
    else:
        raise ValueError(f"cot.backend={config.cot.backend!r}; choose 'template' or 'api'")

    def process(qa_id: str):
        clip_id, qa, imagery = jobs[qa_id]
        if generate is None:
            text, attempts = template_cot(qa, imagery, config.cot.template_style), 1
        else:
            clip = load_clip_record(out / "frames", clip_id)
            text, attempts = generate.generate(
                qa, [out / "imagery" / clip_id / n for n in imagery["images"]],
                [out / "frames" / clip_id / f for f in clip["files"]],
            )
        write_json(cot_dir / f"{qa_id}.json", {"qa_id": qa_id, "text_output": text, "backend": config.cot.backend,
                                               "attempts": attempts})
        return {"attempts": attempts}

    workers = config.cot.concurrency if generate is not None else 1
    return run_items("cot", list(jobs), process, _manifest(config, "cot"),
                     lambda q: (cot_dir / f"{q}.json").exists(), config.progress, workers=workers)


def run_export(config: DatagenConfig) -> dict[str, Path]:
    return export(config.out, _extracted(config), config.export)


def run_validate(config: DatagenConfig) -> dict[str, dict]:
    """Validate the exported JSONL files; writes ``export/validation.json`` and logs the per-check counts."""
    export_dir = config.out / "export"
    reports = {p.stem: validate_jsonl(p) for p in sorted(export_dir.glob("*.jsonl"))}
    if not reports:
        raise FileNotFoundError(f"{export_dir}: no exported JSONL; run the 'export' stage first")
    write_json(export_dir / "validation.json", reports)
    logger.info("validation\n%s", format_report(reports))
    return reports


STAGE_FUNCTIONS = {
    "annotate": run_annotate,
    "frames": run_frames, "segment": run_segment, "camera-qa": run_camera_qa, "object-qa": run_object_qa,
    "imagery": run_imagery, "cot": run_cot, "export": run_export, "validate": run_validate,
}


def run_pipeline(config: DatagenConfig) -> dict[str, Path]:
    """Run ``config.stages`` in order; returns the output paths (stage folders and exported files).

    Safe to call again after an interruption or a partial failure: finished items are skipped, failed ones retried.
    """
    paths: dict[str, Path] = {}
    for stage in STAGES:
        if stage not in config.stages:
            continue
        result = STAGE_FUNCTIONS[stage](config)
        if isinstance(result, StageResult):
            logger.info(result.summary())
        elif stage == "export":
            paths.update(result)
        elif stage == "validate":
            paths["validation"] = config.out / "export" / "validation.json"
    out = config.out
    folders = {"frames": out / "frames", "masks": out / "masks", "qa": out / "qa", "imagery": out / "imagery",
               "cot": out / "cot", "manifests": out / "manifests"}
    return {**{k: v for k, v in folders.items() if v.exists()}, **paths}
