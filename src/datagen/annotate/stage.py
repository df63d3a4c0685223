"""Stage 0 (``annotate``): camera poses, intrinsics and approximate depth for clips that come without them.

For every clip whose layout has no ``poses.npy`` / ``intrinsics.npy``, frames sampled at ``annotate.fps`` go to a
structure-from-motion backend; the frames it places become the clip's *annotated frames* and are written in the
layout SpatialVID provides (docs/architecture.md, section 5), so every later stage treats the clip like any other:

* ``poses.npy`` world-to-camera ``[tx, ty, tz, qx, qy, qz, qw]``, world = the first annotated camera, scaled so the
  median depth of the triangulated points is ``annotate.median_depth`` (SfM has no metric scale);
* ``intrinsics.npy`` normalised ``[fx/W, fy/H, cx/W, cy/H]``; ``indexes.txt`` the video frame of each row;
* ``depths/<group>/<id>.npz`` (key ``depth``) interpolated from the triangulated points (:mod:`.depth`);
* ``annotate.json`` how the files were made (backend, frames sampled and placed, scale, diagnostics).

``poses.npy`` is written last, so a clip counts as annotated only when all of its files are complete. Clips that
came with poses are not items of the stage; files of another origin are never overwritten. A clip the backend
cannot reconstruct is recorded as failed in ``manifests/annotate.jsonl`` with the reason and the run goes on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..frames import choose_frames, decode_frames
from ..geometry import invert_se3, rotation_to_quat
from ..io import atomic_write, save_npz, write_json, write_text
from ..layout import ClipMeta, group_dir
from .base import AnnotateConfig, ReconstructionFailed, Reconstructor, SparseReconstruction
from .depth import densify_depth
from .stillness import camera_stillness

MARKER = "annotate.json"


def clip_files(meta: ClipMeta) -> dict[str, Path]:
    """The files ``annotate`` writes for one clip, in writing order (``poses`` last: it marks completion)."""
    ann = meta.annotation_dir
    return {
        "marker": ann / MARKER,
        "indexes": ann / "indexes.txt",
        "depth": meta.root / "depths" / group_dir(meta.group_id) / f"{meta.id}.npz",
        "intrinsics": ann / "intrinsics.npy",
        "poses": ann / "poses.npy",
    }


def owned_outputs(meta: ClipMeta) -> list[Path]:
    """The files of a clip that ``annotate`` may delete and rewrite, the one written last first: all of them once
    its ``annotate.json`` is there, otherwise only ``poses.npy`` (absent for every clip that needs annotating)."""
    files = clip_files(meta)
    return list(reversed(files.values())) if files["marker"].exists() else [files["poses"]]


def downscale(image: np.ndarray, max_side: int) -> np.ndarray:
    height, width = image.shape[:2]
    factor = max_side / max(height, width)
    if factor >= 1:
        return image
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC))


def check_reconstruction(rec: SparseReconstruction, num_frames: int, config: AnnotateConfig) -> None:
    """Raise :class:`ReconstructionFailed` when too few frames were placed or too few points triangulated."""
    if len(rec.frames) < max(2, config.min_registered * num_frames):
        raise ReconstructionFailed(
            f"placed {len(rec.frames)} of {num_frames} frames (annotate.min_registered={config.min_registered})"
        )
    if rec.num_points3d < config.min_points:
        raise ReconstructionFailed(f"{rec.num_points3d} 3-D points (annotate.min_points={config.min_points})")


def depth_size(size: tuple[int, int], config: AnnotateConfig) -> tuple[int, int]:
    """``(W, H)`` of the written depth maps for images of ``size``: longer side at most ``depth_max_side``."""
    width, height = size
    shrink = max(1.0, max(width, height) / config.depth_max_side)
    return max(1, round(width / shrink)), max(1, round(height / shrink))


def normalised_intrinsics(k: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(N, 4)`` ``[fx/W, fy/H, cx/W, cy/H]`` of ``(N, 3, 3)`` pixel intrinsics for images of ``size = (W, H)``."""
    width, height = size
    return np.stack([k[:, 0, 0] / width, k[:, 1, 1] / height, k[:, 0, 2] / width, k[:, 1, 2] / height], axis=1)


def write_annotations(meta: ClipMeta, rec: SparseReconstruction, video_frames: list[int], size: tuple[int, int],
                      config: AnnotateConfig, info: dict) -> dict:
    """Write one clip's layout files from a reconstruction of images of ``size = (W, H)``; returns the marker."""
    width, _ = size
    w2c = rec.w2c @ invert_se3(rec.w2c[0])  # world = first annotated camera
    all_depths = np.concatenate([d for _, d in rec.points])
    if not len(all_depths):
        raise ReconstructionFailed("no triangulated point in front of any placed camera")
    scale = config.median_depth / float(np.median(all_depths))
    w2c[:, :3, 3] *= scale
    poses = np.array([np.concatenate([m[:3, 3], rotation_to_quat(m[:3, :3])]) for m in w2c])
    small = depth_size(size, config)
    depth = np.stack([densify_depth(uv, d * scale, small, width / small[0]) for uv, d in rec.points])
    marker = {
        "source": "estimated", "backend": config.backend, **info,
        "video_frames": [int(f) for f in video_frames], "points3d": rec.num_points3d, "scale": scale,
        "median_depth": config.median_depth, "image_size": list(size), **rec.stats,
    }
    _write_files(meta, marker, video_frames, poses, normalised_intrinsics(rec.k, size), depth)
    return marker


def write_still_annotations(meta: ClipMeta, rec: SparseReconstruction, video_frames: list[int],
                            size: tuple[int, int], config: AnnotateConfig, info: dict) -> dict:
    """The layout files of a clip whose camera did not move: every sampled frame at the same pose (the identity),
    the reconstruction's median intrinsics, and no depth (0 = unknown: a still camera triangulates nothing, and the
    points it placed belong to moving things). Camera questions then get the still answer; object questions,
    needing depth, are not asked."""
    poses = np.tile([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0], (len(video_frames), 1))
    intrinsics = np.tile(np.median(normalised_intrinsics(rec.k, size), axis=0), (len(video_frames), 1))
    width, height = depth_size(size, config)
    marker = {
        "source": "estimated", "backend": config.backend, **info,
        "video_frames": [int(f) for f in video_frames], "points3d": 0, "scale": None,
        "median_depth": None, "image_size": list(size), **rec.stats,
    }
    _write_files(meta, marker, video_frames, poses, intrinsics, np.zeros((len(video_frames), height, width), np.float32))
    return marker


def _write_files(meta: ClipMeta, marker: dict, video_frames: list[int], poses: np.ndarray, intrinsics: np.ndarray,
                 depth: np.ndarray) -> None:
    files = clip_files(meta)
    write_json(files["marker"], marker)
    write_text(files["indexes"], "".join(f"{i} {f}\n" for i, f in enumerate(video_frames)))
    save_npz(files["depth"], depth=depth)
    atomic_write(files["intrinsics"], lambda tmp: np.save(tmp, intrinsics), suffix=".npy")
    atomic_write(files["poses"], lambda tmp: np.save(tmp, poses), suffix=".npy")


def annotate_clip(meta: ClipMeta, config: AnnotateConfig, reconstructor: Reconstructor,
                  decode_backend: str = "auto") -> dict:
    """Estimate and write the annotations of one clip; returns a short summary for the manifest (``camera``:
    ``still`` or ``moving``, or ``unknown`` when the backend gave no matches to decide from)."""
    files = clip_files(meta)
    foreign = [str(p) for p in files.values() if p.exists()] if not files["marker"].exists() else []
    if foreign:
        raise FileExistsError(f"clip {meta.id!r}: {foreign} exist but were not written by annotate; not overwriting")
    positions = choose_frames(meta.fps, meta.num_frames, config.fps, config.max_frames)
    images = [downscale(image, config.max_side) for image in decode_frames(meta.video_path, positions, decode_backend)]
    rec = reconstructor.reconstruct(images)
    height, width = images[0].shape[:2]
    info = {"frames_sampled": len(images), "frames_placed": len(rec.frames)}
    noise = rec.stats.get("mean_reprojection_error")
    stillness = camera_stillness(rec.displacements, noise) if rec.displacements and noise is not None else None
    if stillness is not None and stillness["still"]:
        write_still_annotations(meta, rec, positions, (width, height), config, {**info, "camera": stillness})
        return {"source": "estimated", **info, "points3d": 0, "camera": "still"}
    check_reconstruction(rec, len(images), config)
    info["camera"] = stillness or {"still": None}
    marker = write_annotations(meta, rec, [positions[p] for p in rec.frames], (width, height), config, info)
    return {"source": "estimated", **info, "points3d": marker["points3d"],
            "camera": "unknown" if stillness is None else "moving"}


def annotate_items(metas: dict[str, ClipMeta], clip_ids: list[str]) -> list[str]:
    """The clips ``annotate`` works on: those without poses, and those whose files it wrote itself (so a change
    of settings may redo them). Clips that came with poses are never items, so no resume logic that clears an
    item's outputs before redoing it can ever touch their annotations."""
    return [c for c in clip_ids if not metas[c].annotations().has_poses or clip_files(metas[c])["marker"].exists()]
