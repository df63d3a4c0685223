"""Fingerprints of stage outputs, as ``datasets`` keys its cache: a hash of what went in.

An item's fingerprint hashes the stage name, the config settings the stage reads (:func:`stage_settings`) and the
recorded versions (fingerprint and time made) of the upstream items it consumed (:data:`UPSTREAM`); the ``frames``
stage hashes the clip's input files instead (:func:`clip_input_identity`). So changing a threshold changes the
fingerprints of that stage and, through the chain, of everything downstream, and an upstream item that was redone
(it failed before, its output or its manifest was deleted) makes its downstream items run again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from .layout import ClipMeta


SECTIONS = {"annotate": "annotate", "frames": "frames", "segment": "segment", "camera-qa": "camera_qa", "object-qa": "object_qa",
            "imagery": "imagery", "cot": "cot"}
"""Config section each item stage reads."""

UPSTREAM = {"annotate": (), "frames": (), "segment": ("frames",), "camera-qa": ("frames",), "object-qa": ("frames", "segment"),
            "imagery": ("frames", "segment", "camera-qa", "object-qa"), "cot": ("imagery",)}
"""Stages whose per-clip outputs each item stage reads (``cot`` reaches the questions through ``imagery``)."""

OPERATIONAL = {
    "segment": {"device"},
    "cot": {"api_key_env", "concurrency", "timeout", "max_retries", "backoff", "max_backoff",
            "price_prompt_per_1k", "price_completion_per_1k"},
}
"""Fields that change how a stage runs, not what it writes: they are left out of the fingerprints."""

API_COT_FIELDS = ("model", "temperature", "max_tokens", "max_attempts", "min_think_chars", "send_images")
"""What shapes an API CoT (the endpoint does not: like the response cache, a moved server keeps its answers)."""


def fingerprint(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def stage_settings(config, stage: str) -> dict:
    """The settings ``stage`` reads, operational fields left out (``config``: a ``DatagenConfig``)."""
    section = dataclasses.asdict(getattr(config, SECTIONS[stage]))
    settings = {k: v for k, v in section.items() if k not in OPERATIONAL.get(stage, ())}
    if stage == "cot":  # each backend reads only its own fields
        keep = ("backend", "template_style") if settings["backend"] == "template" else ("backend", *API_COT_FIELDS)
        settings = {k: settings[k] for k in keep}
    if stage == "segment" and settings["prompts_from"] == "api":  # the object names come from the chat model
        settings["chat"] = {k: getattr(config.cot, k) for k in API_COT_FIELDS[:3]}
    return settings


def clip_input_identity(meta: ClipMeta) -> dict:
    """The metadata row and the size and modification time of every input file of one clip."""
    files = [meta.video_path] + ([meta.depth_path] if meta.depth_path else [])
    if meta.annotation_dir.is_dir():
        files += sorted(p for p in meta.annotation_dir.rglob("*") if p.is_file())
    row = {k: v for k, v in dataclasses.asdict(meta).items() if k != "root"}
    return {"row": row, "files": {str(p): file_identity(p) for p in files}}


def file_identity(path: Path) -> list[int] | None:
    """Size and modification time of ``path`` (None when it does not exist), as ``datasets`` keys local files."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return [info.st_size, info.st_mtime_ns]
