"""Fixture data written by the DIFT tests: frames, imagery images, a small mp4 and JSONL records."""

from __future__ import annotations

import json
from pathlib import Path

from tiny_inputs import random_image, write_video


def write_image(path: Path, seed: int, size: int = 56) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    random_image(seed, size).save(path)
    return path


def dift_record(root: Path, index: int, num_imagery: int = 2, num_frames: int = 4, answer: str = "B",
                video: bool = False, size: int = 56) -> dict:
    """One DIFT record with files under ``root`` (paths relative to it, as in the public data); images and frames
    are ``size`` pixels square."""
    sample = root / f"s{index}"
    record: dict = {"text_input": f"Which way does object {index} move?"}
    if video:
        write_video(sample / "clip.mp4", size=size, seed=index)
        record["video"] = f"s{index}/clip.mp4"
    else:
        record["image_input"] = []
        for f in range(num_frames):
            write_image(sample / f"frame{f}.png", seed=100 * index + f, size=size)
            record["image_input"].append(f"s{index}/frame{f}.png")
    record["image_output"] = []
    for k in range(num_imagery):
        write_image(sample / f"imagery{k}.png", seed=1000 + 100 * index + k, size=size)
        record["image_output"].append(f"s{index}/imagery{k}.png")
    tags = " ".join(["<output_image>"] * num_imagery)
    record["text_output"] = f"<think> Look: {tags} it moves left. </think><answer>{answer}</answer>"
    return record


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path
