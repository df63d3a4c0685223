"""The pipeline's configuration: one dataclass per stage, grouped in :class:`DatagenConfig`, loadable from YAML."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .annotate.base import AnnotateConfig
from .camera_qa import CameraQAConfig
from .cot.api import CotConfig
from .export import ExportConfig
from .frames import FramesConfig
from .imagery import ImageryConfig
from .object_qa import ObjectQAConfig
from .segment.base import SegmentConfig


STAGES = ("annotate", "frames", "segment", "camera-qa", "object-qa", "imagery", "cot", "export", "validate")


@dataclass
class DatagenConfig:
    input_root: str
    """Dataset root in the SpatialVID-style layout (``metadata.csv``, ``videos/``, ``annotations/``, ``depths/``)."""
    output_dir: str
    """Everything the stages write goes under here (``frames/``, ``masks/``, ``qa/``, …, ``export/``)."""
    clips: list[str] | None = None
    """Only these clip ids (default: every row of metadata.csv)."""
    limit: int | None = None
    """Only the first ``limit`` clips."""
    stages: list[str] = field(default_factory=lambda: list(STAGES))
    """Stages ``run`` executes, in pipeline order."""
    progress: bool = True
    annotate: AnnotateConfig = field(default_factory=AnnotateConfig)
    frames: FramesConfig = field(default_factory=FramesConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    camera_qa: CameraQAConfig = field(default_factory=CameraQAConfig)
    object_qa: ObjectQAConfig = field(default_factory=ObjectQAConfig)
    imagery: ImageryConfig = field(default_factory=ImageryConfig)
    cot: CotConfig = field(default_factory=CotConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def __post_init__(self):
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise ValueError(f"stages: unknown {unknown}; choose from {list(STAGES)}")

    @property
    def out(self) -> Path:
        return Path(self.output_dir)

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> DatagenConfig:
        return _build(cls, data, source)

    @classmethod
    def from_yaml(cls, path: str | Path) -> DatagenConfig:
        path = Path(path)
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
        return _build(cls, data, str(path))


def _build(cls, data: dict, where: str):
    """Dataclass from a dict, recursing into nested dataclass fields; unknown or missing keys name their path."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown} for {cls.__name__}; known: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        if dataclasses.is_dataclass(hints[name]):
            if not isinstance(value, dict):
                raise ValueError(f"{where}: field {name!r} must be a mapping")
            value = _build(hints[name], value, f"{where}: {name}")
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ValueError(f"{where}: {e}") from None
