"""Stage 4 (``object-qa``): object-motion questions (the DSR-Bench families) from masks + depth + camera poses.

Each object's centre is lifted per frame: median depth inside its mask, the mask centroid back-projected with the
pixel intrinsics, then moved to world coordinates with the camera-to-world pose. From the world trajectories ``X_t``
of a *subject* (the object that moves most) and a *reference* (another object):

* fixed viewpoint (``abs_*``): coordinates in the camera frame at the segment start, ``Y_t = W2C_s X_t``;
* evolving viewpoint (``rel_*``): coordinates in the camera frame of each moment, ``Z_t = W2C_t X_t``, or the
  reference object's position (distances between the two objects).

Every label is computed from these numbers (never by a language model) and the numbers are stored in ``facts``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .frames import clip_annotations
from .geometry import backproject, transform
from .io import read_json
from .mcq import QuestionWriter, format_time
from .motion import (
    OBJECT_DIRECTIONS,
    OPPOSITE,
    compare_speeds,
    distance_trend,
    dominant_direction,
    smoothed_mean_speed,
    speed_trend,
    step_speeds,
)

TREND_TEXT = {
    "closer": "It gets closer", "farther": "It gets farther away", "closer then farther": "It first gets closer, then farther",
    "farther then closer": "It first gets farther, then closer", "constant": "Its distance stays about the same",
}
SPEED_TEXT = {
    "speeds up": "It speeds up", "slows down": "It slows down", "steady": "It moves at a roughly steady speed",
    "still": "It barely moves",
}
RELATIVE_POSITION_TEXT = {  # rel_ori: direction of the subject from the reference → "It is <text> the <reference>"
    "left": "to the left of", "right": "to the right of", "up": "above", "down": "below",
    "away from the camera": "behind (farther from the camera than)",
    "toward the camera": "in front of (closer to the camera than)",
}
QUADRANTS = ["in front of the camera, to the left", "in front of the camera, to the right",
             "behind the camera, to the left", "behind the camera, to the right"]
FIXED_DIRECTIONS = ("left", "right", "toward the camera", "away from the camera")
"""The four direction answers under ``option_order="fixed"`` (objects move on the ground: up/down is rare)."""


@dataclass
class ObjectQAConfig:
    """Thresholds of the object-motion labels (distances in the depth/pose unit, metres for SpatialVID)."""

    min_mask_fraction: float = 0.001
    """Frames where an object's mask covers less than this fraction of the image are not used (0.1 %)."""
    min_valid_frames: int = 3
    """An object needs a lifted centre on at least this many frames."""
    skip_occluded: bool = True
    """Leave out frames where an object's mask borders a nearer segmented object or the image edge: the centroid of
    the visible part is not the object's centre there, and its jumps would read as motion."""
    min_motion: float = 0.1
    """Displacements shorter than this are "stationary" and give no direction question."""
    dominance: float = 0.6
    ambiguity: float = 0.3
    """As for the camera: the labelled axis carries ``dominance`` of the motion; distractors stay under ``ambiguity``."""
    distance_change: float = 0.1
    """A distance change counts when it exceeds this fraction of the mean distance."""
    still_speed: float = 0.05
    speed_change_ratio: float = 1.3
    speed_compare_ratio: float = 1.5
    """One object is "faster" when its mean speed exceeds the other's by this factor."""
    min_bearing_deg: float = 5.0
    """Left/right of the optical axis counts only beyond this angle."""
    option_order: str = "rotate"
    """``rotate``: balanced answer letters; ``fixed``: each letter always names the same answer (see datagen.mcq)."""
    questions_from: str | None = None
    """Another datagen output folder whose object questions to ask again: each clip's subject, reference and frames
    are that folder's (``qa/object/<clip>.json``), the answers this world's. For a counterfactual twin world
    (``datagen.synthetic`` ``counterfactual_frame``), whose own choice of subject and frames would follow its other
    future: asked this way, a twin's question is worded exactly as the original's, so the two pair up
    (:mod:`datagen.counterfactual`). A clip without questions there, or whose subject or reference this world does
    not see on every one of those frames, gets none."""


def _cut_off(ids: np.ndarray, obj_id: int, depths: dict[int, float]) -> bool:
    """Whether the mask of ``obj_id`` touches the image edge or a segmented object nearer to the camera."""
    inside = ids == obj_id
    if inside[0].any() or inside[-1].any() or inside[:, 0].any() or inside[:, -1].any():
        return True
    grown = inside.copy()
    grown[1:] |= inside[:-1]
    grown[:-1] |= inside[1:]
    grown[:, 1:] |= inside[:, :-1]
    grown[:, :-1] |= inside[:, 1:]
    neighbours = set(np.unique(ids[grown & ~inside]).tolist()) - {0, obj_id}
    return any(depths.get(n, np.inf) < depths[obj_id] for n in neighbours)


def lift_centres(
    clip: dict, masks: np.ndarray, objects: list[dict], min_fraction: float, skip_occluded: bool = True
) -> dict[int, np.ndarray]:
    """World-frame centre ``(T, 3)`` of every object (``NaN`` where the mask is too small, has no depth, or, with
    ``skip_occluded``, is cut off by a nearer object or the image edge)."""
    ann = clip_annotations(clip)
    rows = np.asarray(clip["annotation_rows"])
    depth = ann.depth(rows)
    c2w = ann.poses_c2w[rows]
    height, width = depth.shape[1:]
    centres = {o["obj_id"]: np.full((len(rows), 3), np.nan) for o in objects}
    for t in range(len(rows)):
        k = ann.k(int(rows[t]), width, height)
        ids = masks[t]
        if ids.shape != (height, width):
            ids = np.asarray(Image.fromarray(ids).resize((width, height), Image.NEAREST))
        visible = {}
        for obj in objects:
            inside = (ids == obj["obj_id"]) & (depth[t] > 0) & np.isfinite(depth[t])
            if inside.mean() >= min_fraction:
                visible[obj["obj_id"]] = (inside, float(np.median(depth[t][inside])))
        depths = {obj_id: d for obj_id, (_, d) in visible.items()}
        for obj_id, (inside, median_depth) in visible.items():
            if skip_occluded and _cut_off(ids, obj_id, depths):
                continue
            v, u = np.nonzero(inside)
            centres[obj_id][t] = transform(c2w[t], backproject(float(u.mean()), float(v.mean()), median_depth, k))
    return centres


def _valid_span(track: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.isfinite(track).all(axis=1))


def object_questions(clip: dict, masks: np.ndarray, objects: list[dict], config: ObjectQAConfig) -> list[dict]:
    """All object questions of one clip."""
    writer = QuestionWriter(clip["clip_id"], "obj", config.option_order)
    if not clip.get("has_poses") or clip.get("annotation_rows") is None or not objects:
        return writer.records
    centres = lift_centres(clip, masks, objects, config.min_mask_fraction, config.skip_occluded)
    usable = [o for o in objects if len(_valid_span(centres[o["obj_id"]])) >= config.min_valid_frames]
    if not usable:
        return writer.records

    times = np.asarray(clip["timestamps"], dtype=np.float64)

    def mean_speed(obj):  # per second, so objects seen on fewer frames (occluded, skipped) compare fairly
        valid = _valid_span(centres[obj["obj_id"]])
        track = centres[obj["obj_id"]][valid]
        return float(np.linalg.norm(np.diff(track, axis=0), axis=1).sum()) / max(times[valid[-1]] - times[valid[0]], 1e-9)

    ann = clip_annotations(clip)
    w2c = ann.poses_w2c[np.asarray(clip["annotation_rows"])]
    if config.questions_from:
        asked = _asked_before(Path(config.questions_from), clip["clip_id"], objects, centres)
        if asked is not None:
            QuestionSet(writer, config, centres, w2c, times, *asked).ask_all()
        return writer.records
    usable.sort(key=mean_speed, reverse=True)
    subject = usable[0]
    reference = usable[-1] if len(usable) > 1 else None
    frames = _valid_span(centres[subject["obj_id"]])
    if reference is not None:
        frames = np.intersect1d(frames, _valid_span(centres[reference["obj_id"]]))
        if len(frames) < config.min_valid_frames:
            reference, frames = None, _valid_span(centres[subject["obj_id"]])
    QuestionSet(writer, config, centres, w2c, times, frames, subject, reference).ask_all()
    return writer.records


def _asked_before(folder: Path, clip_id: str, objects: list[dict], centres: dict[int, np.ndarray]
                  ) -> tuple[np.ndarray, dict, dict | None] | None:
    """``(frames, subject, reference)`` of the clip's object questions in another datagen output ``folder`` (see
    ``ObjectQAConfig.questions_from``), with this world's object records; ``None`` when it asked none, or when this
    world does not see the subject or reference on all of those frames."""
    path = folder / "qa" / "object" / f"{clip_id}.json"
    records = read_json(path) if path.is_file() else []
    if not records:
        return None
    first = records[0]
    frames = np.asarray(max((r["key_frames"] for r in records), key=len))  # every question but predictions: all
    by_id = {o["obj_id"]: o for o in objects}
    chosen = [first["subject"], first["reference"]]
    if any(c is not None and c["obj_id"] not in by_id for c in chosen):
        return None
    subject, reference = (by_id[c["obj_id"]] if c is not None else None for c in chosen)
    if any(o is not None and not np.isfinite(centres[o["obj_id"]][frames]).all() for o in (subject, reference)):
        return None
    return frames, subject, reference


class QuestionSet:
    """The questions about one subject (and optional reference) over the frames where both are visible."""

    def __init__(self, writer, config, centres, w2c, times, frames, subject, reference):
        self.writer, self.config = writer, config
        self.frames = frames
        self.times = times[frames]
        self.s, self.e = int(frames[0]), int(frames[-1])
        self.subject, self.reference = subject, reference
        self.name = f"the {subject['name']}"
        self.ref_name = f"the {reference['name']}" if reference else None
        self.world = centres[subject["obj_id"]][frames]
        self.fixed = transform(w2c[self.s], self.world)  # Y_t: camera at the segment start
        self.moving = np.stack([transform(w2c[t], x) for t, x in zip(frames, self.world)])  # Z_t
        if reference:
            self.ref_world = centres[reference["obj_id"]][frames]
            self.ref_moving = np.stack([transform(w2c[t], x) for t, x in zip(frames, self.ref_world)])
        self.span = f"between {format_time(self.times[0])} and {format_time(self.times[-1])}"
        self.at_start = f"from the camera's viewpoint at {format_time(self.times[0])}"

    def add(self, qtype, question, correct, distractors, facts, key_frames=None, vocabulary=None):
        facts = {**facts, "subject": self.subject["name"], "reference": self.reference["name"] if self.reference else None}
        self.writer.add(
            qtype, question[0].upper() + question[1:], correct, distractors, vocabulary=vocabulary,
            segment=[self.s, self.e], times=[float(self.times[0]), float(self.times[-1])],
            subject=self.subject, reference=self.reference, label=facts.get("label"),
            key_frames=[int(f) for f in (key_frames if key_frames is not None else self.frames)], facts=facts,
        )

    def direction(self, vector) -> tuple[str | None, list[str]]:
        c = self.config
        return dominant_direction(vector, OBJECT_DIRECTIONS, c.min_motion, c.dominance, c.ambiguity)

    def ask_direction(self, qtype, points, viewpoint, lo=0, hi=-1, lead="", key_frames=None):
        label, false = self.direction(points[hi] - points[lo])
        if label is None:
            return None
        distractors = [OPPOSITE[label]] + [d for d in false if d != OPPOSITE[label]]
        self.add(
            qtype, f"{lead}{viewpoint}, in which direction does {self.name} move {self.span}?",
            f"It moves {label}", [f"It moves {d}" for d in distractors],
            {"label": label, "displacement": _r(points[hi] - points[lo]), "positions": _r(points)}, key_frames,
            [f"It moves {d}" for d in FIXED_DIRECTIONS],
        )
        return label

    def ask_all(self) -> None:
        self.ask_direction("abs_dir", self.fixed, self.at_start)
        self.ask_direction("rel_dir", self.moving, "as seen from the moving camera")
        self._distance("abs_dis", np.linalg.norm(self.fixed, axis=1),
                       f"{self.at_start}, how does the distance between the camera and {self.name} change {self.span}?")
        self._speed("abs_spd", self.world, f"how does the speed of {self.name} change {self.span}?")
        self._speed("rel_spd", self.moving, f"relative to the moving camera, how does the speed of {self.name} change {self.span}?")
        self._prediction("abs_dir_pred", self.fixed, self.at_start)
        self._prediction("rel_dir_pred", self.moving, "as seen from the moving camera")
        self._bearing()
        if self.reference is None:
            return
        self._distance("rel_dis", np.linalg.norm(self.world - self.ref_world, axis=1),
                       f"from the perspective of {self.ref_name}, how does its distance to {self.name} change {self.span}?")
        self._speed_compare("abs_spd_comp", self.world, self.ref_world, "")
        self._speed_compare("rel_spd_comp", self.moving, self.ref_moving, "relative to the moving camera, ")
        self._relative_position()
        self._closer_object()

    def _distance(self, qtype, distances, question):
        threshold = self.config.distance_change * float(np.mean(distances))
        label = distance_trend(distances, threshold)
        self.add(qtype, question, TREND_TEXT[label], [t for k, t in TREND_TEXT.items() if k != label],
                 {"label": label, "distances": _r(distances), "threshold": round(threshold, 4)})

    def _speed(self, qtype, points, question):
        if len(points) < 5:  # two steps per half at least
            return
        speeds = step_speeds(points, self.times)
        level = smoothed_mean_speed(points, self.times)
        label = speed_trend(speeds, self.config.still_speed, self.config.speed_change_ratio, level)
        self.add(qtype, question, SPEED_TEXT[label], [t for k, t in SPEED_TEXT.items() if k != label],
                 {"label": label, "speeds": _r(speeds), "smoothed_mean_speed": round(level, 4)},
                 vocabulary=list(SPEED_TEXT.values()))

    def _prediction(self, qtype, points, viewpoint):
        """Direction over the second half, asked only when it continues the first half's (so it is predictable)."""
        if len(points) < 4:
            return
        mid = len(points) // 2
        first, _ = self.direction(points[mid] - points[0])
        second, false = self.direction(points[-1] - points[mid])
        if first is None or first != second:
            return
        distractors = [OPPOSITE[second]] + [d for d in false if d != OPPOSITE[second]]
        self.add(
            qtype,
            f"{viewpoint}, {self.name} moves until {format_time(self.times[mid])}. If it keeps moving the same way, "
            f"where will it go until {format_time(self.times[-1])}?",
            f"It moves {second}", [f"It moves {d}" for d in distractors],
            {"label": second, "first_half": _r(points[mid] - points[0]), "second_half": _r(points[-1] - points[mid])},
            key_frames=self.frames[: mid + 1], vocabulary=[f"It moves {d}" for d in FIXED_DIRECTIONS],
        )

    def _bearing(self):
        """Where the subject ends up relative to the camera at the segment start (fixed viewpoint)."""
        x, _, z = self.fixed[-1]
        if abs(np.degrees(np.arctan2(x, abs(z)))) < self.config.min_bearing_deg:
            return
        label = QUADRANTS[(2 if z < 0 else 0) + (1 if x > 0 else 0)]
        self.add(
            "abs_ori",
            f"{self.at_start}, where is {self.name} at {format_time(self.times[-1])}?",
            f"It is {label}", [f"It is {q}" for q in QUADRANTS if q != label],
            {"label": label, "position": _r(self.fixed[-1])}, vocabulary=[f"It is {q}" for q in QUADRANTS],
        )

    def _speed_compare(self, qtype, a, b, lead):
        c = self.config
        speed_a, speed_b = (smoothed_mean_speed(p, self.times) for p in (a, b))
        label = compare_speeds(speed_a, speed_b, c.still_speed, c.speed_compare_ratio)
        texts = {"a": f"{self.name.capitalize()} moves faster", "b": f"{self.ref_name.capitalize()} moves faster",
                 "same": "They move at about the same speed", "neither": "Neither of them moves"}
        self.add(qtype, f"{lead}which object moves faster {self.span}: {self.name} or {self.ref_name}?",
                 texts[label], [t for k, t in texts.items() if k != label],
                 {"label": label, "mean_speeds": [round(speed_a, 4), round(speed_b, 4)]}, vocabulary=list(texts.values()))

    def _relative_position(self):
        """Subject relative to the reference, as the camera sees them at the segment end (evolving viewpoint)."""
        offset = self.moving[-1] - self.ref_moving[-1]
        label, false = dominant_direction(offset, OBJECT_DIRECTIONS, self.config.min_motion, self.config.dominance,
                                          self.config.ambiguity)
        if label is None:
            return
        where = RELATIVE_POSITION_TEXT
        distractors = [OPPOSITE[label]] + [d for d in false if d != OPPOSITE[label]]
        self.add(
            "rel_ori",
            f"As the camera sees them at {format_time(self.times[-1])}, where is {self.name} relative to {self.ref_name}?",
            f"It is {where[label]} {self.ref_name}", [f"It is {where[d]} {self.ref_name}" for d in distractors],
            {"label": label, "offset": _r(offset)}, vocabulary=[f"It is {where[d]} {self.ref_name}" for d in FIXED_DIRECTIONS],
        )

    def _closer_object(self):
        """Non-temporal: which object is closer to the camera at the last frame."""
        da, db = float(np.linalg.norm(self.moving[-1])), float(np.linalg.norm(self.ref_moving[-1]))
        if abs(da - db) < self.config.distance_change * max(da, db):
            label = "same"
        else:
            label = "a" if da < db else "b"
        texts = {"a": self.name.capitalize(), "b": self.ref_name.capitalize(),
                 "same": "Both are about equally far", "neither": "Neither is visible"}
        self.add("non_temp", f"At {format_time(self.times[-1])}, which object is closer to the camera: "
                 f"{self.name} or {self.ref_name}?", texts[label], [t for k, t in texts.items() if k != label],
                 {"label": label, "distances": [round(da, 4), round(db, 4)]}, vocabulary=list(texts.values()))


def _r(array) -> list:
    return np.round(np.asarray(array, dtype=np.float64), 4).tolist()
