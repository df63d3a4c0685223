"""Stage 0 (``annotate``): camera poses, intrinsics and approximate depth for raw videos without annotations.

Backends are looked up by name in :data:`RECONSTRUCTORS` (``colmap``); register another with
:func:`register_reconstructor`. Every backend returns a :class:`SparseReconstruction`; scaling, depth interpolation
and the SpatialVID-style files are shared (:mod:`datagen.annotate.stage`).
"""

from .base import (RECONSTRUCTORS, AnnotateConfig, ReconstructionFailed, Reconstructor, SparseReconstruction,
                   get_reconstructor, register_reconstructor)
from .index import index_videos
from .stage import annotate_clip, annotate_items, owned_outputs
from . import colmap  # noqa: F401  (register the built-in backend)

__all__ = ["RECONSTRUCTORS", "AnnotateConfig", "ReconstructionFailed", "Reconstructor", "SparseReconstruction",
           "annotate_clip", "annotate_items", "get_reconstructor", "index_videos", "owned_outputs", "register_reconstructor"]
