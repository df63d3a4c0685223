"""Configuration, backend protocol and registry of the ``annotate`` stage.

A reconstructor turns the sampled frames of one clip into a :class:`SparseReconstruction`: which frames it could
place, their world-to-camera poses and pinhole intrinsics, and, per placed frame, the pixels and depths of the
triangulated points it sees. Everything after that (scale, dense depth, the SpatialVID-style files) is shared by
every backend in :mod:`datagen.annotate.writer`, so a new backend only implements the geometry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..registry import Registry


@dataclass
class AnnotateConfig:
    """How camera poses, intrinsics and depth are estimated for clips that have none."""

    backend: str = "colmap"
    """Structure-from-motion backend (registry :data:`RECONSTRUCTORS`); ``colmap`` needs the ``pycolmap`` package."""
    fps: float = 4.0
    """Frames per second of video time handed to the backend (denser than ``frames.fps``: neighbours must overlap)."""
    max_frames: int = 40
    """At most this many frames per clip (uniform subsampling, first and last kept)."""
    max_side: int = 640
    """Frames are downscaled so their longer side is at most this many pixels before feature extraction."""
    median_depth: float = 3.0
    """Structure from motion has no metric scale: poses and depth are scaled so the median depth of the
    triangulated points is this many units (so ``camera_qa.min_translation`` etc. read as fractions of it)."""
    min_registered: float = 0.5
    """A clip fails when the backend places fewer than this fraction of its sampled frames."""
    min_points: int = 30
    """A clip fails when fewer than this many 3-D points are triangulated."""
    depth_max_side: int = 256
    """Longer side of the written depth maps (depth is interpolated from sparse points, finer maps add nothing)."""
    camera_model: str = "SIMPLE_PINHOLE"
    """``colmap``: camera model shared by all frames of a clip (a pinhole model, as the layout stores no distortion)."""
    focal_length_factor: float = 1.2
    """``colmap``: initial focal length as a multiple of the longer image side (COLMAP's default prior, about 45
    degrees of horizontal field of view)."""
    refine_focal: bool = True
    """``colmap``: let bundle adjustment refine the focal length. Short clips with little rotation can drift into
    a wrong focal length that trades rotation for translation; fix it when the field of view is known."""
    max_features: int = 2048
    """``colmap``: SIFT features per frame."""
    match_overlap: int = 5
    """``colmap``: each frame is matched with this many following frames (sequential matching, videos are ordered)."""
    init_min_tri_angle: float = 4.0
    """``colmap``: minimum triangulation angle (degrees) of the initial pair; COLMAP's 16 suits photo collections,
    not the short baselines of neighbouring video frames."""
    num_threads: int = 1
    """``colmap``: CPU threads per clip (-1 = all). With one thread a clip's reconstruction is deterministic; with
    more, COLMAP's parallel matching and mapping vary from run to run (on a real clip: 750, 455 or 1 point). Run
    clips in parallel instead."""
    seed: int = 0
    """``colmap``: random seed of RANSAC and the mapper."""


class ReconstructionFailed(RuntimeError):
    """The backend could not reconstruct the clip (too little texture or parallax, a cut, ...); the message says why."""


@dataclass
class SparseReconstruction:
    """What a backend found for the frames it was given (``frames`` = positions into that list, ascending)."""

    frames: list[int]
    w2c: np.ndarray
    """``(R, 4, 4)`` world-to-camera poses of the registered frames (OpenCV camera axes)."""
    k: np.ndarray
    """``(R, 3, 3)`` pixel intrinsics at the size of the images the backend was given."""
    points: list[tuple[np.ndarray, np.ndarray]]
    """Per registered frame: ``(M, 2)`` pixel positions and ``(M,)`` camera-frame depths of the 3-D points it sees."""
    num_points3d: int
    stats: dict = field(default_factory=dict)
    """Backend diagnostics kept in ``annotate.json`` (e.g. mean reprojection error)."""
    displacements: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    """Per matched frame pair ``(i, j)`` (positions into the frames given, ``i < j``): the image displacement in
    pixels of each feature match, placed or not. With ``stats["mean_reprojection_error"]`` it decides whether the
    camera moved at all (:mod:`datagen.annotate.stillness`); a backend without matches leaves it empty."""


class Reconstructor(Protocol):
    """A backend; it may also have ``close()``, called once the stage is done (e.g. to end a worker process)."""

    def reconstruct(self, images: list[np.ndarray]) -> SparseReconstruction:
        """Reconstruct RGB uint8 frames (in video order, all the same size); raise :class:`ReconstructionFailed`."""


RECONSTRUCTORS = Registry("annotate")
"""``annotate.backend`` name → factory taking the :class:`AnnotateConfig`, returning a :class:`Reconstructor`."""
register_reconstructor = RECONSTRUCTORS.register
get_reconstructor: Callable[[AnnotateConfig], Reconstructor] = RECONSTRUCTORS.build
