"""Stage 0 (``annotate``): camera poses, intrinsics and approximate depth for raw videos without annotations.

Backends are looked up by name in :data:`RECONSTRUCTORS` (``colmap``); register another with
:func:`register_reconstructor`. Every backend returns a :class:`SparseReconstruction`; scaling, depth interpolation
and the SpatialVID-style files are shared (:mod:`datagen.annotate.stage`). :mod:`datagen.annotate.index` (not
imported here, so ``python -m datagen.annotate.index`` runs it cleanly) writes ``metadata.csv`` for raw videos.
"""

from .base import (RECONSTRUCTORS, AnnotateConfig, ReconstructionFailed, Reconstructor, SparseReconstruction,
                   get_reconstructor, register_reconstructor)
from .stage import annotate_clip, annotate_items, owned_outputs
from . import colmap  # noqa: F401  (register the built-in backend)

__all__ = ["RECONSTRUCTORS", "AnnotateConfig", "ReconstructionFailed", "Reconstructor", "SparseReconstruction",
           "annotate_clip", "annotate_items", "get_reconstructor", "owned_outputs", "register_reconstructor"]
