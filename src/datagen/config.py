"""The pipeline's configuration: one dataclass per stage, grouped in :class:`DatagenConfig`, loadable from YAML.

Every value is checked against its field's type and the range in :data:`LIMITS` when the config is built, before
any stage runs: a wrong value fails every clip of a 10k-clip run otherwise, or silently drops questions. The errors
name the source, the dotted key, the value and what was expected.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .annotate.base import RECONSTRUCTORS, AnnotateConfig
from .camera_qa import CameraQAConfig
from .cot.api import CotConfig
from .cot.template import TEMPLATE_STYLES
from .distributed import RayConfig
from .export import QUESTION_TYPES, ExportConfig
from .frames import FramesConfig
from .imagery import ImageryConfig
from .mcq import OPTION_ORDERS
from .object_qa import ObjectQAConfig
from .segment import SEGMENTERS
from .segment.base import SegmentConfig
from .validate import ValidateConfig


STAGES = ("annotate", "frames", "segment", "camera-qa", "object-qa", "imagery", "cot", "export", "validate")


@dataclass(frozen=True)
class Limit:
    """Allowed values of one numeric or string field: ``low <= value <= high`` or ``value in choices``."""

    low: float | None = None
    high: float | None = None
    choices: typing.Callable[[], typing.Iterable[str]] | None = None
    low_open: bool = False
    """``low < value`` instead of ``low <= value``."""

    def problem(self, value) -> str | None:
        if self.choices is not None:
            allowed = sorted(self.choices())
            return None if value in allowed else f"expected one of {allowed}"
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        if too_low or (self.high is not None and value > self.high):
            bounds = ([f"{'>' if self.low_open else '>='} {self.low}"] if self.low is not None else []) + (
                [f"<= {self.high}"] if self.high is not None else [])
            return "expected a value " + " and ".join(bounds)
        return None


FRACTION, POSITIVE = Limit(0, 1), Limit(0, low_open=True)


LIMITS: dict[str, Limit] = {
    "limit": Limit(1),
    "stages": Limit(choices=lambda: STAGES),
    "annotate.backend": Limit(choices=lambda: RECONSTRUCTORS), "annotate.fps": POSITIVE,
    "annotate.max_frames": Limit(3), "annotate.max_side": Limit(64), "annotate.median_depth": POSITIVE,
    "annotate.min_registered": Limit(0, 1, low_open=True), "annotate.min_points": Limit(1),
    "annotate.depth_max_side": Limit(1), "annotate.focal_length_factor": POSITIVE, "annotate.max_features": Limit(1),
    "annotate.match_overlap": Limit(1), "annotate.init_min_tri_angle": Limit(0),
    "frames.fps": POSITIVE, "frames.max_frames": Limit(1), "frames.max_pixels": Limit(28 * 28),
    "frames.min_pixels": Limit(1), "frames.jpeg_quality": Limit(1, 100),
    "frames.backend": Limit(choices=lambda: ("auto", "decord", "av")),
    "segment.backend": Limit(choices=lambda: SEGMENTERS), "segment.score_threshold": FRACTION,
    "segment.mask_threshold": FRACTION, "segment.link_iou": FRACTION, "segment.max_objects": Limit(1),
    "segment.prompts_from": Limit(choices=lambda: ("objects", "caption", "api")),
    "camera_qa.min_translation": Limit(0), "camera_qa.dominance": FRACTION, "camera_qa.ambiguity": FRACTION,
    "camera_qa.min_rotation_deg": Limit(0), "camera_qa.still_speed": Limit(0),
    "camera_qa.speed_change_ratio": Limit(1), "camera_qa.min_segment_frames": Limit(2),
    "object_qa.min_mask_fraction": FRACTION, "object_qa.min_valid_frames": Limit(2),
    "object_qa.min_motion": Limit(0), "object_qa.dominance": FRACTION, "object_qa.ambiguity": FRACTION,
    "object_qa.distance_change": Limit(0), "object_qa.still_speed": Limit(0),
    "object_qa.speed_change_ratio": Limit(1), "object_qa.speed_compare_ratio": Limit(1),
    "object_qa.min_bearing_deg": Limit(0, 90),
    "camera_qa.option_order": Limit(choices=lambda: OPTION_ORDERS), "object_qa.option_order": Limit(choices=lambda: OPTION_ORDERS),
    "imagery.max_images": Limit(1), "imagery.min_images": Limit(1), "imagery.alpha": FRACTION,
    "imagery.min_mask_fraction": FRACTION, "imagery.jpeg_quality": Limit(1, 100),
    "cot.backend": Limit(choices=lambda: ("template", "api")), "cot.template_style": Limit(choices=lambda: TEMPLATE_STYLES),
    "cot.temperature": Limit(0), "cot.max_tokens": Limit(1), "cot.concurrency": Limit(1),
    "cot.timeout": POSITIVE, "cot.max_retries": Limit(0), "cot.backoff": Limit(0),
    "cot.max_backoff": Limit(0), "cot.max_attempts": Limit(1), "cot.min_think_chars": Limit(0),
    "cot.price_prompt_per_1k": Limit(0), "cot.price_completion_per_1k": Limit(0),
    "export.benchmark_fraction": FRACTION, "export.types": Limit(choices=lambda: QUESTION_TYPES),
    "export.benchmark_types": Limit(choices=lambda: QUESTION_TYPES),
    "export.visible_fraction": Limit(0, 1, low_open=True),
    "ray.num_cpus": Limit(1), "ray.num_gpus": Limit(0), "ray.task_cpus": POSITIVE, "ray.segment_actors": Limit(1),
    "ray.segment_gpus": Limit(0), "ray.annotate_actors": Limit(1), "ray.items_per_task": Limit(1),
    "ray.max_retries": Limit(0),
}
"""Ranges and choices by dotted key (``section.field``; a list field's limit applies to each element)."""


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
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    """Where the per-clip stages run: in this process (default), or on Ray (see docs/datagen.md)."""

    def __post_init__(self):
        _check_fields(self, "")

    @property
    def out(self) -> Path:
        return Path(self.output_dir)

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> DatagenConfig:
        return _build(cls, data, source)

    @classmethod
    def from_yaml(cls, path: str | Path) -> DatagenConfig:
        return _build(cls, read_yaml(path), str(path))

    def to_yaml(self) -> str:
        """The resolved config (every field, defaults included), loadable with :meth:`from_yaml`."""
        return yaml.safe_dump(dataclasses.asdict(self), sort_keys=False)


def read_yaml(path: str | Path) -> dict:
    """The mapping in a config file (checked when a :class:`DatagenConfig` is built from it)."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return data


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
                raise ValueError(f"{where}: field {name!r} must be a mapping, got {value!r}")
            value = _build(hints[name], value, f"{where}: {name}")
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: {e}") from None


def _check_fields(obj, prefix: str) -> None:
    """Check (and normalise: ints given for floats become floats) every field of ``obj``, recursing into sections."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        key, value = f"{prefix}{f.name}", getattr(obj, f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            if not isinstance(value, hints[f.name]):
                raise ValueError(f"{key}={value!r}: expected a {hints[f.name].__name__} (a mapping in YAML)")
            _check_fields(value, f"{key}.")
        else:
            setattr(obj, f.name, check_value(key, value, hints[f.name]))


def check_value(key: str, value, hint):
    """``value`` checked against the type ``hint`` and ``LIMITS[key]``; returns it normalised, or raises ValueError
    naming the key, the value and what was expected."""
    checked = _typed(value, hint)
    if checked is _WRONG:
        hint_text = ""
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d+[eE][+-]?\d+", value.strip()):
            hint_text = " (YAML reads 1e-3 as a string: write 1.0e-3 or 0.001)"
        elif isinstance(value, str) and _parses_as_number(value):
            hint_text = " (a quoted number is a string: drop the quotes)"
        raise ValueError(f"{key}={value!r} ({type(value).__name__}): expected {_describe(hint)}{hint_text}")
    limit = LIMITS.get(key)
    if limit is not None and checked is not None:
        for item in checked if isinstance(checked, list) else [checked]:
            problem = limit.problem(item)
            if problem:
                raise ValueError(f"{key}={value!r}: {problem}")
    return checked


_WRONG = object()


def _typed(value, hint):
    """``value`` if it has type ``hint`` (ints accepted and converted for floats, never bools), else ``_WRONG``."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            checked = _typed(value, option)
            if checked is not _WRONG:
                return checked
        return _WRONG
    if hint is type(None):
        return None if value is None else _WRONG
    if origin is list:
        if not isinstance(value, list):
            return _WRONG
        (inner,) = typing.get_args(hint)
        items = [_typed(v, inner) for v in value]
        return _WRONG if any(v is _WRONG for v in items) else items
    if hint is float:
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else _WRONG
    if hint is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _WRONG
    if hint in (bool, str):
        return value if isinstance(value, hint) else _WRONG
    raise TypeError(f"no check for field type {hint!r}")


def _describe(hint) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(option) for option in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if origin is list:
        return f"a list of {_describe(typing.get_args(hint)[0]).removeprefix('a ').removeprefix('an ')}s"
    return {float: "a number", int: "an integer", bool: "true or false", str: "a string"}[hint]


def _parses_as_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def apply_override(data: dict, assignment: str) -> None:
    """Apply ``--set section.field=value`` to the config dict ``data``: the key must name a field, and the value
    (parsed as YAML) is checked like a config file's."""
    key, sep, raw = assignment.partition("=")
    if not sep:
        raise ValueError(f"--set {assignment!r}: expected section.field=value")
    cls, *parents, leaf = [DatagenConfig, *key.split(".")]
    for part in parents:
        hint = typing.get_type_hints(cls).get(part)
        if hint is None or not dataclasses.is_dataclass(hint):
            raise ValueError(f"--set {assignment}: {part!r} is not a section of {cls.__name__}; "
                             f"sections: {sorted(n for n, h in typing.get_type_hints(cls).items() if dataclasses.is_dataclass(h))}")
        cls = hint
    hints = typing.get_type_hints(cls)
    if leaf not in hints or dataclasses.is_dataclass(hints[leaf]):
        known = sorted(n for n, h in hints.items() if not dataclasses.is_dataclass(h))
        raise ValueError(f"--set {assignment}: unknown field {leaf!r} for {cls.__name__}; known: {known}")
    try:
        value = check_value(key, yaml.safe_load(raw), hints[leaf])
    except (ValueError, yaml.YAMLError) as e:
        raise ValueError(f"--set {assignment}: {e}") from None
    target = data
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = value
