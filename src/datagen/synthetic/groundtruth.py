"""Ground truth computed directly from a Scene, for checking what the datagen stages derive from the written
files (poses, masks, depth) and for the clip's ``motion_tags``.

Conventions (also in docs/synthetic.md): frames are indices into the clip; camera-frame vectors use OpenCV axes
(x right, y down, z forward) of the *start* frame of the segment; pan is positive to the left, tilt positive
upwards; speeds are world-frame metres per second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .camera import CameraTrack
from .scene import Scene

# Tag order used in metadata.csv; (axis index or rotation, tag for positive, tag for negative).
_TRANSLATION_TAGS = (
    (2, "Dolly In", "Dolly Out"),
    (0, "Truck Right", "Truck Left"),
    (1, "Pedestal Down", "Pedestal Up"),
)


def _check_segment(num_frames: int, start: int, end: int) -> None:
    if not 0 <= start < end < num_frames:
        raise ValueError(f"need 0 <= start < end < {num_frames}, got start={start}, end={end}")


@dataclass(frozen=True)
class EgoMotion:
    """Camera motion from frame ``start`` to ``end``: the translation of the camera centre in the start frame's
    camera axes (metres) and the pan/tilt of the optical axis (degrees; pan > 0 left, tilt > 0 up)."""

    start: int
    end: int
    translation: np.ndarray
    pan_deg: float
    tilt_deg: float

    def tags(self, translation_m: float = 0.25, rotation_deg: float = 5.0) -> list[str]:
        """SpatialVID tags of the components above the thresholds, in the order Dolly, Truck, Pedestal, Pan, Tilt.

        The generator never rolls the camera, so roll tags never appear."""
        out = [
            pos if self.translation[axis] > 0 else neg
            for axis, pos, neg in _TRANSLATION_TAGS
            if abs(self.translation[axis]) >= translation_m
        ]
        if abs(self.pan_deg) >= rotation_deg:
            out.append("Pan Left" if self.pan_deg > 0 else "Pan Right")
        if abs(self.tilt_deg) >= rotation_deg:
            out.append("Tilt Up" if self.tilt_deg > 0 else "Tilt Down")
        return out


def ego_motion(camera: CameraTrack, start: int, end: int) -> EgoMotion:
    """Relative camera motion between two frames, measured the way a pose-based estimator would see it."""
    _check_segment(camera.num_frames, start, end)
    axes = camera.cam_to_world(start)
    translation = axes.T @ (camera.positions[end] - camera.positions[start])
    fwd = axes.T @ camera.cam_to_world(end)[:, 2]
    pan = np.degrees(np.arctan2(-fwd[0], fwd[2]))
    tilt = np.degrees(np.arctan2(-fwd[1], np.hypot(fwd[0], fwd[2])))
    return EgoMotion(start, end, translation, float(pan), float(tilt))


def camera_motion_tags(camera: CameraTrack, translation_m: float = 0.25, rotation_deg: float = 5.0) -> list[str]:
    """The clip-level ``motion_tags``: tags of the ego-motion from the first to the last frame."""
    return ego_motion(camera, 0, camera.num_frames - 1).tags(translation_m, rotation_deg)


def object_centers_camera(scene: Scene) -> np.ndarray:
    """(N, num_objects, 3) object centres in each frame's own camera coordinates."""
    tracks = scene.tracks()
    return np.stack([scene.camera.to_camera(tracks[i], i) for i in range(scene.num_frames)])


@dataclass(frozen=True)
class ObjectMotion:
    """An object's motion over a segment.

    ``own_displacement`` is the object's world displacement expressed in the start frame's camera axes (the
    object's motion with the camera's ego-motion removed); ``apparent_displacement`` is the change of its
    camera-frame position from the start frame's camera to the end frame's camera (what the video shows);
    ``distance_*`` are camera-centre to object-centre distances; ``mean_speed`` is world path length / time.
    """

    obj_id: int
    start: int
    end: int
    own_displacement: np.ndarray
    apparent_displacement: np.ndarray
    distance_start: float
    distance_end: float
    mean_speed: float

    @property
    def approaching(self) -> bool:
        return self.distance_end < self.distance_start


def _column(scene: Scene, obj_id: int) -> int:
    return scene.objects.index(scene.object(obj_id))


def object_speeds(scene: Scene) -> np.ndarray:
    """(N - 1, num_objects) world-frame speed over each frame interval, m/s."""
    return np.linalg.norm(np.diff(scene.tracks(), axis=0), axis=2) * scene.fps


def object_motion(scene: Scene, obj_id: int, start: int, end: int) -> ObjectMotion:
    """Ground-truth motion of object ``obj_id`` from frame ``start`` to ``end``."""
    _check_segment(scene.num_frames, start, end)
    k = _column(scene, obj_id)
    centers = scene.tracks()[:, k]
    cam_centers = object_centers_camera(scene)[:, k]
    return ObjectMotion(
        obj_id=obj_id,
        start=start,
        end=end,
        own_displacement=scene.camera.cam_to_world(start).T @ (centers[end] - centers[start]),
        apparent_displacement=cam_centers[end] - cam_centers[start],
        distance_start=float(np.linalg.norm(cam_centers[start])),
        distance_end=float(np.linalg.norm(cam_centers[end])),
        mean_speed=float(object_speeds(scene)[start:end, k].mean()),
    )


def speed_ratio(scene: Scene, obj_id: int, start: int, end: int) -> float:
    """Mean speed over the second half of the segment divided by the first half (> 1: speeding up).

    Needs at least two frame intervals; returns ``inf`` for an object starting from rest, ``nan`` when it never
    moves."""
    _check_segment(scene.num_frames, start, end)
    if end - start < 2:
        raise ValueError("speed_ratio needs a segment of at least two frame intervals")
    speeds = object_speeds(scene)[start:end, _column(scene, obj_id)]
    half = len(speeds) // 2
    first, second = speeds[:half].mean(), speeds[len(speeds) - half :].mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(second) / np.float64(first))
