"""``colmap`` backend: COLMAP's incremental structure from motion through its Python bindings (``pycolmap``).

SIFT features, sequential matching (each frame against the next ``match_overlap`` frames, as in a video) and the
incremental mapper, with one pinhole camera shared by all frames of the clip; the largest reconstruction is kept.
Runs on CPU, in a worker process (see :class:`ColmapReconstructor`), so the pipeline itself never imports
``pycolmap`` and works without it.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import tempfile
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
from PIL import Image

from .base import AnnotateConfig, ReconstructionFailed, SparseReconstruction, register_reconstructor


@register_reconstructor("colmap")
class ColmapReconstructor:
    """Runs :func:`reconstruct_frames` in a worker process of its own (started on first use, kept for the next clip).

    Two reasons: pycolmap silently loses its reconstructions when ``decord`` was imported into the process before
    it (a shared-library clash: the same frames gave 1686 points, then no model at all), and a native crash in
    COLMAP on an odd clip must cost that clip only, not the whole run.
    """

    def __init__(self, config: AnnotateConfig):
        if importlib.util.find_spec("pycolmap") is None:
            raise ImportError(
                "annotate.backend='colmap' needs the 'pycolmap' package (pip install 'trl-latent[annotate]')"
            )
        self.config = config
        self._pool: ProcessPoolExecutor | None = None

    def reconstruct(self, images: list[np.ndarray]) -> SparseReconstruction:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        try:
            return self._pool.submit(reconstruct_frames, self.config, images).result()
        except BrokenProcessPool:
            self._pool = None  # the next clip gets a fresh process
            raise ReconstructionFailed("the COLMAP worker process died (native crash or out of memory)") from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def _options(pc, c: AnnotateConfig):
    reader = pc.ImageReaderOptions()
    reader.camera_model = c.camera_model
    reader.default_focal_length_factor = c.focal_length_factor
    extraction = pc.FeatureExtractionOptions()
    extraction.num_threads = c.num_threads
    extraction.sift.max_num_features = c.max_features
    matching = pc.FeatureMatchingOptions()
    matching.num_threads = c.num_threads
    pairing = pc.SequentialPairingOptions()
    pairing.overlap = c.match_overlap
    mapping = pc.IncrementalPipelineOptions()
    mapping.num_threads = c.num_threads
    mapping.random_seed = c.seed
    mapping.min_model_size = 3
    mapping.structure_less_registration_fallback = False  # frames placed without 3-D points have no depth
    mapping.mapper.init_min_tri_angle = c.init_min_tri_angle
    mapping.ba_refine_focal_length = c.refine_focal
    mapping.mapper.abs_pose_refine_focal_length = c.refine_focal
    return reader, extraction, matching, pairing, mapping


def reconstruct_frames(config: AnnotateConfig, images: list[np.ndarray]) -> SparseReconstruction:
    """Features, sequential matching and incremental mapping of ``images`` in a scratch folder; largest model kept."""
    import pycolmap as pc

    pc.logging.minloglevel = 2  # COLMAP logs every image and bundle adjustment at INFO; keep errors only
    reader, extraction, matching, pairing, mapping = _options(pc, config)
    pc.set_random_seed(config.seed)
    with tempfile.TemporaryDirectory(prefix="annotate-colmap-") as tmp:
        tmp = Path(tmp)
        image_dir, database, sparse = tmp / "images", tmp / "database.db", tmp / "sparse"
        image_dir.mkdir()
        sparse.mkdir()
        names = [f"{i:06d}.png" for i in range(len(images))]
        for name, image in zip(names, images):
            Image.fromarray(image).save(image_dir / name)
        device = pc.Device.cpu
        pc.extract_features(database, image_dir, image_names=names, camera_mode=pc.CameraMode.SINGLE,
                            reader_options=reader, extraction_options=extraction, device=device)
        pc.match_sequential(database, matching_options=matching, pairing_options=pairing, device=device)
        position = {name: i for i, name in enumerate(names)}
        displacements = _match_displacements(pc, database, position)
        models = pc.incremental_mapping(database, image_dir, sparse, options=mapping)
    if not models:
        moved = [float(np.median(d)) for d in displacements.values() if len(d)]
        seen = f"; matched features moved {np.median(moved):.2f} px, median of {len(moved)} frame pairs" if moved else ""
        raise ReconstructionFailed(
            f"COLMAP built no model from {len(images)} frames (too little texture or parallax{seen})"
        )
    model = max(models.values(), key=lambda m: (m.num_reg_images(), m.num_points3D()))
    if model.num_points3D() == 0:
        raise ReconstructionFailed(f"COLMAP placed {model.num_reg_images()} frames but triangulated no point")
    sparse_model = _to_sparse(model, position, len(models))
    sparse_model.displacements = displacements
    sparse_model.stats["pycolmap"] = pc.__version__
    return sparse_model


def _match_displacements(pc, database: Path, position: dict[str, int]) -> dict[tuple[int, int], np.ndarray]:
    """Per matched frame pair ``(i, j)``, ``i < j``: the image displacement (pixels) of each putative SIFT match."""
    db = pc.Database.open(str(database))
    try:
        frame = {image.image_id: position[image.name] for image in db.read_all_images()}
        keypoints = {image_id: db.read_keypoints(image_id)[:, :2] for image_id in frame}
        out = {}
        for pair_id, matches in zip(*db.read_all_matches()):
            a, b = pc.pair_id_to_image_pair(pair_id)
            if len(matches):
                moved = keypoints[b][matches[:, 1]] - keypoints[a][matches[:, 0]]
                out[tuple(sorted((frame[a], frame[b])))] = np.linalg.norm(moved, axis=1).astype(np.float32)
        return out
    finally:
        db.close()


def _to_sparse(model, position: dict[str, int], num_models: int) -> SparseReconstruction:
    """Poses, intrinsics and per-frame point observations of a ``pycolmap.Reconstruction``, in frame order."""
    registered = sorted((position[image.name], image) for image in model.images.values() if image.has_pose)
    w2c, k, points = [], [], []
    for _, image in registered:
        m = np.eye(4)
        m[:3, :] = image.cam_from_world().matrix()
        w2c.append(m)
        k.append(np.asarray(image.camera.calibration_matrix(), dtype=np.float64))
        uv, xyz = [], []
        for point2d in image.points2D:
            if point2d.has_point3D():
                uv.append(point2d.xy)
                xyz.append(model.points3D[point2d.point3D_id].xyz)
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        depth = (np.asarray(xyz, dtype=np.float64).reshape(-1, 3) @ m[:3, :3].T + m[:3, 3])[:, 2]
        keep = depth > 0
        points.append((uv[keep], depth[keep]))
    return SparseReconstruction(
        frames=[p for p, _ in registered],
        w2c=np.asarray(w2c),
        k=np.asarray(k),
        points=points,
        num_points3d=int(model.num_points3D()),
        stats={"mean_reprojection_error": float(model.compute_mean_reprojection_error()), "num_models": num_models},
    )
