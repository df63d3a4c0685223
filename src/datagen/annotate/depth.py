"""Approximate dense depth from the sparse triangulated points a frame sees.

Structure from motion gives depth only at matched features. Object questions need a depth inside each object's
mask, so the sparse depths are interpolated linearly over their Delaunay triangulation (piecewise planar between
features); pixels outside the points' convex hull get 0, which the object stage reads as "no depth". Depth edges
between features are smoothed over: this is a coarse stand-in for SpatialVID's dense depth, good for the median
depth of a textured region, not for thin structures. Moving objects have no triangulated points of their own (they
break the static-scene assumption), so their depth is that of the surrounding background.
"""

from __future__ import annotations

import numpy as np


def densify_depth(uv: np.ndarray, depth: np.ndarray, size: tuple[int, int], scale: float) -> np.ndarray:
    """``(H, W)`` float32 depth for an ``size = (W, H)`` map from points at ``uv`` (pixels of an image ``scale``
    times larger; continuous coordinates, pixel ``i`` spans ``[i, i + 1)``)."""
    from scipy.interpolate import LinearNDInterpolator  # scipy comes with the 'annotate' extra
    from scipy.spatial import QhullError

    width, height = size
    out = np.zeros((height, width), dtype=np.float32)
    if len(uv) < 3:
        return out
    try:
        interpolate = LinearNDInterpolator(np.asarray(uv, dtype=np.float64) / scale, depth)
    except QhullError:  # all points on one line: no triangle to interpolate over
        return out
    v, u = np.mgrid[0:height, 0:width]
    values = interpolate(u + 0.5, v + 0.5)
    return np.where(np.isfinite(values), values, 0.0).astype(np.float32)
