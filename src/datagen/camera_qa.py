"""Stage 3 (``camera-qa``): ego-motion questions from camera poses and SpatialVID motion tags.

For a time segment ``[s, e]`` of the sampled frames, with camera-to-world rotations ``R`` and centres ``C``:

* translation ``d = R_s^T (C_e - C_s)`` in the camera frame at ``s`` → Dolly In/Out (±z), Truck Right/Left (±x),
  Pedestal Down/Up (±y, y points down);
* relative rotation ``R_s^T R_e``: yaw of the new optical axis → Pan Right/Left, its elevation → Tilt Up/Down, the
  turn of the x axis about z → Roll Clockwise/Counter-Clockwise (clockwise as the camera sees it);
* speed trend: mean speed of the second half of the segment vs the first half.

Labels come from these numbers only; the same 12-move vocabulary names SpatialVID's tags, so tag questions and
pose questions read alike. Thresholds: :class:`CameraQAConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .frames import clip_annotations
from .mcq import QuestionWriter, format_time, stable_hash
from .motion import dominant_direction, speed_trend, step_speeds


CAMERA_TYPES = ("cam_tag", "cam_dir", "cam_rot", "cam_mag", "cam_spd")
"""The question types this stage asks (metadata tag, translation, rotation, turn magnitude, speed trend)."""
CAMERA_MOVES = [
    "Pan Left", "Pan Right", "Tilt Up", "Tilt Down", "Roll Clockwise", "Roll Counter-Clockwise",
    "Dolly In", "Dolly Out", "Truck Left", "Truck Right", "Pedestal Up", "Pedestal Down",
]
MOVE_OPPOSITE = {
    a: b for pair in [("Pan Left", "Pan Right"), ("Tilt Up", "Tilt Down"), ("Roll Clockwise", "Roll Counter-Clockwise"),
                      ("Dolly In", "Dolly Out"), ("Truck Left", "Truck Right"), ("Pedestal Up", "Pedestal Down")]
    for a, b in (pair, pair[::-1])
}
TRANSLATION_MOVES = {
    "Dolly In": (2, 1), "Dolly Out": (2, -1), "Truck Right": (0, 1), "Truck Left": (0, -1),
    "Pedestal Down": (1, 1), "Pedestal Up": (1, -1),
}
ROTATION_MOVES = {  # axes of the (yaw, pitch, roll) vector in degrees
    "Pan Right": (0, 1), "Pan Left": (0, -1), "Tilt Up": (1, 1), "Tilt Down": (1, -1),
    "Roll Clockwise": (2, 1), "Roll Counter-Clockwise": (2, -1),
}
MOVE_TEXT = {
    "Dolly In": "moves forward (dolly in)", "Dolly Out": "moves backward (dolly out)",
    "Truck Left": "moves left (truck left)", "Truck Right": "moves right (truck right)",
    "Pedestal Up": "moves up (pedestal up)", "Pedestal Down": "moves down (pedestal down)",
    "Pan Left": "turns left (pan left)", "Pan Right": "turns right (pan right)",
    "Tilt Up": "tilts up", "Tilt Down": "tilts down",
    "Roll Clockwise": "rolls clockwise", "Roll Counter-Clockwise": "rolls counter-clockwise",
}
SPEED_TEXT = {
    "speeds up": "It speeds up", "slows down": "It slows down", "steady": "It moves at a roughly steady speed",
    "still": "It stays almost still",
}
ANGLE_BUCKETS = [10, 20, 45, 90, 135, 180]
FIXED_MOVES = {"cam_dir": ("Dolly In", "Dolly Out", "Truck Left", "Truck Right"),
               "cam_rot": ("Pan Left", "Pan Right", "Tilt Up", "Tilt Down")}
"""The four answers of each move family under ``option_order="fixed"`` (ground-plane moves, turns without roll)."""


@dataclass
class CameraQAConfig:
    """Thresholds of the ego-motion labels (translations in the poses' unit, metres for SpatialVID)."""

    min_translation: float = 0.05
    """A segment whose camera centre moves less than this has no translation question."""
    dominance: float = 0.6
    """The labelled axis must carry at least this fraction of the motion (translation or rotation vector)."""
    ambiguity: float = 0.3
    """A move is used as a distractor only if its signed component is below this fraction of the motion."""
    min_rotation_deg: float = 5.0
    """A segment rotating less than this (largest of yaw, pitch, roll) has no rotation question."""
    still_speed: float = 0.02
    """Mean speed (units per second) under which the camera counts as still."""
    speed_change_ratio: float = 1.3
    """Second-half mean speed over first-half mean speed above this (or below its inverse) = speeds up (slows down)."""
    min_segment_frames: int = 3
    """Segments have at least this many sampled frames; halves of the clip are asked about when both qualify."""
    use_motion_tags: bool = True
    """Ask about SpatialVID's own motion tags (metadata ``motion_tags``) when present."""
    option_order: str = "rotate"
    """``rotate``: balanced answer letters; ``fixed``: each letter always names the same answer (see datagen.mcq)."""


def rotation_angles(r_rel: np.ndarray) -> np.ndarray:
    """``(yaw, pitch, roll)`` in degrees of a relative camera rotation (OpenCV frame; right, up, clockwise > 0)."""
    forward = r_rel[:, 2]
    yaw = np.degrees(np.arctan2(forward[0], forward[2]))
    pitch = np.degrees(np.arctan2(-forward[1], np.hypot(forward[0], forward[2])))
    roll = np.degrees(np.arctan2(r_rel[1, 0], r_rel[0, 0]))
    return np.array([yaw, pitch, roll])


def ego_motion(c2w: np.ndarray, times: np.ndarray, config: CameraQAConfig) -> dict:
    """Geometric facts and labels of the camera motion over a segment of ``(T, 4, 4)`` camera-to-world poses."""
    r_s, centres = c2w[0, :3, :3], c2w[:, :3, 3]
    translation = r_s.T @ (centres[-1] - centres[0])
    r_rel = r_s.T @ c2w[-1, :3, :3]
    angles = rotation_angles(r_rel)
    total_angle = float(np.degrees(np.arccos(np.clip((np.trace(r_rel) - 1) / 2, -1, 1))))
    move, false_moves = dominant_direction(
        translation, TRANSLATION_MOVES, config.min_translation, config.dominance, config.ambiguity
    )
    turn, false_turns = dominant_direction(
        angles, ROTATION_MOVES, config.min_rotation_deg, config.dominance, config.ambiguity
    )
    speeds = step_speeds(centres, times)
    return {
        "translation_cam": [round(float(v), 4) for v in translation],
        "distance": round(float(np.linalg.norm(translation)), 4),
        "yaw_pitch_roll_deg": [round(float(a), 2) for a in angles],
        "rotation_deg": round(total_angle, 2),
        "speeds": [round(float(s), 4) for s in speeds],
        "translation_label": move,
        "rotation_label": turn,
        "speed_label": speed_trend(speeds, config.still_speed, config.speed_change_ratio),
        "false_translations": false_moves,
        "false_rotations": false_turns,
    }


def segments(num_frames: int, min_frames: int) -> list[tuple[int, int]]:
    """The whole clip, then its two halves when each has at least ``min_frames`` frames."""
    out = [(0, num_frames - 1)] if num_frames >= min_frames else []
    half = num_frames // 2
    if half + 1 >= min_frames and num_frames - half >= min_frames:
        out += [(0, half), (half, num_frames - 1)]
    return out


def nearest_bucket(angle: float) -> int:
    return min(ANGLE_BUCKETS, key=lambda b: abs(np.log(b) - np.log(max(angle, 1e-3))))


def camera_questions(clip: dict, config: CameraQAConfig) -> list[dict]:
    """All camera questions of one clip (records with ``type`` ``cam_*``, options, answer and ``facts``)."""
    writer = QuestionWriter(clip["clip_id"], "cam", config.option_order)
    times = np.asarray(clip["timestamps"], dtype=np.float64)
    if config.use_motion_tags and clip.get("motion_tags"):
        _tag_question(writer, clip, times)
    if clip.get("has_poses") and clip.get("annotation_rows") is not None:
        c2w_all = clip_annotations(clip).poses_c2w
        c2w = c2w_all[np.asarray(clip["annotation_rows"])]
        for s, e in segments(len(times), config.min_segment_frames):
            facts = ego_motion(c2w[s : e + 1], times[s : e + 1], config)
            _pose_questions(writer, facts, s, e, times)
    return writer.records


STILL_CAMERA = "camera still"
"""The reason a clip's poses give no move question but the still answer (``cam_spd``: "It stays almost still")."""


def pose_question_gap(clip: dict, config: CameraQAConfig) -> str | None:
    """Why the poses of ``clip`` give no move question (``cam_dir`` / ``cam_rot`` / ``cam_mag``) over the whole
    clip, or ``None`` when they give one; the stage counts these reasons in the run summary, so a clip never loses
    its camera questions silently."""
    if not clip.get("has_poses") or clip.get("annotation_rows") is None:
        return "no camera poses"
    times = np.asarray(clip["timestamps"], dtype=np.float64)
    if len(times) < config.min_segment_frames:
        return (f"{len(times)} frame(s), fewer than camera_qa.min_segment_frames={config.min_segment_frames} "
                "(raise frames.fps)")
    c2w = clip_annotations(clip).poses_c2w[np.asarray(clip["annotation_rows"])]
    facts = ego_motion(c2w, times, config)
    if facts["translation_label"] or facts["rotation_label"]:
        return None
    return STILL_CAMERA if facts["speed_label"] == "still" else "no dominant move above the camera_qa thresholds"


def _tag_question(writer: QuestionWriter, clip: dict, times: np.ndarray) -> None:
    tags = [t for t in clip["motion_tags"] if t in MOVE_OPPOSITE]
    if not tags:
        return
    correct = tags[stable_hash(clip["clip_id"]) % len(tags)]
    opposites = [MOVE_OPPOSITE[t] for t in tags if MOVE_OPPOSITE[t] not in tags]
    others = [m for m in CAMERA_MOVES if m not in tags and m not in opposites]
    writer.add(
        "cam_tag",
        f"Between {format_time(times[0])} and {format_time(times[-1])}, which camera movement happens?",
        correct,
        opposites + others,
        segment=[0, len(times) - 1],
        times=[float(times[0]), float(times[-1])],
        facts={"motion_tags": tags, "label": correct, "source": "metadata motion_tags"},
    )


def _move_question(writer: QuestionWriter, qtype: str, question: str, label: str, false_moves: list[str],
                   common: dict) -> None:
    """A camera-move MCQ: the true move, then its opposite (the most telling distractor), then the other false moves."""
    opposite = MOVE_OPPOSITE[label]
    distractors = [opposite] + [m for m in false_moves if m != opposite]
    writer.add(qtype, question, f"It {MOVE_TEXT[label]}", [f"It {MOVE_TEXT[m]}" for m in distractors],
               vocabulary=[f"It {MOVE_TEXT[m]}" for m in FIXED_MOVES[qtype]], label=label, **common)


def _pose_questions(writer: QuestionWriter, facts: dict, s: int, e: int, times: np.ndarray) -> None:
    span = f"Between {format_time(times[s])} and {format_time(times[e])}"
    common = {"segment": [s, e], "times": [float(times[s]), float(times[e])], "facts": facts}
    if facts["translation_label"]:
        _move_question(writer, "cam_dir", f"{span}, in which direction does the camera mainly move?",
                       facts["translation_label"], facts["false_translations"], common)
    if facts["rotation_label"]:
        label = facts["rotation_label"]
        _move_question(writer, "cam_rot", f"{span}, how does the camera rotate?", label, facts["false_rotations"], common)
        bucket = nearest_bucket(facts["rotation_deg"])
        others = sorted((b for b in ANGLE_BUCKETS if b != bucket), key=lambda b: abs(np.log(b / bucket)))
        writer.add(
            "cam_mag",
            f"{span}, by roughly how many degrees does the camera turn in total?",
            f"About {bucket} degrees",
            [f"About {b} degrees" for b in others],
            label=f"{bucket} degrees",
            **common,
        )
    if e - s + 1 >= 4:  # a speed trend needs at least two steps in each half
        label = facts["speed_label"]
        writer.add(
            "cam_spd",
            f"{span}, how does the camera's speed change?",
            SPEED_TEXT[label],
            [t for k, t in SPEED_TEXT.items() if k != label],
            vocabulary=list(SPEED_TEXT.values()),
            label=label,
            **common,
        )
