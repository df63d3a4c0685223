"""Reader for the SpatialVID-style raw-video layout (docs/architecture.md, section 5).

One :class:`ClipMeta` per row of ``metadata.csv`` and a lazily loading :class:`ClipAnnotations` for its camera poses,
intrinsics, depth and (synthetic world only) ground-truth objects, tracks and masks. Every error names the file and,
for the CSV, the row and field, because these files come from long external pipelines and are often hand-edited.
"""

from __future__ import annotations

import csv
import json
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from .geometry import intrinsics_to_k, invert_se3, poses_to_w2c


REQUIRED_COLUMNS = ("id", "group_id", "video_path", "fps", "num_frames", "width", "height")


def _split_list(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(";") if part.strip()]


def group_dir(group_id: str) -> str:
    """``"3"`` or ``"group_0003"`` → ``"group_0003"`` (SpatialVID stores numbers, the folders are padded names)."""
    group_id = str(group_id).strip()
    return f"group_{int(group_id):04d}" if group_id.isdigit() else group_id


@dataclass
class ClipMeta:
    """One row of ``metadata.csv``; paths are resolved against the dataset root."""

    root: Path
    id: str
    group_id: str
    video_path: Path
    fps: float
    num_frames: int
    width: int
    height: int
    caption: str = ""
    objects: list[str] = field(default_factory=list)
    motion_tags: list[str] = field(default_factory=list)

    @property
    def annotation_dir(self) -> Path:
        return self.root / "annotations" / group_dir(self.group_id) / self.id

    @property
    def depth_path(self) -> Path | None:
        base = self.root / "depths" / group_dir(self.group_id) / self.id
        for suffix in (".npz", ".zip"):
            if base.with_suffix(suffix).exists():
                return base.with_suffix(suffix)
        return None

    def annotations(self) -> ClipAnnotations:
        return ClipAnnotations(self)


def read_metadata(root: str | Path) -> list[ClipMeta]:
    """Parse ``<root>/metadata.csv`` into clip records (rows in file order)."""
    root = Path(root)
    path = root / "metadata.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path}: metadata.csv not found (is {root} a SpatialVID-style dataset root?)")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; found {reader.fieldnames}")
        clips, seen = [], set()
        for row_number, row in enumerate(reader, start=2):  # row 1 is the header

            def number(name: str, kind=float):
                try:
                    value = kind(float(row[name]))
                except (TypeError, ValueError):
                    raise ValueError(f"{path}: row {row_number}, field {name!r}: not a number: {row[name]!r}") from None
                if value <= 0:
                    raise ValueError(f"{path}: row {row_number}, field {name!r}: must be positive, got {value}")
                return value

            clip_id = (row["id"] or "").strip()
            if not clip_id:
                raise ValueError(f"{path}: row {row_number}, field 'id': empty")
            if clip_id in seen:
                raise ValueError(f"{path}: row {row_number}, field 'id': duplicate id {clip_id!r}")
            seen.add(clip_id)
            video = Path(row["video_path"].strip()) if row["video_path"] else None
            if video is None:
                video = Path("videos") / group_dir(row["group_id"]) / f"{clip_id}.mp4"
            clips.append(
                ClipMeta(
                    root=root,
                    id=clip_id,
                    group_id=(row["group_id"] or "").strip(),
                    video_path=video if video.is_absolute() else root / video,
                    fps=number("fps"),
                    num_frames=number("num_frames", int),
                    width=number("width", int),
                    height=number("height", int),
                    caption=(row.get("caption") or "").strip(),
                    objects=_split_list(row.get("objects")),
                    motion_tags=_split_list(row.get("motion_tags")),
                )
            )
    if not clips:  # a run over nothing would "succeed" with 0 records
        raise ValueError(f"{path}: no clip rows, only the header (add one row per video, e.g. with "
                         "trl-latent-datagen index ROOT)")
    return clips


class ClipAnnotations:
    """Camera and ground-truth annotations of one clip, each read on first use.

    Rows of ``poses.npy`` / ``intrinsics.npy`` / depth / GT arrays are *annotation rows*; ``frame_indexes[row]`` is the
    video frame each row belongs to (``indexes.txt``).
    """

    def __init__(self, meta: ClipMeta):
        self.meta = meta
        self.dir = meta.annotation_dir

    def _file(self, name: str) -> Path:
        path = self.dir / name
        if not path.exists():
            raise FileNotFoundError(f"{path}: annotation file missing for clip {self.meta.id!r}")
        return path

    @property
    def has_poses(self) -> bool:
        return (self.dir / "poses.npy").exists() and (self.dir / "intrinsics.npy").exists()

    @property
    def has_gt(self) -> bool:
        return (self.dir / "masks.npz").exists() and (self.dir / "objects.json").exists()

    @cached_property
    def frame_indexes(self) -> np.ndarray:
        """Video frame index of every annotation row (``indexes.txt``: ``"i frame_index"`` per line)."""
        path = self.dir / "indexes.txt"
        if not path.exists():
            n = len(self.poses_w2c) if self.has_poses else self.meta.num_frames
            return np.arange(n)
        rows = []
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or not all(re.fullmatch(r"-?\d+", p) for p in parts):
                raise ValueError(f"{path}:{lineno}: expected 'i frame_index', got {line!r}")
            i, frame = map(int, parts)
            if i != len(rows):
                raise ValueError(f"{path}:{lineno}: row index {i} out of order (expected {len(rows)})")
            rows.append(frame)
        return np.asarray(rows, dtype=np.int64)

    @cached_property
    def poses_w2c(self) -> np.ndarray:
        path = self._file("poses.npy")
        try:
            return poses_to_w2c(np.load(path))
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from e

    @cached_property
    def poses_c2w(self) -> np.ndarray:
        return invert_se3(self.poses_w2c)

    @cached_property
    def intrinsics(self) -> np.ndarray:
        path = self._file("intrinsics.npy")
        arr = np.load(path).astype(np.float64)
        if arr.ndim == 1:
            arr = np.tile(arr, (len(self.poses_w2c), 1))
        if arr.ndim != 2 or arr.shape[1] != 4:
            raise ValueError(f"{path}: intrinsics must have shape (N, 4) [fx/W, fy/H, cx/W, cy/H], got {arr.shape}")
        return arr

    def k(self, row: int, width: int, height: int) -> np.ndarray:
        """Pixel intrinsics of annotation ``row`` for an image of ``width`` × ``height``."""
        return intrinsics_to_k(self.intrinsics[row], width, height)

    def depth(self, rows: list[int] | np.ndarray) -> np.ndarray:
        """Metric depth ``(len(rows), H, W)`` float32 for the given annotation rows."""
        path = self.meta.depth_path
        if path is None:
            raise FileNotFoundError(
                f"{self.meta.root / 'depths' / group_dir(self.meta.group_id)}: no {self.meta.id}.npz or .zip depth"
            )
        if path.suffix == ".npz":
            return self._npz_depth(path)[np.asarray(rows)]
        return np.stack([read_exr_depth(path, int(r)) for r in rows])

    def _npz_depth(self, path: Path) -> np.ndarray:
        if not hasattr(self, "_depth_cache"):
            with np.load(path) as data:
                if "depth" not in data:
                    raise KeyError(f"{path}: expected key 'depth', found {list(data.keys())}")
                depth = data["depth"]
            if depth.ndim != 3:
                raise ValueError(f"{path}: 'depth' must be (N, H, W), got {depth.shape}")
            self._depth_cache = depth.astype(np.float32)
        return self._depth_cache

    @cached_property
    def gt_objects(self) -> list[dict]:
        path = self._file("objects.json")
        objects = json.loads(path.read_text(encoding="utf-8"))
        for i, obj in enumerate(objects):
            if "obj_id" not in obj or "name" not in obj:
                raise ValueError(f"{path}: entry {i} lacks 'obj_id' or 'name': {obj}")
        return objects

    @cached_property
    def gt_tracks(self) -> np.ndarray:
        return np.load(self._file("tracks.npy"))

    @cached_property
    def gt_masks(self) -> np.ndarray:
        path = self._file("masks.npz")
        with np.load(path) as data:
            if "masks" not in data:
                raise KeyError(f"{path}: expected key 'masks', found {list(data.keys())}")
            return data["masks"]


def read_exr_depth(zip_path: Path, row: int) -> np.ndarray:
    """Metric depth of annotation ``row`` from SpatialVID's zip of EXR *inverse* depth maps.

    Members are matched to rows by the number in their file name (``00012.exr`` → row 12), falling back to sorted
    order. Needs the optional ``OpenEXR`` package.
    """
    try:
        import OpenEXR
    except ImportError:
        raise ImportError(
            f"{zip_path}: reading SpatialVID EXR depth needs the 'OpenEXR' package (pip install OpenEXR), "
            "or convert the depth to <id>.npz with key 'depth'"
        ) from None
    with zipfile.ZipFile(zip_path) as zf:
        names = sorted(n for n in zf.namelist() if n.lower().endswith(".exr"))
        by_number = {int(m.group()): n for n in names if (m := re.search(r"\d+(?=\.exr$)", n, re.I))}
        name = by_number.get(row) if len(by_number) == len(names) else (names[row] if row < len(names) else None)
        if name is None:
            raise KeyError(f"{zip_path}: no EXR member for annotation row {row} ({len(names)} members)")
        data = zf.read(name)
    with tempfile.NamedTemporaryFile(suffix=".exr") as tmp:  # OpenEXR.File reads from a path
        tmp.write(data)
        tmp.flush()
        with OpenEXR.File(tmp.name) as exr:
            channels = exr.channels()
            inverse = np.asarray(channels[next(iter(channels))].pixels, dtype=np.float32)
    if inverse.ndim == 3:
        inverse = inverse[..., 0]
    with np.errstate(divide="ignore"):
        return np.where(inverse > 1e-8, 1.0 / inverse, 0.0).astype(np.float32)
