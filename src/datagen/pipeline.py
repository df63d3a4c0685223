"""Stage drivers over a whole dataset, and :func:`run_pipeline`, the one-call entry point.

Each ``run_<stage>(config)`` walks the clips (or questions), reuses what its manifest lists as done with today's
fingerprint, and writes per-item outputs atomically; see :mod:`datagen.manifest` and :mod:`datagen.fingerprint`.
The output tree under ``config.output_dir``::

    frames/<clip>/{NNNNNN.jpg, clip.json}   masks/<clip>.npz   qa/{camera,object}/<clip>.json
    imagery/<clip>/<qa_id>_<k>.jpg + imagery/<clip>.json      cot/<qa_id>.json   cot_cache/   cot_usage.jsonl
    export/{dift,dift_text_only,rl}.jsonl  export/hf_dataset/  export/benchmark/  export/validation.json
    manifests/<stage>.jsonl   datagen_config.yaml
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .annotate import annotate_clip, annotate_items, get_reconstructor, owned_outputs
from .camera_qa import camera_questions, pose_question_gap
from .config import STAGES, DatagenConfig
from .cot.api import ChatCoT, require_api_key
from .cot.template import template_cot
from .distributed import Actors, ray_executor, require_ray
from .export import export, is_held_out
from .fingerprint import UPSTREAM, clip_input_identity, file_identity, fingerprint, stage_settings
from .frames import extract_clip, load_clip_record
from .imagery import render_question
from .io import read_json, write_json, write_text
from .layout import read_metadata
from .manifest import Manifest, StageResult, run_items
from .object_qa import object_questions
from .segment import get_segmenter, segment_clip
from .segment.base import load_masks, object_prompts
from .validate import format_report, validate_benchmark, validate_jsonl


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


@dataclass
class StagePlan:
    """What one item stage would do: its items, how each is made and where it goes, and each item's fingerprint."""

    stage: str
    items: list[str]
    process: Callable[[str], object]
    outputs: Callable[[str], list[Path]]
    """The item's outputs, the file written last first (its presence marks the item complete)."""
    fingerprint: Callable[[str], str]
    setup: Callable[[], None] | None = None
    """Loads what every item needs (a model, a client), where the items run: once locally, once per Ray actor."""
    workers: int = 1
    teardown: Callable[[], None] | None = None
    """Releases what ``setup`` holds, once the stage is done, where it ran."""

    def run(self, config: DatagenConfig) -> StageResult:
        execute = (ray_executor(config.ray, self.stage, _actor_layout(config, self), self.teardown)
                   if config.ray.enabled else None)
        try:
            return run_items(self.stage, self.items, self.process, _manifest(config, self.stage), self.outputs,
                             self.fingerprint, config.progress, self.workers, self.setup, execute)
        finally:
            if self.teardown is not None and execute is None:
                self.teardown()


def _actor_layout(config: DatagenConfig, plan: StagePlan) -> Actors:
    """How many Ray actors serve a stage that loads something first, and the Ray options of each."""
    settings = config.ray
    key = os.environ.get(config.cot.api_key_env)  # actors that call the chat API get its key from the driver
    api_key = {"runtime_env": {"env_vars": {config.cot.api_key_env: key}}} if key else {}
    if plan.stage == "segment":
        return Actors(settings.segment_actors, {"num_cpus": settings.task_cpus, "num_gpus": settings.segment_gpus,
                                                **(api_key if config.segment.prompts_from == "api" else {})})
    if plan.stage == "annotate":
        return Actors(settings.annotate_actors, {"num_cpus": settings.task_cpus})
    # the API CoT stage: one I/O-bound actor (no CPU reserved) serving plan.workers (= cot.concurrency) requests at
    # a time, the global limit; it writes the response cache and the usage log alone
    return Actors(1, {"num_cpus": 0, "max_concurrency": plan.workers, **api_key})


def _fingerprints(config: DatagenConfig, stage: str, clip_of: Callable[[str], str] = lambda item: item,
                  inputs: Callable[[str], object] = lambda item: None) -> Callable[[str], str]:
    """Item → hash of the stage's settings, the recorded versions of its clip's upstream items and ``inputs``."""
    settings = stage_settings(config, stage)
    upstream = {name: _manifest(config, name) for name in UPSTREAM[stage]}

    def item_fingerprint(item: str) -> str:
        clip = clip_of(item)
        return fingerprint(stage, settings, {name: m.version(clip) for name, m in upstream.items()}, inputs(item))

    return item_fingerprint


def plan_annotate(config: DatagenConfig) -> StagePlan:
    """Structure from motion for the clips without poses (:mod:`datagen.annotate`). The reconstructor is built in
    ``setup`` (only when a clip needs it) and released in ``teardown`` (a backend holding a worker process ends it).
    An item's fingerprint reads the video, not the annotation files: those are what the stage itself writes."""
    metas = {m.id: m for m in read_metadata(config.input_root)}
    backend: dict = {}

    def teardown() -> None:
        close = getattr(backend.get("reconstructor"), "close", None)
        if close is not None:
            close()

    return StagePlan(
        "annotate", annotate_items(metas, clip_ids(config)),
        lambda c: annotate_clip(metas[c], config.annotate, backend["reconstructor"], config.frames.backend),
        lambda c: owned_outputs(metas[c]),
        _fingerprints(config, "annotate", inputs=lambda c: file_identity(metas[c].video_path)),
        setup=lambda: backend.update(reconstructor=get_reconstructor(config.annotate)), teardown=teardown,
    )


def plan_frames(config: DatagenConfig) -> StagePlan:
    metas = {m.id: m for m in read_metadata(config.input_root)}
    frames_dir = config.out / "frames"
    return StagePlan(
        "frames", clip_ids(config),
        lambda c: {"frames": len(extract_clip(metas[c], frames_dir, config.frames)["files"])},
        lambda c: [frames_dir / c / "clip.json", frames_dir / c],
        _fingerprints(config, "frames", inputs=lambda c: clip_input_identity(metas[c])),
    )


def plan_segment(config: DatagenConfig) -> StagePlan:
    frames_dir, masks_dir = config.out / "frames", config.out / "masks"
    state: dict = {}

    def setup() -> None:  # only when a clip needs segmenting: a rerun with nothing to do loads no model
        state["segmenter"] = get_segmenter(config.segment)
        if config.segment.prompts_from == "api":
            state["ask"] = _llm_object_names(config)

    def process(clip_id: str):
        clip = load_clip_record(frames_dir, clip_id)
        prompts = object_prompts(clip, config.segment, state.get("ask"))
        return segment_clip(clip, frames_dir, masks_dir / f"{clip_id}.npz", state["segmenter"], prompts)

    return StagePlan("segment", _extracted(config), process, lambda c: [masks_dir / f"{c}.npz"],
                     _fingerprints(config, "segment"), setup)


def _chat(config: DatagenConfig) -> ChatCoT:
    """The chat client, after one probe request: a missing key or a wrong endpoint stops the stage up front."""
    chat = ChatCoT(config.cot, config.out / "cot_cache", config.out / "cot_usage.jsonl")
    chat.probe()
    return chat


def _llm_object_names(config: DatagenConfig):
    chat = _chat(config)

    def ask(clip: dict) -> list[str]:
        prompt = (f"Video caption: {clip.get('caption', '')}\nName up to {config.segment.max_objects} distinct, "
                  "concrete, visible objects (short noun phrases, one per line, no numbering), moving ones first.")
        text = chat.complete([{"role": "user", "content": prompt}], f"{clip['clip_id']}#objects")
        return [line.strip(" -*\t") for line in text.splitlines() if line.strip(" -*\t")]

    return ask


def _qa_plan(config: DatagenConfig, kind: str, make: Callable[[str], list[dict]],
             explain: Callable[[str], dict] = lambda clip_id: {}) -> StagePlan:
    """``make(clip)`` writes the clip's questions; ``explain(clip)`` adds to its manifest line (e.g. why it got none)."""
    qa_dir = config.out / "qa" / kind

    def process(clip_id: str):
        records = make(clip_id)
        write_json(qa_dir / f"{clip_id}.json", records)
        return {"questions": len(records), **explain(clip_id)}

    stage = f"{kind}-qa"
    return StagePlan(stage, _extracted(config), process, lambda c: [qa_dir / f"{c}.json"],
                     _fingerprints(config, stage))


def plan_camera_qa(config: DatagenConfig) -> StagePlan:
    frames_dir = config.out / "frames"

    def explain(clip_id: str) -> dict:
        gap = pose_question_gap(load_clip_record(frames_dir, clip_id), config.camera_qa)
        return {"no_move_question": gap} if gap else {}

    return _qa_plan(config, "camera", lambda c: camera_questions(load_clip_record(frames_dir, c), config.camera_qa),
                    explain)


def plan_object_qa(config: DatagenConfig) -> StagePlan:
    frames_dir = config.out / "frames"

    def make(clip_id: str) -> list[dict]:
        masks, objects = load_masks(config.out / "masks" / f"{clip_id}.npz")
        return object_questions(load_clip_record(frames_dir, clip_id), masks, objects, config.object_qa)

    return _qa_plan(config, "object", make)


def _questions(config: DatagenConfig, clip_id: str) -> list[dict]:
    out = []
    for kind in ("camera", "object"):
        path = config.out / "qa" / kind / f"{clip_id}.json"
        if path.exists():
            out.extend(read_json(path))
    return out


def plan_imagery(config: DatagenConfig) -> StagePlan:
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

    return StagePlan("imagery", _extracted(config), process,
                     lambda c: [imagery_dir / f"{c}.json", imagery_dir / c], _fingerprints(config, "imagery"))


def _cot_jobs(config: DatagenConfig) -> dict[str, tuple[str, dict, dict]]:
    """qa_id → (clip, question, imagery entry) for every question with imagery, held-out clips left out (their
    questions are only exported to the benchmark, without CoT)."""
    jobs = {}
    for clip_id in _extracted(config):
        index_path = config.out / "imagery" / f"{clip_id}.json"
        if is_held_out(clip_id, config.export.benchmark_fraction) or not index_path.exists():
            continue
        index = read_json(index_path)
        for qa in _questions(config, clip_id):
            if qa["qa_id"] in index:
                jobs[qa["qa_id"]] = (clip_id, qa, index[qa["qa_id"]])
    return jobs


def plan_cot(config: DatagenConfig) -> StagePlan:
    """One CoT per question that has imagery; API requests run ``cot.concurrency`` at a time."""
    out, cot_dir = config.out, config.out / "cot"
    jobs = _cot_jobs(config)
    state: dict = {}

    def setup() -> None:
        state["chat"] = _chat(config)

    def process(qa_id: str):
        clip_id, qa, imagery = jobs[qa_id]
        if config.cot.backend == "template":
            text, attempts = template_cot(qa, imagery, config.cot.template_style), 1
        else:
            clip = load_clip_record(out / "frames", clip_id)
            text, attempts = state["chat"].generate(
                qa, [out / "imagery" / clip_id / n for n in imagery["images"]],
                [out / "frames" / clip_id / f for f in clip["files"]],
            )
        write_json(cot_dir / f"{qa_id}.json", {"qa_id": qa_id, "text_output": text, "backend": config.cot.backend,
                                               "attempts": attempts})
        return {"attempts": attempts}

    api = config.cot.backend == "api"
    return StagePlan("cot", list(jobs), process, lambda q: [cot_dir / f"{q}.json"],
                     _fingerprints(config, "cot", clip_of=lambda q: jobs[q][0]), setup if api else None,
                     config.cot.concurrency if api else 1)


PLANS = {"frames": plan_frames, "segment": plan_segment, "camera-qa": plan_camera_qa, "object-qa": plan_object_qa,
         "imagery": plan_imagery, "cot": plan_cot}


def _count_in_manifest(config: DatagenConfig, result: StageResult, key: str) -> dict[str, int]:
    """How many of the stage's done and reused items have each value of ``key`` in their manifest line."""
    manifest = _manifest(config, result.stage)
    values = [manifest.status[item].get(key) for item in result.done + result.reused]
    return {v: values.count(v) for v in sorted({v for v in values if v})}


def run_annotate(config: DatagenConfig) -> StageResult:
    result = plan_annotate(config).run(config)
    still = _count_in_manifest(config, result, "camera").get("still", 0)
    if still:
        result.note = f"{still} clip(s) with a still camera (no depth, no move questions)"
    if result.failed:
        logger.warning("annotate: %d clip(s) not reconstructed; they get no camera or object questions",
                       len(result.failed))
    return result


def run_frames(config: DatagenConfig) -> StageResult:
    return plan_frames(config).run(config)


def run_segment(config: DatagenConfig) -> StageResult:
    return plan_segment(config).run(config)


def run_camera_qa(config: DatagenConfig) -> StageResult:
    """Also counts, in the summary's notes, the clips without a move question and why (a still camera, too few
    frames, no poses)."""
    result = plan_camera_qa(config).run(config)
    gaps = _count_in_manifest(config, result, "no_move_question")
    if gaps:
        result.note = "no move question: " + ", ".join(f"{n} clip(s) {reason}" for reason, n in gaps.items())
    return result


def run_object_qa(config: DatagenConfig) -> StageResult:
    return plan_object_qa(config).run(config)


def run_imagery(config: DatagenConfig) -> StageResult:
    return plan_imagery(config).run(config)


def run_cot(config: DatagenConfig) -> StageResult:
    """Also removes the CoTs of questions of this run's clips that are gone (a changed threshold, a clip now held
    out), so no stale CoT waits for a question id that comes back with another question."""
    plan, clips = plan_cot(config), set(_extracted(config))
    for qa_id in _manifest(config, "cot").done_items():
        if qa_id not in plan.items and qa_id.rsplit("-", 2)[0] in clips:
            (config.out / "cot" / f"{qa_id}.json").unlink(missing_ok=True)
    return plan.run(config)


def upstream_state(config: DatagenConfig) -> tuple[dict[str, list[str]], dict[str, str]]:
    """``(stale, failed)``: per stage, the items whose outputs were made with other settings or inputs than today's,
    and the items whose last attempt failed (``"stage/item"`` → error)."""
    stale, failed = {}, {}
    for stage, plan_stage in PLANS.items():
        plan, manifest = plan_stage(config), _manifest(config, stage)
        outdated = [i for i in plan.items if manifest.is_done(i) and manifest.fingerprint(i) != plan.fingerprint(i)]
        if outdated:
            stale[stage] = outdated
        failed.update({f"{stage}/{i}": manifest.status[i]["error"] for i in plan.items
                       if manifest.status.get(i, {}).get("status") == "failed"})
    return stale, failed


def run_export(config: DatagenConfig) -> StageResult:
    """Export from the stage outputs; refuses outputs made with other settings, counts failed upstream items."""
    stale, failed = upstream_state(config)
    if stale:
        listed = ", ".join(f"{stage}: {len(items)} (e.g. {items[0]})" for stage, items in stale.items())
        raise RuntimeError(f"export: outputs made with other settings or inputs than this config's ({listed}); "
                           "rerun those stages first (trl-latent-datagen run)")
    paths = export(config.out, _extracted(config), config.export)
    counts = {name: sum(1 for _ in path.open(encoding="utf-8")) for name, path in paths.items() if path.suffix == ".jsonl"}
    note = ", ".join(f"{name} {n}" for name, n in counts.items()) + " records"
    if failed:
        note += "; records missing for the failed items above"
    return StageResult("export", done=sorted(paths), failed=failed, details=str(config.out / "manifests"), note=note,
                       outputs=paths)


def run_validate(config: DatagenConfig) -> StageResult:
    """Validate the exported JSONL files; writes ``export/validation.json`` and logs the per-check counts."""
    export_dir = config.out / "export"
    files = {p: validate_jsonl(p, config.validate.decode) for p in sorted(export_dir.glob("*.jsonl"))}
    if not files:
        raise FileNotFoundError(f"{export_dir}: no exported JSONL; run the 'export' stage first")
    benchmark = export_dir / "benchmark" / "benchmark.parquet"
    if benchmark.exists():
        files[benchmark] = validate_benchmark(benchmark, config.validate.decode)
    reports = {p.stem: report for p, report in files.items()}
    path = write_json(export_dir / "validation.json", reports)
    logger.info("validation\n%s", format_report(reports))
    return validation_result({str(p): report for p, report in files.items()}, str(path), {"validation": path})


def validation_result(reports: dict[str, dict], details: str, outputs: dict[str, Path] | None = None) -> StageResult:
    """Validation reports by JSONL path as a stage row: records (``file:line``) passing every check are done, the
    others failed with the checks they fail."""
    failed: dict[str, str] = {}
    for report in reports.values():
        for failure in report["failures"]:
            where, _, check = failure.partition(": ")
            failed[where] = f"{failed[where]}, {check}" if where in failed else check
    done = [f"{path}:{line}" for path, report in reports.items() for line in range(1, report["records"] + 1)]
    return StageResult("validate", done=[d for d in done if d not in failed], failed=failed, details=details,
                       note=f"{len(done)} records checked", outputs=outputs or {})


STAGE_FUNCTIONS = {
    "annotate": run_annotate,
    "frames": run_frames, "segment": run_segment, "camera-qa": run_camera_qa, "object-qa": run_object_qa,
    "imagery": run_imagery, "cot": run_cot, "export": run_export, "validate": run_validate,
}


class PipelineResult(dict):
    """Output paths by name (stage folders, exported files), plus :attr:`stages`: one :class:`StageResult` per stage
    run. A non-empty :attr:`failed` means the outputs are partial."""

    def __init__(self, paths: dict[str, Path], stages: dict[str, StageResult]):
        super().__init__(paths)
        self.stages = stages

    @property
    def failed(self) -> dict[str, dict[str, str]]:
        return {name: r.failed for name, r in self.stages.items() if r.failed}


def preflight(config: DatagenConfig) -> None:
    """Checks that need no data, run before the first stage: an API stage without its key stops here, not hours in."""
    if ("cot" in config.stages and config.cot.backend == "api") or (
            "segment" in config.stages and config.segment.prompts_from == "api"):
        require_api_key(config.cot)
    if config.ray.enabled:
        require_ray()


def save_config(config: DatagenConfig) -> Path:
    """Write the resolved config (every field) next to the outputs it makes."""
    return write_text(config.out / "datagen_config.yaml", config.to_yaml())


def run_pipeline(config: DatagenConfig) -> PipelineResult:
    """Run ``config.stages`` in order; returns the output paths and what each stage did.

    Safe to call again after an interruption, a partial failure or a settings change: items done with today's
    fingerprint are reused, everything else (failed, changed settings, redone upstream) runs again.
    """
    preflight(config)
    save_config(config)
    results: dict[str, StageResult] = {}
    for stage in STAGES:
        if stage in config.stages:
            results[stage] = STAGE_FUNCTIONS[stage](config)
    out = config.out
    folders = {"frames": out / "frames", "masks": out / "masks", "qa": out / "qa", "imagery": out / "imagery",
               "cot": out / "cot", "manifests": out / "manifests"}
    paths = {k: v for k, v in folders.items() if v.exists()}
    for result in results.values():
        paths.update(result.outputs)
    return PipelineResult(paths, results)
