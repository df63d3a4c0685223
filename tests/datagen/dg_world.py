"""A tiny synthetic dataset in the SpatialVID-style layout with known camera motion and object tracks."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from datagen.geometry import rotation_to_quat


WIDTH, HEIGHT, FX = 112, 84, 100.0
COLORS = [(220, 40, 40), (40, 200, 60), (40, 80, 220)]


def yaw_matrix(deg: float) -> np.ndarray:
    t = np.radians(deg)
    return np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])


def camera_c2w(spec: dict, t: float) -> np.ndarray:
    """Camera-to-world at time ``t``: centre = v t + a t^2 / 2 (world), yaw = yaw_rate * t."""
    c2w = np.eye(4)
    c2w[:3, :3] = yaw_matrix(spec.get("yaw_rate", 0.0) * t)
    v, a = np.asarray(spec.get("velocity", (0, 0, 0)), float), np.asarray(spec.get("accel", (0, 0, 0)), float)
    c2w[:3, 3] = v * t + 0.5 * a * t * t
    return c2w


def write_clip(root: Path, clip_id: str, spec: dict) -> dict:
    """Render one clip: flat-shaded discs (depth = centre depth) on a far background, plus every annotation file."""
    import av

    n, fps = spec.get("frames", 8), spec.get("fps", 2.0)
    group = "group_0001"
    ann = root / "annotations" / group / clip_id
    ann.mkdir(parents=True, exist_ok=True)
    (root / "videos" / group).mkdir(parents=True, exist_ok=True)
    (root / "depths" / group).mkdir(parents=True, exist_ok=True)
    objects = spec.get("objects", [])
    poses, depths, masks, tracks, rgb = [], [], [], [], []
    vv, uu = np.mgrid[0:HEIGHT, 0:WIDTH]
    for i in range(n):
        t = i / fps
        c2w = camera_c2w(spec, t)
        w2c = np.linalg.inv(c2w)
        poses.append(np.concatenate([w2c[:3, 3], rotation_to_quat(w2c[:3, :3])]))
        depth = np.full((HEIGHT, WIDTH), 20.0, np.float32)
        mask = np.zeros((HEIGHT, WIDTH), np.uint8)
        image = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
        centres = []
        for j, obj in enumerate(objects, start=1):
            centre = np.asarray(obj["start"], float) + np.asarray(obj.get("velocity", (0, 0, 0)), float) * t
            centres.append(centre)
            p = w2c[:3, :3] @ centre + w2c[:3, 3]
            if p[2] <= 0.1:
                continue
            u, v = FX * p[0] / p[2] + WIDTH / 2, FX * p[1] / p[2] + HEIGHT / 2
            radius = FX * obj.get("radius", 0.5) / p[2]
            disc = ((uu - u) ** 2 + (vv - v) ** 2 <= radius**2) & (p[2] < depth)
            depth[disc], mask[disc], image[disc] = p[2], j, COLORS[(j - 1) % 3]
        depths.append(depth)
        masks.append(mask)
        tracks.append(centres)
        rgb.append(image)
    np.save(ann / "poses.npy", np.asarray(poses))
    np.save(ann / "intrinsics.npy", np.tile([FX / WIDTH, FX / HEIGHT, 0.5, 0.5], (n, 1)))
    (ann / "indexes.txt").write_text("".join(f"{i} {i}\n" for i in range(n)))
    np.savez_compressed(root / "depths" / group / f"{clip_id}.npz", depth=np.asarray(depths))
    if objects:
        np.savez_compressed(ann / "masks.npz", masks=np.asarray(masks))
        np.save(ann / "tracks.npy", np.asarray(tracks))
        (ann / "objects.json").write_text(json.dumps(
            [{"obj_id": j, "name": o["name"], "moving": bool(np.any(o.get("velocity", 0)))} for j, o in
             enumerate(objects, 1)]))
    video = root / "videos" / group / f"{clip_id}.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("mpeg4", rate=int(fps))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for image in rgb:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return {"id": clip_id, "group_id": "1", "video_path": f"videos/{group}/{clip_id}.mp4", "fps": fps,
            "num_frames": n, "width": WIDTH, "height": HEIGHT, "caption": spec.get("caption", ""),
            "objects": ";".join(o["name"] for o in objects), "motion_tags": ";".join(spec.get("tags", []))}


def write_dataset(root: Path, specs: dict[str, dict]) -> Path:
    rows = [write_clip(root, clip_id, spec) for clip_id, spec in specs.items()]
    with (root / "metadata.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


BALL_RIGHT = {"name": "red ball", "start": (-1.5, 0.0, 6.0), "velocity": (0.5, 0.0, 0.0), "radius": 0.6}
BOX_STILL = {"name": "green box", "start": (1.5, 0.5, 7.0), "radius": 0.7}

SPECS = {
    "forward": {"velocity": (0, 0, 0.4), "objects": [BALL_RIGHT, BOX_STILL], "tags": ["Dolly In"]},
    "pan": {"yaw_rate": 8.0, "objects": [dict(BALL_RIGHT, velocity=(0, 0, -0.8)), BOX_STILL]},
    "truck": {"velocity": (-0.3, 0, 0), "accel": (-0.3, 0, 0), "objects": [BOX_STILL, dict(BALL_RIGHT, velocity=(0, 0, 0))]},
}




def zero_middle(path: Path) -> None:
    """Zero an eighth of an mp4's media data in the middle, header and index (``moov``, after the data) intact: the
    file opens and reports its frame count, then fails to decode, as a partly lost download does."""
    data = bytearray(path.read_bytes())
    start, end = data.find(b"mdat"), data.find(b"moov")
    assert 0 < start < end
    middle, span = (start + end) // 2, len(data) // 8
    data[middle: middle + span] = bytes(span)
    path.write_bytes(bytes(data))
