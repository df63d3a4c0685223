import pytest
import torch
from transformers import LogitsProcessor, LogitsProcessorList

from tiny_inputs import image_prompts, video_prompt
from trl_latent.generation import generate_with_latents, rope_positions
from trl_latent.latents import inject_latents
from trl_latent.tokens import get_latent_spec, latent_blocks_well_formed


class ForceAt(LogitsProcessor):
    """Force token ``token_id`` at completion step ``step`` of row ``row`` (a test stand-in for a trained model)."""

    def __init__(self, prompt_len: int, schedule: dict[int, list[int]], token_id: int, row_offset: int = 0):
        self.prompt_len, self.schedule, self.token_id, self.row_offset = prompt_len, schedule, token_id, row_offset

    def __call__(self, input_ids, scores):
        step = input_ids.shape[1] - self.prompt_len
        for row in range(scores.shape[0]):
            if step in self.schedule.get(row + self.row_offset, []):
                scores[row] = float("-inf")
                scores[row, self.token_id] = 0.0
        return scores


QUESTIONS = ["Which way does the camera move?", "Is the red sphere approaching?"]


def _generate(model, batch, **kwargs):
    return generate_with_latents(model, **batch, **kwargs)


def _assert_reforward_equals(model, batch, out, vectors=None) -> None:
    """The loop's logits equal one teacher-forced forward of its sequences with the vectors it fed (``vectors``: all
    of ``out``'s latent inputs by default) injected at the pads."""
    spec = get_latent_spec(model)
    prompt_len = batch["input_ids"].shape[1]
    mask = torch.cat([batch["attention_mask"], torch.ones_like(out.completion_ids)], dim=1)
    types = torch.cat([batch["mm_token_type_ids"], torch.zeros_like(out.completion_ids)], dim=1)
    visual = {k: v for k, v in batch.items() if k not in ("input_ids", "attention_mask", "mm_token_type_ids")}
    fed = out.latent_embeds[out.latent_mask] if vectors is None else vectors
    with inject_latents(model, spec.pad_id, fed):
        logits = model(input_ids=out.sequences, attention_mask=mask, mm_token_type_ids=types, **visual).logits
    valid = out.completion_mask
    torch.testing.assert_close(out.logits[valid], logits[:, prompt_len - 1 : -1].float()[valid], atol=2e-4, rtol=1e-4)


def test_latent_blocks_are_start_k_pads_end(tiny):
    model, processor = tiny
    spec = get_latent_spec(model)
    batch = image_prompts(processor, QUESTIONS)
    force = ForceAt(batch["input_ids"].shape[1], {0: [1, 9], 1: [3]}, spec.start_id)
    out = _generate(model, batch, max_new_tokens=16, logits_processor=LogitsProcessorList([force]))

    assert out.completion_ids.shape == (2, 16)
    row0 = out.completion_ids[0].tolist()
    assert row0[1] == spec.start_id and row0[2:6] == [spec.pad_id] * 4 and row0[6] == spec.end_id
    assert row0[9] == spec.start_id and row0[10:14] == [spec.pad_id] * 4 and row0[14] == spec.end_id
    assert out.num_latent_blocks.tolist() == [2, 1]
    assert out.latent_mask.sum(-1).tolist() == [8, 4]
    assert torch.equal(out.latent_mask, out.completion_ids == spec.pad_id)
    for row in out.completion_ids:
        assert latent_blocks_well_formed(row, spec)
    assert out.latent_embeds[out.latent_mask].abs().sum(-1).gt(0).all()
    assert out.latent_embeds[~out.latent_mask].abs().sum() == 0
    assert torch.equal(out.sequences[:, : batch["input_ids"].shape[1]], batch["input_ids"])


def test_latent_vectors_are_fed_back_hidden_states(tiny):
    """Each latent vector is the last-layer hidden state at the previous position (checked by a re-forward)."""
    model, processor = tiny
    spec = get_latent_spec(model)
    batch = image_prompts(processor, QUESTIONS[:1])
    prompt_len = batch["input_ids"].shape[1]
    force = ForceAt(prompt_len, {0: [0]}, spec.start_id)
    out = _generate(model, batch, max_new_tokens=7, logits_processor=LogitsProcessorList([force]))
    ids = out.sequences
    types = torch.cat([batch["mm_token_type_ids"], torch.zeros_like(out.completion_ids)], 1)
    with inject_latents(model, spec.pad_id, out.latent_embeds[out.latent_mask]):
        hidden = model.model(input_ids=ids, attention_mask=torch.ones_like(ids), mm_token_type_ids=types,
                             pixel_values=batch["pixel_values"], image_grid_thw=batch["image_grid_thw"]).last_hidden_state
    for k in range(4):  # pad k sits at completion index 1 + k; its vector is the hidden state one position earlier
        torch.testing.assert_close(out.latent_embeds[0, 1 + k], hidden[0, prompt_len + k], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("use_video", [False, True])
def test_loop_equals_full_reforward(tiny, use_video):
    """Logits of the cached loop equal one teacher-forced forward with the latent vectors inserted."""
    model, processor = tiny
    spec = get_latent_spec(model)
    batch = video_prompt(processor, QUESTIONS[0]) if use_video else image_prompts(processor, QUESTIONS)
    prompt_len = batch["input_ids"].shape[1]
    force = ForceAt(prompt_len, {0: [2], 1: [0, 7]}, spec.start_id)
    out = _generate(model, batch, max_new_tokens=14, output_logits=True, logits_processor=LogitsProcessorList([force]))
    assert out.latent_mask.any()
    _assert_reforward_equals(model, batch, out)


def test_cached_equals_uncached(tiny):
    model, processor = tiny
    spec = get_latent_spec(model)
    batch = image_prompts(processor, QUESTIONS)
    force = LogitsProcessorList([ForceAt(batch["input_ids"].shape[1], {0: [1], 1: [4]}, spec.start_id)])
    for sample in (False, True):
        kwargs = dict(max_new_tokens=12, logits_processor=force, do_sample=sample, temperature=0.9, top_p=0.95)
        cached = _generate(model, batch, generator=torch.Generator().manual_seed(3), **kwargs)
        uncached = _generate(model, batch, generator=torch.Generator().manual_seed(3), use_cache=False, **kwargs)
        assert torch.equal(cached.completion_ids, uncached.completion_ids)
        torch.testing.assert_close(cached.latent_embeds, uncached.latent_embeds, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("use_video", [False, True])
def test_static_cache_equals_dynamic_loop(tiny, use_video):
    """The static-cache loop (what the CUDA-graphed GPU step runs) gives today's tokens, latent vectors and logits, with
    left-padded rows and blocks opening at different steps; a second call reuses the cache and gives them again."""
    model, processor = tiny
    spec = get_latent_spec(model)
    batch = video_prompt(processor, QUESTIONS[0]) if use_video else image_prompts(processor, QUESTIONS + ["Short?"])
    assert use_video or not bool(batch["attention_mask"].all())  # left padding is exercised
    force = LogitsProcessorList([ForceAt(batch["input_ids"].shape[1], {0: [1, 8], 1: [4], 2: [0]}, spec.start_id)])
    kwargs = dict(max_new_tokens=15, logits_processor=force, output_logits=True)
    dynamic = _generate(model, batch, **kwargs)
    assert dynamic.latent_mask.any()
    for _ in range(2):
        static = _generate(model, batch, cache_implementation="static", **kwargs)
        assert torch.equal(static.completion_ids, dynamic.completion_ids)
        torch.testing.assert_close(static.logits, dynamic.logits, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(static.latent_embeds, dynamic.latent_embeds, atol=1e-5, rtol=1e-5)
    sampled = [_generate(model, batch, cache_implementation=cache, do_sample=True, temperature=0.8,
                         generator=torch.Generator().manual_seed(5), max_new_tokens=10) for cache in ("dynamic", "static")]
    assert torch.equal(sampled[0].completion_ids, sampled[1].completion_ids)
    with pytest.raises(ValueError, match="cache_implementation must be"):
        _generate(model, batch, cache_implementation="paged", max_new_tokens=2)
    with pytest.raises(ValueError, match="cuda_graph needs cache_implementation='static' and CUDA inputs"):
        _generate(model, batch, cuda_graph=True, cache_implementation="static", max_new_tokens=2)


def test_batch_equals_rows_one_by_one(tiny):
    """No batch coupling: rows entering / inside / leaving blocks at different steps match single-row runs."""
    model, processor = tiny
    spec = get_latent_spec(model)
    questions = QUESTIONS + ["Short?"]
    schedule = {0: [0, 6], 1: [3], 2: [1]}
    batch = image_prompts(processor, questions)
    force = ForceAt(batch["input_ids"].shape[1], schedule, spec.start_id)
    together = _generate(model, batch, max_new_tokens=14, logits_processor=LogitsProcessorList([force]))
    for row, question in enumerate(questions):
        single = image_prompts(processor, [question], seed=row)
        force = ForceAt(single["input_ids"].shape[1], schedule, spec.start_id, row_offset=row)
        alone = _generate(model, single, max_new_tokens=14, logits_processor=LogitsProcessorList([force]))
        length = alone.completion_ids.shape[1]
        assert together.completion_ids[row, :length].tolist() == alone.completion_ids[0].tolist()
        torch.testing.assert_close(together.latent_embeds[row, :length], alone.latent_embeds[0], atol=1e-4, rtol=1e-3)


def test_stock_model_matches_hf_generate(stock_tiny):
    model, processor = stock_tiny
    batch = image_prompts(processor, QUESTIONS)
    ours = generate_with_latents(model, **batch, max_new_tokens=10)
    reference = model.generate(**batch, max_new_tokens=10, do_sample=False)
    assert ours.sequences.tolist() == reference[:, : ours.sequences.shape[1]].tolist()
    assert not ours.latent_mask.any()


def test_stops_at_eos_and_pads(tiny):
    model, processor = tiny
    batch = image_prompts(processor, QUESTIONS)
    eos = processor.tokenizer.eos_token_id
    force = ForceAt(batch["input_ids"].shape[1], {0: [2]}, eos)
    out = _generate(model, batch, max_new_tokens=6, logits_processor=LogitsProcessorList([force]))
    assert out.completion_ids[0, 2] == eos
    assert out.completion_mask[0].tolist() == [True, True, True, False, False, False]
    assert (out.completion_ids[0, 3:] == processor.tokenizer.pad_token_id).all()


def test_sampling_is_seeded(tiny):
    model, processor = tiny
    batch = image_prompts(processor, QUESTIONS)
    runs = [_generate(model, batch, max_new_tokens=8, do_sample=True, generator=torch.Generator().manual_seed(s))
            for s in (1, 1, 2)]
    assert torch.equal(runs[0].completion_ids, runs[1].completion_ids)
    assert not torch.equal(runs[0].completion_ids, runs[2].completion_ids)


def test_video_temporal_positions_follow_fps(tiny):
    """At 1 fps a temporal patch spans 2 s, so consecutive temporal groups sit 2 * tokens_per_second apart."""
    model, processor = tiny
    batch = video_prompt(processor, "q", fps=1.0)
    assert batch["second_per_grid_ts"].tolist() == [2.0]
    positions, _ = rope_positions(model.model, batch["input_ids"], batch["attention_mask"], dict(batch))
    video = batch["mm_token_type_ids"][0] == 2
    t_axis = positions[0, 0, video].unique()
    assert (t_axis[1:] - t_axis[:-1]).tolist() == [2 * model.config.vision_config.tokens_per_second]


def test_bad_inputs(tiny):
    model, processor = tiny
    spec = get_latent_spec(model)
    batch = image_prompts(processor, QUESTIONS[:1])
    with pytest.raises(TypeError, match="unexpected arguments \\['pixel_value'\\]"):
        generate_with_latents(model, batch["input_ids"], pixel_value=batch["pixel_values"])
    ids = torch.tensor([[1, spec.pad_id, 2]])
    with pytest.raises(ValueError, match="must not contain <\\|latent_pad\\|>"):
        generate_with_latents(model, ids, max_new_tokens=2)


def _calibrated(model, norm: float):
    """The tiny model with a recorded fed-back latent norm (``latent_feedback_norm: target`` in DIFT records one)."""
    from trl_latent.tokens import set_feedback_norm

    set_feedback_norm(model, norm)
    return model


def test_calibrated_feedback_is_rescaled_and_stays_exact(tiny):
    """With a recorded norm every fed-back vector has that norm and the direction of the hidden state it came from,
    and the loop still equals a teacher-forced re-forward (cached and uncached alike)."""
    model, processor = tiny
    plain_spec = get_latent_spec(model)
    batch = image_prompts(processor, QUESTIONS)
    force = LogitsProcessorList([ForceAt(batch["input_ids"].shape[1], {0: [1], 1: [0, 7]}, plain_spec.start_id)])
    raw = _generate(model, batch, max_new_tokens=14, logits_processor=force)
    model = _calibrated(model, 0.37)
    spec = get_latent_spec(model)
    assert spec.feedback_norm == pytest.approx(0.37)
    out = _generate(model, batch, max_new_tokens=14, output_logits=True, logits_processor=force)
    vectors = out.latent_embeds[out.latent_mask]
    torch.testing.assert_close(vectors.norm(dim=-1), torch.full((vectors.shape[0],), 0.37), atol=1e-5, rtol=0)
    # the first vector of each row comes from the same prompt state as uncalibrated: same direction, new norm
    first = out.latent_mask.float().argmax(-1)
    for row in range(2):
        a, b = raw.latent_embeds[row, first[row]], out.latent_embeds[row, first[row]]
        assert b.norm() < 0.9 * a.norm() or b.norm() > 1.1 * a.norm()  # the rescale did something
        torch.testing.assert_close(torch.nn.functional.cosine_similarity(a, b, dim=0), torch.tensor(1.0), atol=1e-5, rtol=0)
    uncached = _generate(model, batch, max_new_tokens=14, use_cache=False, logits_processor=force)
    assert torch.equal(out.completion_ids, uncached.completion_ids)
    torch.testing.assert_close(out.latent_embeds, uncached.latent_embeds, atol=1e-5, rtol=1e-4)
    _assert_reforward_equals(model, batch, out, vectors)


def test_centred_feedback_rescales_each_slots_deviation_and_stays_exact(tiny):
    """With a recorded center (``latent_feedback_norm: centred``) the i-th vector of a block is its slot's center plus
    the recorded norm along the state's deviation from that center, with rows in different slots at the same step; the
    loop still equals a teacher-forced re-forward."""
    from trl_latent.tokens import set_feedback_norm

    model, processor = tiny
    spec = get_latent_spec(model)
    hidden = model.config.text_config.hidden_size if hasattr(model.config, "text_config") else model.config.hidden_size
    batch = image_prompts(processor, QUESTIONS)
    force = LogitsProcessorList([ForceAt(batch["input_ids"].shape[1], {0: [1], 1: [0, 7]}, spec.start_id)])
    raw = _generate(model, batch, max_new_tokens=14, logits_processor=force)
    center = torch.randn(spec.latent_size, hidden, generator=torch.Generator().manual_seed(1))
    set_feedback_norm(model, 0.37, center)
    spec = get_latent_spec(model)
    out = _generate(model, batch, max_new_tokens=14, output_logits=True, logits_processor=force)
    for row in range(2):
        vectors = out.latent_embeds[row][out.latent_mask[row]]
        deviation = vectors - center[torch.arange(len(vectors)) % spec.latent_size]
        torch.testing.assert_close(deviation.norm(dim=-1), torch.full((len(vectors),), 0.37), atol=1e-5, rtol=0)
        first = int(out.latent_mask[row].float().argmax())  # from the prompt state, as uncalibrated
        torch.testing.assert_close(torch.nn.functional.cosine_similarity(
            deviation[0], raw.latent_embeds[row, first] - center[0], dim=0), torch.tensor(1.0), atol=1e-5, rtol=0)
    _assert_reforward_equals(model, batch, out)


def test_latent_inputs_replace_the_fed_back_vectors_in_order(tiny):
    """Diagnostics feed given vectors (oracle imagery, another question's latents): a row's first N latent positions
    get them in order, later positions and rows without any feed back their own states."""
    model, processor = tiny
    spec = get_latent_spec(model)
    hidden = model.config.text_config.hidden_size if hasattr(model.config, "text_config") else model.config.hidden_size
    batch = image_prompts(processor, QUESTIONS)
    force = LogitsProcessorList([ForceAt(batch["input_ids"].shape[1], {0: [0, 7], 1: [0]}, spec.start_id)])
    own = _generate(model, batch, max_new_tokens=14, logits_processor=force)
    given = torch.randn(spec.latent_size + 1, hidden, generator=torch.Generator().manual_seed(0))
    out = _generate(model, batch, max_new_tokens=14, logits_processor=force, latent_inputs=[given, None])
    fed = out.latent_embeds[0][out.latent_mask[0]]
    torch.testing.assert_close(fed[: len(given)], given)
    assert not torch.allclose(fed[len(given):], given[-1].expand_as(fed[len(given):]))
    torch.testing.assert_close(out.latent_embeds[1], own.latent_embeds[1])  # row 1 unchanged (batch rows independent)
    uncached = _generate(model, batch, max_new_tokens=14, logits_processor=force, latent_inputs=[given, None],
                         use_cache=False)
    assert torch.equal(out.completion_ids, uncached.completion_ids)
    torch.testing.assert_close(out.latent_embeds, uncached.latent_embeds, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="latent_inputs has 1 rows"):
        _generate(model, batch, max_new_tokens=4, latent_inputs=[given])
