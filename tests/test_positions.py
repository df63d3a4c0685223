"""mRoPE positions: Qwen's reference rule on a hand-written table, and agreement with transformers where it should.

Table entries are written out by hand from the rule in Qwen's reference ``get_rope_index`` (the 4.x implementation the
4DThinker release vendors): text counts up on all three axes; a vision block starting at ``s`` holds
``(s + int(i * second_per_grid_ts * tokens_per_second), s + row, s + column)`` (time 0 for an image); the text after a
block resumes at the block's largest id + 1. ``tokens_per_second`` is 2 (Qwen2.5-VL-3B), merge 2.
"""

from __future__ import annotations

import copy

import pytest
import torch

from trl_latent.models import POSITION_RULES, adapter_for, apply_position_rule, position_rule
from trl_latent.models.qwen2_5_vl import mrope_positions
from trl_latent.testing import build_tiny

T, I, V = 0, 1, 2  # token types: text, image placeholder, video placeholder


def _axes(t: list[int], h: list[int], w: list[int]) -> list[list[int]]:
    return [t, h, w]


def _text(*ids: int) -> list[list[int]]:
    return [list(ids)] * 3


def _cat(*parts: list[list[int]]) -> list[list[int]]:
    return [sum((p[axis] for p in parts), []) for axis in range(3)]


# (name, token types, attention mask or None, image grids, video grids, second_per_grid_ts, expected [3, L], next)
CASES = [
    ("text only", [T, T, T], None, None, None, None, _text(0, 1, 2), 3),
    (
        # 2 text, an image of 2x2 merged patches (grid 1x4x4), 2 text: the image spans rows/columns 2..3
        "image",
        [T, T, I, I, I, I, T, T], None, [[1, 4, 4]], None, None,
        _cat(_text(0, 1), _axes([2, 2, 2, 2], [2, 2, 3, 3], [2, 3, 2, 3]), _text(4, 5)), 6,
    ),
    (
        # 1 text, a video of 4 temporal patches of 1x1 merged patch at 2 s per patch: time ids 1 + 0, 4, 8, 12;
        # the text after resumes at 13 + 1 (transformers 5.x would put it at 1 + 1 = 2, inside the video's time span)
        "video, integer interval",
        [T, V, V, V, V, T, T], None, None, [[4, 2, 2]], [2.0],
        _cat(_text(0), _axes([1, 5, 9, 13], [1, 1, 1, 1], [1, 1, 1, 1]), _text(14, 15)), 16,
    ),
    (
        # 0.75 s per patch x 2 tokens/s = 1.5 ids per patch: truncated, not rounded -> 0, 1, 3, 4
        "video, fractional interval",
        [T, V, V, V, V, T], None, None, [[4, 2, 2]], [0.75],
        _cat(_text(0), _axes([1, 2, 4, 5], [1] * 4, [1] * 4), _text(6)), 7,
    ),
    (
        # 20 s per patch (a 0.1 fps clip): two patches of 2x1 merged patches; the text resumes after the time span
        "long low-fps video",
        [T, V, V, V, V, T], None, None, [[2, 4, 2]], [20.0],
        _cat(_text(0), _axes([1, 1, 41, 41], [1, 2, 1, 2], [1, 1, 1, 1]), _text(42)), 43,
    ),
    (
        # image then video in one row, each resuming after the previous block's maximum
        "two blocks",
        [T, I, T, V, V, T], None, [[1, 2, 2]], [[1, 2, 4]], [1.0],
        _cat(_text(0), _axes([1], [1], [1]), _text(2), _axes([3, 3], [3, 3], [3, 4]), _text(5)), 6,
    ),
    (
        # left padding: padded slots get 0 and the real tokens count from 0
        "left padding",
        [T, T, T, I, T], [0, 0, 1, 1, 1], [[1, 2, 2]], None, None,
        _cat(_text(0, 0, 0), _axes([1], [1], [1]), _text(2)), 3,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_reference_rule_table(case):
    _, kinds, mask, images, videos, seconds, expected, next_position = case
    as_tensor = lambda x, dtype=torch.long: None if x is None else torch.tensor(x, dtype=dtype)  # noqa: E731
    positions, following = mrope_positions(
        torch.tensor([kinds]), as_tensor([mask] if mask else None), as_tensor(images), as_tensor(videos),
        as_tensor(seconds, torch.float32), spatial_merge_size=2, tokens_per_second=2,
    )
    assert positions[:, 0].tolist() == expected
    assert following.tolist() == [next_position]


def test_blocks_are_consumed_in_order_across_rows():
    """Two right-padded rows: row 0's video grid comes first in ``video_grid_thw``, as the processor lays it out."""
    kinds = torch.tensor([[T, V, V, T, T], [T, V, V, V, V]])
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    positions, following = mrope_positions(
        kinds, mask, None, torch.tensor([[2, 2, 2], [4, 2, 2]]), torch.tensor([1.0, 0.5]),
        spatial_merge_size=2, tokens_per_second=2,
    )
    assert positions[0].tolist() == [[0, 1, 3, 4, 0], [0, 1, 2, 3, 4]]
    assert following.tolist() == [5, 5]
    with pytest.raises(ValueError, match="more video blocks than video_grid_thw"):
        mrope_positions(kinds, mask, None, torch.tensor([[2, 2, 2]]), None, spatial_merge_size=2, tokens_per_second=2)


def _random_batch(adapter, generator: torch.Generator, with_video: bool, frame_blocks: bool = False):
    """Left-padded rows of text with 1-2 vision blocks each; grids, intervals and padding drawn at random.
    ``frame_blocks``: a video is laid out as Qwen3-VL's processor does it, one block per temporal patch, each after
    its timestamp text."""
    rows, images, videos, seconds = [], [], [], []
    for _ in range(3):
        row = [T] * int(torch.randint(1, 4, (1,), generator=generator))
        for _ in range(int(torch.randint(1, 3, (1,), generator=generator))):
            kind = V if with_video and bool(torch.randint(0, 2, (1,), generator=generator)) else I
            t = int(torch.randint(1, 6, (1,), generator=generator)) if kind == V else 1
            h, w = (2 * int(torch.randint(1, 4, (1,), generator=generator)) for _ in range(2))
            (videos if kind == V else images).append([t, h, w])
            if kind == V:
                seconds.append(float(torch.empty(1).uniform_(0.05, 25.0, generator=generator)))
            if kind == V and frame_blocks:
                for _ in range(t):
                    row += [T] * 2 + [V] * (h * w // 4)
            else:
                row += [kind] * (t * h * w // 4)
            row += [T] * int(torch.randint(1, 4, (1,), generator=generator))
        rows.append(row)
    length = max(map(len, rows))
    kinds = torch.tensor([[T] * (length - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (length - len(r)) + [1] * len(r) for r in rows])
    ids = torch.where(kinds == I, adapter.image_token_id, torch.where(kinds == V, adapter.video_token_id, 100))
    as_tensor = lambda x, dtype=torch.long: torch.tensor(x, dtype=dtype) if x else None  # noqa: E731
    return ids, mask, {"mm_token_type_ids": kinds, "image_grid_thw": as_tensor(images),
                       "video_grid_thw": as_tensor(videos), "second_per_grid_ts": as_tensor(seconds, torch.float32)}


@pytest.mark.parametrize("model_type", ["qwen2_5_vl", "qwen2_vl"])
@pytest.mark.parametrize("with_video", [False, True])
def test_agreement_with_transformers(model_type, with_video):
    """Images: both rules equal transformers' ``get_rope_index``. Videos: the ``upstream`` rule reproduces it exactly
    (fractional intervals included) and the reference rule differs only where the time axis outgrows the text."""
    model, _ = build_tiny(model_type, latent_size=None)
    backbone = model.model
    upstream = type(backbone).get_rope_index.__get__(backbone)
    adapter = adapter_for(model)
    generator = torch.Generator().manual_seed(0)
    reference_differs = False
    for _ in range(20):
        ids, mask, multimodal = _random_batch(adapter, generator, with_video)
        expected, deltas = upstream(ids, attention_mask=mask, **multimodal)
        ours, following = adapter.positions(ids, mask, multimodal, "upstream")
        assert torch.equal(ours[:, mask.bool()], expected[:, mask.bool()])
        reference, following = adapter.positions(ids, mask, multimodal, "reference")
        if not with_video:
            assert torch.equal(reference[:, mask.bool()], expected[:, mask.bool()])
            assert torch.equal(following, deltas.squeeze(1) + mask.sum(-1))  # next = max + 1 = last + 1 for images
        reference_differs |= not torch.equal(reference[:, mask.bool()], expected[:, mask.bool()])
    assert reference_differs == with_video


def test_qwen3_vl_positions_are_transformers_for_both_rules():
    """Qwen3-VL: per-frame blocks after timestamps; both rules, and the next position, equal its ``get_rope_index``
    (the family's reference), on random layouts and with the model's own forward left unpatched."""
    model, _ = build_tiny("qwen3_vl", latent_size=None)
    backbone = model.model
    reference = type(backbone).get_rope_index.__get__(backbone)
    adapter = adapter_for(model)
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        ids, mask, multimodal = _random_batch(adapter, generator, with_video=True, frame_blocks=True)
        del multimodal["second_per_grid_ts"]
        expected, deltas = reference(ids, attention_mask=mask, **multimodal)
        for rule in POSITION_RULES:
            ours, following = adapter.positions(ids, mask, multimodal, rule)
            assert torch.equal(ours[:, mask.bool()], expected[:, mask.bool()]), rule
            assert torch.equal(following, deltas.squeeze(1) + mask.sum(-1)), rule
    for rule in POSITION_RULES:
        apply_position_rule(model, rule)
        assert "get_rope_index" not in vars(backbone)


def test_patch_switches_the_models_own_forward(stock_tiny):
    """The installed rule is what ``get_rope_index`` (hence the model's forward and ``generate``) computes; it is
    recorded in the config, and ``upstream`` restores the installed transformers' method."""
    model, _ = copy.deepcopy(stock_tiny[0]), None
    kinds = torch.tensor([[T, V, V, V, V, T]])
    adapter = adapter_for(model)
    ids = torch.where(kinds == V, adapter.video_token_id, 100)
    video = {"video_grid_thw": torch.tensor([[4, 2, 2]]), "second_per_grid_ts": torch.tensor([2.0])}
    assert position_rule(model) == "reference"  # a config without the key: Qwen's rule
    apply_position_rule(model)
    positions, deltas = model.model.get_rope_index(ids, kinds, **video)
    assert positions[0, 0].tolist() == [0, 1, 9, 17, 25, 26]  # tokens_per_second 4 in the tiny config
    assert deltas.item() == 27 - 6
    apply_position_rule(model, "upstream")
    assert model.config.mrope_position_rule == "upstream"
    assert model.model.get_rope_index(ids, kinds, **video)[0][0, 0].tolist() == [0, 1, 9, 17, 25, 2]
    with pytest.raises(ValueError, match="mrope_position_rule must be one of"):
        apply_position_rule(model, "fancy")
