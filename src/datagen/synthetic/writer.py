"""Writes synthetic clips in the SpatialVID-style layout of docs/architecture.md section 5.

Resumable and parallel-safe: every file is written to a process-unique temporary name and renamed into
place, the mp4 last, so a clip whose mp4 exists is complete and is skipped on a rerun; two writers racing on the
same clip write identical bytes. Clip ``i`` of a dataset is drawn from the seed ``[seed, i]`` (its counterfactual
twin's turns from ``[seed, i, TWIN_STREAM]``), so it does not depend on how many clips are asked for or on which
worker renders it.
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import os
import zipfile
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .config import SynthConfig
from .counterfactual import clip_scene
from .groundtruth import camera_motion_tags
from .render import render_clip
from .scene import Scene
from .video import atomic_target, encode_mp4

METADATA_COLUMNS = (
    "id",
    "group_id",
    "video_path",
    "fps",
    "num_frames",
    "width",
    "height",
    "caption",
    "objects",
    "motion_tags",
)
CONFIG_FILE = "synthetic_config.json"


def clip_names(index: int, config: SynthConfig) -> tuple[str, str]:
    """(clip id, group id) of clip ``index``; the group id is also the folder name ``group_XXXX``."""
    if index < 0:
        raise ValueError(f"clip index must be >= 0, got {index}")
    return f"synth_{index:06d}", f"group_{index // config.clips_per_group:04d}"


def clip_paths(root: Path, clip_id: str, group_id: str) -> dict[str, Path]:
    """Every file of one clip, keyed by role."""
    ann = root / "annotations" / group_id / clip_id
    return {
        "poses": ann / "poses.npy",
        "intrinsics": ann / "intrinsics.npy",
        "indexes": ann / "indexes.txt",
        "objects": ann / "objects.json",
        "tracks": ann / "tracks.npy",
        "masks": ann / "masks.npz",
        "depth": root / "depths" / group_id / f"{clip_id}.npz",
        "video": root / "videos" / group_id / f"{clip_id}.mp4",
    }


def caption(scene: Scene) -> str:
    """A scene caption that names every object (what a SpatialVID caption gives the object-naming stage);
    it says nothing about motion, so it cannot leak answers."""
    names = [f"{'an' if o.name[0] in 'aeiou' else 'a'} {o.name}" for o in scene.objects]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"{listed[0].upper()}{listed[1:]} on a checkered ground under a clear sky."


def metadata_row(scene: Scene, index: int, config: SynthConfig) -> dict[str, Any]:
    """The metadata.csv row of a clip (video_path relative to the dataset root)."""
    clip_id, group_id = clip_names(index, config)
    return {
        "id": clip_id,
        "group_id": group_id,
        "video_path": f"videos/{group_id}/{clip_id}.mp4",
        "fps": config.fps,
        "num_frames": scene.num_frames,
        "width": config.width,
        "height": config.height,
        "caption": caption(scene),
        "objects": ";".join(o.name for o in scene.objects),
        "motion_tags": ";".join(camera_motion_tags(scene.camera, config.tag_translation_m, config.tag_rotation_deg)),
    }


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic_target(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    """A compressed .npz (loads with ``np.load``) whose bytes depend only on the arrays: ``np.savez_compressed``
    stamps the current time into the zip entries, which would break byte-identical reruns."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, _npy_bytes(np.asarray(array)))
    return buf.getvalue()


def write_clip(root: Path, scene: Scene, index: int, config: SynthConfig) -> None:
    """Render ``scene`` and write all of its files; the mp4 goes last and marks the clip complete."""
    clip_id, group_id = clip_names(index, config)
    paths = clip_paths(Path(root), clip_id, group_id)
    rgb, depth, masks = render_clip(scene)
    n = scene.num_frames
    _write_bytes(paths["poses"], _npy_bytes(scene.camera.poses()))
    _write_bytes(paths["intrinsics"], _npy_bytes(scene.camera.normalized_intrinsics()))
    _write_bytes(paths["indexes"], "".join(f"{i} {i}\n" for i in range(n)).encode())
    records = [o.to_json(counterfactual=config.counterfactual_frame > 0) for o in scene.objects]
    _write_bytes(paths["objects"], json.dumps(records, indent=1).encode())
    _write_bytes(paths["tracks"], _npy_bytes(scene.tracks()))
    _write_bytes(paths["masks"], _npz_bytes(masks=masks))
    _write_bytes(paths["depth"], _npz_bytes(depth=depth))
    paths["video"].parent.mkdir(parents=True, exist_ok=True)
    encode_mp4(rgb, paths["video"], config.fps, config.codec, config.crf)


def _clip_job(root: str, seed: int, index: int, config: SynthConfig) -> dict[str, Any]:
    """Worker entry point: sample clip ``index`` (its twin with ``counterfactual_frame``), write it unless
    complete, return its metadata row."""
    scene = clip_scene(config, seed, index)
    clip_id, group_id = clip_names(index, config)
    if not clip_paths(Path(root), clip_id, group_id)["video"].exists():
        write_clip(Path(root), scene, index, config)
    return metadata_row(scene, index, config)


def _check_config(root: Path, seed: int, config: SynthConfig) -> None:
    """Record the options next to the data; refuse to mix clips written with other options or another seed."""
    record = {"seed": seed, "config": config.to_dict()}
    path = root / CONFIG_FILE
    if path.exists():
        existing = json.loads(path.read_text())
        if existing != record:
            raise ValueError(
                f"{root} already holds synthetic clips written with other options or seed ({path}); "
                "use a new folder or the same options"
            )
        return
    _write_bytes(path, json.dumps(record, indent=1, sort_keys=True).encode())


def write_metadata(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write metadata.csv atomically (header = METADATA_COLUMNS)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METADATA_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _write_bytes(path, buf.getvalue().encode())


def write_dataset(
    root: str | os.PathLike, num_clips: int, seed: int = 0, *, workers: int = 1, progress: bool = True, **options: Any
) -> Path:
    """Write ``num_clips`` synthetic clips under ``root`` and return the path of its metadata.csv.

    ``options`` are :class:`SynthConfig` fields (e.g. ``width=224, num_frames=32``). Finished clips are skipped,
    so an interrupted run resumes; ``workers > 1`` renders clips in that many processes.
    """
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    config = SynthConfig.from_options(**options)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _check_config(root, seed, config)
    bar = tqdm(total=num_clips, desc="synthetic clips", unit="clip", disable=not progress)
    if workers == 1:
        rows = []
        for i in range(num_clips):
            rows.append(_clip_job(str(root), seed, i, config))
            bar.update()
    else:
        context = multiprocessing.get_context("spawn")  # safe even when the caller has torch threads running
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(_clip_job, str(root), seed, i, config) for i in range(num_clips)]
            rows = []
            for future in futures:
                rows.append(future.result())
                bar.update()
    bar.close()
    path = root / "metadata.csv"
    write_metadata(path, rows)
    return path
