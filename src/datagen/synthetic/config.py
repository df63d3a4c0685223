"""Options of the synthetic 4D world, in one frozen dataclass.

Every number that shapes a clip lives here so that a dataset folder can record the exact options it was
written with (``synthetic_config.json``) and a rerun with different options is refused instead of silently
mixing two kinds of clips. Ranges are ``(low, high)`` pairs sampled uniformly per clip.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .palette import COLORS

Range = tuple[float, float]


def _check_range(name: str, value: Range, *, low: float | None = None, high: float | None = None) -> None:
    if len(value) != 2 or value[0] > value[1]:
        raise ValueError(f"{name} must be a (low, high) pair with low <= high, got {value!r}")
    if low is not None and value[0] < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    if high is not None and value[1] > high:
        raise ValueError(f"{name} must be <= {high}, got {value!r}")


@dataclass(frozen=True)
class SynthConfig:
    """Everything that controls how a synthetic clip is sampled and rendered.

    Distances are metres, angles degrees, speeds metres per second; camera motion amplitudes are totals over
    the whole clip (the camera moves at constant velocity, so any segment carries a proportional share).
    """

    width: int = 112
    height: int = 112
    num_frames: int = 16
    fps: float = 4.0
    hfov_deg: Range = (55.0, 70.0)
    num_objects: tuple[int, int] = (2, 4)
    shapes: tuple[str, ...] = ("sphere", "box", "cylinder")
    object_size: Range = (0.6, 1.2)
    # Camera start: height above the ground and downward pitch.
    camera_height: Range = (1.2, 2.0)
    camera_pitch_deg: Range = (-20.0, -8.0)
    # Camera motion: probability of a static camera, else 1..max_camera_moves primitives of these amplitudes.
    p_static_camera: float = 0.2
    max_camera_moves: int = 2
    dolly_m: Range = (0.9, 1.6)
    truck_m: Range = (0.9, 1.6)
    pedestal_m: Range = (0.5, 0.8)
    pan_deg: Range = (10.0, 20.0)
    tilt_deg: Range = (8.0, 14.0)
    # Objects: share that moves (at least one static and one moving object when there are two or more).
    p_moving: float = 0.5
    object_speed: Range = (0.2, 0.7)
    min_speed_ratio: float = 1.3
    p_curved: float = 0.4
    curve_turn_deg: Range = (40.0, 90.0)
    speed_change: float = 0.6
    # Placement region, forward distance from the first camera.
    object_distance: Range = (2.5, 7.0)
    # Counterfactual twin: 0 = off; k >= 1 = every moving object leaves its path at frame k - 1 on a straight line
    # turned 90-180 degrees (counterfactual.py), so frames 0..k-1 are the original clip's and the future differs.
    counterfactual_frame: int = 0
    # Thresholds that turn a measured camera ego-motion into SpatialVID tags.
    tag_translation_m: float = 0.25
    tag_rotation_deg: float = 5.0
    # Video encoding.
    codec: str = "libx264"
    crf: int = 18
    clips_per_group: int = 100
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.extra:
            raise TypeError(f"unknown synthetic option(s): {sorted(self.extra)}")
        if self.width < 16 or self.height < 16 or self.width % 2 or self.height % 2:
            raise ValueError(f"width and height must be even and >= 16 (yuv420p), got {self.width}x{self.height}")
        if self.num_frames < 2:
            raise ValueError(f"num_frames must be >= 2, got {self.num_frames}")
        if self.fps <= 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        lo, hi = self.num_objects
        if not 1 <= lo <= hi <= len(COLORS):
            raise ValueError(
                f"num_objects must satisfy 1 <= low <= high <= {len(COLORS)} (one colour each), got {self.num_objects}"
            )
        unknown = set(self.shapes) - {"sphere", "box", "cylinder"}
        if not self.shapes or unknown:
            raise ValueError(f"shapes must be a non-empty subset of sphere/box/cylinder, got {self.shapes!r}")
        _check_range("hfov_deg", self.hfov_deg, low=20.0, high=120.0)
        _check_range("object_size", self.object_size, low=0.05)
        _check_range("camera_height", self.camera_height, low=0.3)
        _check_range("camera_pitch_deg", self.camera_pitch_deg, low=-60.0, high=0.0)
        for name in ("dolly_m", "truck_m", "pedestal_m", "object_speed", "object_distance"):
            _check_range(name, getattr(self, name), low=0.0)
        for name in ("pan_deg", "tilt_deg", "curve_turn_deg"):
            _check_range(name, getattr(self, name), low=0.0, high=90.0)
        for name in ("p_static_camera", "p_moving", "p_curved"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability, got {getattr(self, name)}")
        if not 1 <= self.max_camera_moves <= 5:
            raise ValueError(f"max_camera_moves must be in 1..5, got {self.max_camera_moves}")
        if not 0.0 <= self.speed_change < 1.0:
            raise ValueError(f"speed_change must be in [0, 1), got {self.speed_change}")
        if self.min_speed_ratio < 1.0:
            raise ValueError(f"min_speed_ratio must be >= 1, got {self.min_speed_ratio}")
        if self.object_distance[0] < 1.5:
            raise ValueError("object_distance must start at >= 1.5 m so objects never touch the camera")
        if not 0 <= self.counterfactual_frame < self.num_frames:
            raise ValueError(
                f"counterfactual_frame must be >= 0 (0 = off) and < num_frames ({self.num_frames}), "
                f"got {self.counterfactual_frame}"
            )
        if self.codec not in ("libx264", "mpeg4"):
            raise ValueError(f"codec must be libx264 or mpeg4, got {self.codec!r}")
        if self.clips_per_group < 1:
            raise ValueError(f"clips_per_group must be >= 1, got {self.clips_per_group}")

    @property
    def duration(self) -> float:
        """Seconds from the first to the last frame."""
        return (self.num_frames - 1) / self.fps

    @classmethod
    def from_options(cls, **options: Any) -> SynthConfig:
        """Build a config from keyword options, turning lists (e.g. from JSON or a CLI) into tuples."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items() if k in names}
        return cls(**known, extra={k: v for k, v in options.items() if k not in names})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (tuples become lists), the inverse of :meth:`from_options`. ``counterfactual_frame`` is
        left out while it is 0 (off), so the ``synthetic_config.json`` of a world without twins is unchanged."""
        out = dataclasses.asdict(self)
        out.pop("extra")
        if not out["counterfactual_frame"]:
            out.pop("counterfactual_frame")
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}
