"""Perception pretraining: the quickstart's random-init vision tower learns what a real VLM's tower brings along.

A Qwen2.5-VL trained from scratch for minutes learns the answer format but cannot read motion from its frames (the
conclusions it writes are right at chance), and DIFT's latent targets — the vision tower's features of the imagery
images — then encode nothing. Real VLMs start from a tower pretrained on web-scale data; here the synthetic world's
exact ground truth stands in for it: for every 14×14 patch of every frame pair the tower sees (one temporal patch,
frames ``2g`` and ``2g + 1``), the tower's merged output is trained to predict

* which objects cover the patch (the share of its pixels of each palette colour; the questions name objects by colour),
* the patch's apparent motion to the next frame (optical flow ``du, dv`` in patch units, from depth, poses and object
  tracks: camera motion moves the ground, object motion moves the object),
* its log depth and the change of log depth to the next frame (what "closer"/"farther" questions are about),

through a linear head that is dropped afterwards. The supervision is dense (every patch of every frame), so the small
tower learns in about a minute, with the language model never run. Nothing here reads a question or an answer.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from datagen.geometry import intrinsics_to_k
from datagen.layout import ClipMeta, read_metadata
from datagen.synthetic.palette import COLORS

from ..data import decode_video
from ..models import FAMILIES, family_module, video_budget
from ..testing import (
    MERGE_SIZE,
    PATCH_SIZE,
    TEMPORAL_PATCH_SIZE,
    build_config,
    build_processor,
    model_sizes,
)

COLOR_NAMES = tuple(COLORS)
SKY_DEPTH_M = 60.0
"""Depth given to sky pixels (no surface): the world's fog distance; their flow is then almost pure rotation."""
REGRESSION = ("flow_u", "flow_v", "log_depth", "log_depth_change")
TARGETS_PER_PATCH = len(COLOR_NAMES) + len(REGRESSION)


def _flow(depth: np.ndarray, mask: np.ndarray, k: np.ndarray, c2w0: np.ndarray, w2c1: np.ndarray,
          moves: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-pixel ``(du, dv)`` and ``log z1 − log z0`` of the surface seen at each pixel of frame 0 into frame 1;
    ``moves`` maps an object id to its world displacement between the two frames (ground and sky stay put)."""
    height, width = depth.shape
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    z = np.where(depth > 0, depth, SKY_DEPTH_M).astype(np.float64)
    cam = np.stack([(u - k[0, 2]) / k[0, 0] * z, (v - k[1, 2]) / k[1, 1] * z, z], axis=-1)
    world = cam @ c2w0[:3, :3].T + c2w0[:3, 3]
    for obj_id, move in moves.items():
        world[mask == obj_id] += move
    cam1 = world @ w2c1[:3, :3].T + w2c1[:3, 3]
    z1 = np.maximum(cam1[..., 2], 1e-3)
    u1 = k[0, 0] * cam1[..., 0] / z1 + k[0, 2]
    v1 = k[1, 1] * cam1[..., 1] / z1 + k[1, 2]
    return u1 - u, v1 - v, np.log(z1) - np.log(z)


def _patch_means(values: np.ndarray, patch: int) -> np.ndarray:
    """``(..., H, W)`` → ``(..., H / patch, W / patch)`` block means."""
    *lead, height, width = values.shape
    blocks = values.reshape(*lead, height // patch, patch, width // patch, patch)
    return blocks.mean(axis=(-3, -1))


def _merged_order(per_patch: np.ndarray) -> np.ndarray:
    """``(T', H', W', C)`` patch grid → ``(T' · H'/2 · W'/2, 4, C)``: the vision tower's merged-token order (row-major
    over 2×2 patch blocks), each token's four patches in row-major order."""
    t, h, w, c = per_patch.shape
    grid = per_patch.reshape(t, h // MERGE_SIZE, MERGE_SIZE, w // MERGE_SIZE, MERGE_SIZE, c)
    return grid.transpose(0, 1, 3, 2, 4, 5).reshape(-1, MERGE_SIZE * MERGE_SIZE, c)


def clip_targets(meta: ClipMeta, frame_rows: list[int]) -> np.ndarray:
    """Dense targets ``(tokens, 4, TARGETS_PER_PATCH)`` of one clip whose sampled frames are ``frame_rows`` (an even
    number, each pair one temporal patch); frame sides must be multiples of 28, as the quickstart renders them."""
    ann = meta.annotations()
    if len(frame_rows) % TEMPORAL_PATCH_SIZE:
        raise ValueError(f"{meta.id}: {len(frame_rows)} frames, need an even number (temporal patch 2)")
    masks, tracks = ann.gt_masks, ann.gt_tracks
    depth = ann.depth(frame_rows)
    c2w, w2c = ann.poses_c2w, ann.poses_w2c
    height, width = depth.shape[1:]
    if height % (PATCH_SIZE * MERGE_SIZE) or width % (PATCH_SIZE * MERGE_SIZE):
        raise ValueError(f"{meta.id}: frames are {width}x{height}; perception targets need multiples of 28")
    colour_of = {o["obj_id"]: COLOR_NAMES.index(o["color"]) for o in ann.gt_objects}
    column_of = {o["obj_id"]: j for j, o in enumerate(ann.gt_objects)}
    groups = []
    for g in range(0, len(frame_rows), TEMPORAL_PATCH_SIZE):
        r0, r1 = frame_rows[g], frame_rows[g + 1]
        k = intrinsics_to_k(ann.intrinsics[r0], width, height)
        moves = {i: tracks[r1, column_of[i]] - tracks[r0, column_of[i]] for i in column_of}
        du, dv, dlogz = _flow(depth[g], masks[r0], k, c2w[r0], w2c[r1], moves)
        coverage = np.zeros((len(COLOR_NAMES), height, width))
        for obj_id, colour in colour_of.items():
            coverage[colour] += 0.5 * ((masks[r0] == obj_id).astype(float) + (masks[r1] == obj_id))
        log_depth = np.log(np.where(depth[g] > 0, depth[g], SKY_DEPTH_M))
        channels = np.concatenate([coverage, np.stack([du / PATCH_SIZE, dv / PATCH_SIZE, log_depth, dlogz])])
        groups.append(np.moveaxis(_patch_means(channels, PATCH_SIZE), 0, -1))
    return _merged_order(np.stack(groups)).astype(np.float32)


@dataclass
class PerceptionSettings:
    """How the tower is trained (the quickstart's ``perception_steps`` sets ``steps``)."""

    steps: int = 800
    batch_size: int = 16
    learning_rate: float = 1e-3
    heldout_fraction: float = 0.1
    seed: int = 0


def _encode_clips(metas: list[ClipMeta], processor: Any, fps: float, max_frames: int) -> list[dict[str, Any]]:
    """Pixel patches (the processor's, exactly as training feeds them) and dense targets of every clip."""
    encoded = []
    for meta in metas:
        frames, rate = decode_video(str(meta.video_path), fps, max_frames)
        rows = [int(round(i * meta.fps / rate)) for i in range(len(frames))]  # decoded frame → annotation row
        rows = rows[: len(rows) - len(rows) % TEMPORAL_PATCH_SIZE]
        pixels = frames.shape[1] * frames.shape[2]
        video = processor.video_processor(
            videos=[frames[: len(rows)]], **video_budget(processor, pixels, pixels, len(rows)),
            video_metadata=[{"fps": rate, "total_num_frames": len(rows)}], return_tensors="pt",
        )
        targets = torch.from_numpy(clip_targets(meta, rows))
        if len(targets) * MERGE_SIZE**2 != len(video["pixel_values_videos"]):
            raise ValueError(f"{meta.id}: {len(targets)} target tokens for {len(video['pixel_values_videos'])} patches")
        encoded.append({"pixels": video["pixel_values_videos"], "grid": video["video_grid_thw"], "targets": targets})
    return encoded


def _batch_loss(visual: nn.Module, head: nn.Module, clips: list[dict[str, Any]], mean: torch.Tensor, std: torch.Tensor
                ) -> tuple[torch.Tensor, dict[str, float]]:
    pixels = torch.cat([c["pixels"] for c in clips])
    grid = torch.cat([c["grid"] for c in clips])
    features = visual(pixels, grid_thw=grid).pooler_output  # merged tokens, the language model's video inputs
    predicted = head(features).view(len(features), MERGE_SIZE**2, TARGETS_PER_PATCH)
    targets = torch.cat([c["targets"] for c in clips])
    n_colours = len(COLOR_NAMES)
    presence = nn.functional.binary_cross_entropy_with_logits(predicted[..., :n_colours], targets[..., :n_colours])
    standardized = (targets[..., n_colours:] - mean) / std
    regression_error = (predicted[..., n_colours:] - standardized) ** 2
    regression = regression_error.mean()
    # share of each regressed quantity's variance explained: the number that says whether the tower sees motion
    residual = regression_error.detach().sum(dim=(0, 1))
    total = ((standardized - standardized.mean(dim=(0, 1))) ** 2).sum(dim=(0, 1)).clamp_min(1e-9)
    metrics = {"presence_bce": presence.item(), **{f"r2_{n}": v.item() for n, v in zip(REGRESSION, 1 - residual / total)}}
    return presence + regression, metrics


def pretrain_vision_tower(visual: nn.Module, processor: Any, world_root: str | Path, fps: float, max_frames: int,
                          settings: PerceptionSettings) -> dict[str, Any]:
    """Train a Qwen2.5-VL vision tower (patch embedding, blocks, merger) in place on the dense targets of every clip
    of the synthetic world at ``world_root``; returns the held-out fit per quantity and the training history."""
    start = time.perf_counter()
    metas = read_metadata(world_root)
    generator = np.random.default_rng(settings.seed)
    order = generator.permutation(len(metas))
    n_heldout = max(1, int(round(settings.heldout_fraction * len(metas))))
    if len(metas) - n_heldout < 1:
        raise ValueError(f"{world_root}: {len(metas)} clips leave none to train on after {n_heldout} held out")
    batch_size = min(settings.batch_size, len(metas) - n_heldout)
    clips = _encode_clips(metas, processor, fps, max_frames)
    print(f"[perception] {len(clips)} clips encoded in {time.perf_counter() - start:.0f} s", flush=True)
    heldout = [clips[i] for i in order[:n_heldout]]
    train = [clips[i] for i in order[n_heldout:]]
    values = torch.cat([c["targets"][..., len(COLOR_NAMES):].reshape(-1, len(REGRESSION)) for c in train])
    mean, std = values.mean(dim=0), values.std(dim=0).clamp_min(1e-6)

    torch.manual_seed(settings.seed)
    head = nn.Linear(visual.config.out_hidden_size, MERGE_SIZE**2 * TARGETS_PER_PATCH)
    parameters = [*visual.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=settings.learning_rate, weight_decay=0.01)
    warmup = max(1, settings.steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, settings.steps) / settings.steps)))
    visual.train()
    history = []
    for step in range(settings.steps):
        picks = generator.choice(len(train), size=batch_size, replace=False)
        loss, metrics = _batch_loss(visual, head, [train[i] for i in picks], mean, std)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        schedule.step()
        if step % max(1, settings.steps // 20) == 0 or step == settings.steps - 1:
            history.append({"step": step, "loss": loss.item(), **metrics})
            print(f"[perception] step {step}: loss {loss.item():.3f} ({time.perf_counter() - start:.0f} s)", flush=True)
    visual.eval()
    with torch.no_grad():
        sums: dict[str, float] = {}
        for i in range(0, len(heldout), batch_size):
            chunk = heldout[i : i + batch_size]
            _, metrics = _batch_loss(visual, head, chunk, mean, std)
            for key, value in metrics.items():
                sums[key] = sums.get(key, 0.0) + value * len(chunk)
    return {
        "clips": {"train": len(train), "heldout": len(heldout)}, "settings": settings.__dict__,
        "heldout": {k: round(v / len(heldout), 4) for k, v in sums.items()},
        "history": history, "seconds": round(time.perf_counter() - start, 1),
    }


PERCEPTION_SEED = 1_000_003
"""World seed of the pretraining clips: never a quickstart's own (clip ``i`` of a world is drawn from ``[seed, i]``),
so pretraining never sees a held-out clip."""
TOWER_FILE, LOG_FILE = "vision_tower.safetensors", "perception.json"
FORMAT = 1
"""Bumped whenever the targets or the training change, so a cached tower from older code is rebuilt."""


def cached_tower(cache_root: str | Path, *, model_size: str, image_size: int, num_frames: int, fps: float,
                 clips: int, settings: PerceptionSettings, workers: int = 1, progress: bool = False,
                 model_family: str = FAMILIES[0], numerics: dict[str, Any] | None = None) -> Path:
    """The folder of a vision tower pretrained with these settings, built once per machine and reused (like a model
    download): ``vision_tower.safetensors`` (the tower's state dict) and ``perception.json`` (settings and fit).

    Built in a temporary folder next to the cache and moved in whole, so an interrupted build leaves nothing that
    looks finished; the pretraining world is deleted afterwards (only the weights are worth keeping). ``numerics``
    (the quickstart's thread count and kernel pinning, :mod:`trl_latent.numerics`) is part of the key: the tower's weights
    depend on them, so a tower built under other numerics is not reused.
    """
    from datagen.synthetic import (
        write_dataset,  # looked up per call, so tests can stand in for the renderer
    )


    key = {"format": FORMAT, "model_size": model_size, "image_size": image_size, "num_frames": num_frames, "fps": fps,
           "clips": clips, "world_seed": PERCEPTION_SEED, **settings.__dict__, **({"numerics": numerics} if numerics else {})}
    family = "" if model_family == FAMILIES[0] else f"{model_family}-"  # the default's cache keeps its name
    if family:
        key["model_family"] = model_family
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    root = Path(cache_root).expanduser()
    folder = root / f"{family}{model_size}-{image_size}px-{num_frames}f-{digest}"
    if (folder / LOG_FILE).is_file() and (folder / TOWER_FILE).is_file():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".build-") as tmp:
        world = Path(tmp) / "world"
        write_dataset(world, clips, seed=PERCEPTION_SEED, workers=workers, progress=progress, width=image_size,
                      height=image_size, num_frames=num_frames, fps=fps)
        processor = build_processor(model_type=model_family)
        text, vision = model_sizes(model_family)[model_size]
        config = build_config(processor.tokenizer, text, vision, model_type=model_family).vision_config
        torch.manual_seed(settings.seed)
        visual = family_module(model_family).VISION_TOWER_CLASS._from_config(config)
        result = pretrain_vision_tower(visual, processor, world, fps, num_frames, settings)
        built = Path(tmp) / "tower"
        built.mkdir()
        save_file({k: v.contiguous() for k, v in visual.state_dict().items()}, str(built / TOWER_FILE))
        (built / LOG_FILE).write_text(json.dumps({"key": key, **result}, indent=1))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(built, folder)
    return folder


def load_tower(model: Any, folder: str | Path) -> None:
    """Put the pretrained tower of ``folder`` into ``model`` (of the same family and size); every key must match."""
    state = load_file(str(Path(folder) / TOWER_FILE))
    model.model.visual.load_state_dict(state, strict=True)
