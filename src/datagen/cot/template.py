"""Offline CoT written from a question's geometric facts, so the pipeline runs without any API.

The text follows the release's reasoning shape: locate the time span, pick the object to watch, imagine the
highlighted key frames (one grouped run of ``<output_image>`` tags), state the measured motion, conclude in words.
The letter appears only in ``<answer>``.
"""

from __future__ import annotations

from .checks import OUTPUT_IMAGE


def _vector(values) -> str:
    return "(" + ", ".join(f"{v:+.2f}" for v in values) + ")"


def _evidence(qa: dict) -> str:
    """One or two sentences with the measurements behind the label."""
    facts, qtype = qa.get("facts", {}), qa["type"]
    if qtype == "cam_tag":
        return f"The clip's camera annotation lists the movements {', '.join(facts['motion_tags'])}."
    if qtype in ("cam_dir", "cam_rot", "cam_mag", "cam_spd"):
        yaw, pitch, roll = facts["yaw_pitch_roll_deg"]
        text = (f"Relative to where it started, the camera centre shifts by {_vector(facts['translation_cam'])} "
                f"(x right, y down, z forward), and its view turns by yaw {yaw:+.1f}°, pitch {pitch:+.1f}°, roll "
                f"{roll:+.1f}° ({facts['rotation_deg']:.1f}° in total).")
        if qtype == "cam_spd":
            text += " Its step speeds are " + ", ".join(f"{s:.2f}" for s in facts["speeds"]) + " units per second."
        return text
    subject = facts.get("subject", "object")
    if "displacement" in facts:
        return f"The {subject}'s centre shifts by {_vector(facts['displacement'])} in that camera frame (x right, y down, z forward)."
    if "first_half" in facts:
        return (f"In the first half the {subject} shifts by {_vector(facts['first_half'])} and the motion continues "
                f"the same way, {_vector(facts['second_half'])} in the second half.")
    if "distances" in facts and qtype != "non_temp":
        return "The measured distances over the key moments are " + ", ".join(f"{d:.2f}" for d in facts["distances"]) + "."
    if "speeds" in facts:
        return f"The {subject}'s step speeds are " + ", ".join(f"{s:.2f}" for s in facts["speeds"]) + " units per second."
    if "mean_speeds" in facts:
        a, b = facts["mean_speeds"]
        return f"The {subject} averages {a:.2f} units per second and the {facts['reference']} {b:.2f}."
    if "position" in facts:
        return f"At the end the {subject} sits at {_vector(facts['position'])} in the starting camera frame."
    if "offset" in facts:
        return f"Seen from the camera, the {subject} is offset by {_vector(facts['offset'])} from the {facts['reference']}."
    if qtype == "non_temp":
        a, b = facts["distances"]
        return f"The {subject} is {a:.2f} units from the camera and the {facts['reference']} {b:.2f}."
    return ""


TEMPLATE_STYLES = ("full", "concise")


def template_cot(qa: dict, imagery: dict, style: str = "full") -> str:
    """``<think> … <output_image> … </think><answer>X</answer>`` with one tag per imagery image.

    ``full`` states the measurements behind the label; ``concise`` keeps only the object, the imagined moments and
    the conclusion, a chain short enough for a model trained from scratch in minutes to complete.
    """
    times = ", ".join(f"{t:.1f}s" for t in imagery["times"])
    obj = imagery["object"]
    tags = " ".join([OUTPUT_IMAGE] * len(imagery["images"]))
    conclusion = qa["answer_text"].rstrip(".")
    if style == "concise":
        think = f"I picture the {obj} at {times}: {tags} So: {conclusion}."
    elif style == "full":
        role = "the moving object" if qa.get("subject") else "a static reference to judge the camera's motion against"
        think = (
            f"The question is about the span from {qa['times'][0]:.1f}s to {qa['times'][1]:.1f}s. I focus on the "
            f"{obj}, {role}, and picture it highlighted at {times}: {tags} "
            f"{_evidence(qa)} Comparing these moments, the observation that fits is: {conclusion}."
        )
    else:
        raise ValueError(f"template style {style!r}; choose one of {list(TEMPLATE_STYLES)}")
    return f"<think>{think}</think><answer>{qa['answer']}</answer>"
