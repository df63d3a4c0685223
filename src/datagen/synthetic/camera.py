"""The moving pinhole camera: its per-frame pose, its intrinsics, and how a clip's camera motion is sampled.

The camera moves at constant velocity along the axes of its *first* frame (dolly = z, truck = x,
pedestal = -y) while its yaw (pan) and pitch (tilt) change linearly. Constant velocity means any time segment
carries a proportional share of the motion, so segment-level camera questions have clear answers; moving along
the first frame's axes means the relative pose between the first and last frame is exactly the sampled motion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import SynthConfig
from .geometry import camera_axes, encode_pose

# Primitive -> (tag for a positive amplitude, tag for a negative amplitude).
MOVE_TAGS: dict[str, tuple[str, str]] = {
    "dolly": ("Dolly In", "Dolly Out"),
    "truck": ("Truck Right", "Truck Left"),
    "pedestal": ("Pedestal Up", "Pedestal Down"),
    "pan": ("Pan Left", "Pan Right"),
    "tilt": ("Tilt Up", "Tilt Down"),
}
MIN_CAMERA_HEIGHT = 0.4


@dataclass(frozen=True)
class CameraTrack:
    """Per-frame camera centres (N, 3) and yaw/pitch (N,) in radians, plus fixed pinhole intrinsics (pixels).

    ``moves`` records the sampled motion as SpatialVID tags (generator intent; the written ``motion_tags``
    are measured back from the poses by :func:`datagen.synthetic.groundtruth.camera_motion_tags`).
    """

    positions: np.ndarray
    yaws: np.ndarray
    pitches: np.ndarray
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    moves: tuple[str, ...] = ()

    @property
    def num_frames(self) -> int:
        return len(self.positions)

    @property
    def K(self) -> np.ndarray:
        """3x3 intrinsic matrix; pixel (col u, row v) has its centre at coordinates (u, v) (OpenCV)."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def cam_to_world(self, i: int) -> np.ndarray:
        """Rotation (3, 3) whose columns are the camera axes of frame ``i`` in world coordinates."""
        return camera_axes(float(self.yaws[i]), float(self.pitches[i]))

    def to_camera(self, points: np.ndarray, i: int) -> np.ndarray:
        """World points (..., 3) -> camera-frame points of frame ``i`` (OpenCV axes)."""
        return (np.asarray(points) - self.positions[i]) @ self.cam_to_world(i)

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        """Camera-frame points (..., 3) -> pixel coordinates (..., 2) as (u, v)."""
        p = np.asarray(points_cam, dtype=np.float64)
        return np.stack([self.fx * p[..., 0] / p[..., 2] + self.cx, self.fy * p[..., 1] / p[..., 2] + self.cy], -1)

    def poses(self) -> np.ndarray:
        """(N, 7) world-to-camera [tx, ty, tz, qx, qy, qz, qw] per frame."""
        return np.stack([encode_pose(self.cam_to_world(i), self.positions[i]) for i in range(self.num_frames)])

    def normalized_intrinsics(self) -> np.ndarray:
        """(N, 4) [fx/W, fy/H, cx/W, cy/H] per frame (SpatialVID convention)."""
        row = [self.fx / self.width, self.fy / self.height, self.cx / self.width, self.cy / self.height]
        return np.tile(np.asarray(row, dtype=np.float64), (self.num_frames, 1))


def _sample_moves(rng: np.random.Generator, config: SynthConfig) -> dict[str, float]:
    """Signed amplitude per chosen primitive (metres or radians); empty for a static camera."""
    if rng.random() < config.p_static_camera:
        return {}
    count = int(rng.integers(1, config.max_camera_moves + 1))
    names = list(rng.choice(list(MOVE_TAGS), size=count, replace=False))
    ranges = {
        "dolly": config.dolly_m,
        "truck": config.truck_m,
        "pedestal": config.pedestal_m,
        "pan": tuple(np.radians(config.pan_deg)),
        "tilt": tuple(np.radians(config.tilt_deg)),
    }
    return {name: float(rng.choice([-1.0, 1.0]) * rng.uniform(*ranges[name])) for name in sorted(names)}


def sample_camera(rng: np.random.Generator, config: SynthConfig) -> CameraTrack:
    """Draw a camera for one clip: start pose, field of view and up to ``max_camera_moves`` motions.

    Draws again (from the same generator, so still deterministic) when a motion would take the camera
    closer than ``MIN_CAMERA_HEIGHT`` to the ground.
    """
    n = config.num_frames
    s = np.linspace(0.0, 1.0, n)
    hfov = np.radians(rng.uniform(*config.hfov_deg))
    fx = (config.width / 2.0) / np.tan(hfov / 2.0)
    yaw0 = rng.uniform(0.0, 2.0 * np.pi)
    pitch0 = np.radians(rng.uniform(*config.camera_pitch_deg))
    start = np.array([0.0, 0.0, rng.uniform(*config.camera_height)])
    axes0 = camera_axes(yaw0, pitch0)
    while True:
        moves = _sample_moves(rng, config)
        shift = axes0 @ np.array([moves.get("truck", 0.0), -moves.get("pedestal", 0.0), moves.get("dolly", 0.0)])
        positions = start + s[:, None] * shift
        if positions[:, 2].min() >= MIN_CAMERA_HEIGHT:
            break
    tags = tuple(MOVE_TAGS[name][0 if value > 0 else 1] for name, value in moves.items())
    return CameraTrack(
        positions=positions,
        yaws=yaw0 + s * moves.get("pan", 0.0),
        pitches=pitch0 + s * moves.get("tilt", 0.0),
        fx=float(fx),
        fy=float(fx),
        cx=config.width / 2.0,
        cy=config.height / 2.0,
        width=config.width,
        height=config.height,
        moves=tags,
    )
