"""Long, low-fps videos: the latent loop continues each row where a teacher-forced forward puts its completion.

A 16-frame clip at 0.1 fps spans 160 s, so its temporal mRoPE ids reach far past the text that follows it. Batches
mix such a clip with a short 1 fps one, so rows whose vision block does and does not outgrow the text share a step.
"""

from __future__ import annotations

import torch
from tiny_inputs import random_frames
from transformers import LogitsProcessorList

from test_generation import ForceAt
from trl_latent.generation import generate_with_latents
from trl_latent.latents import inject_latents
from trl_latent.tokens import get_latent_spec

CLIPS = ((4, 1.0), (16, 0.1))  # (frames, fps): a 4 s clip and a 160 s one


def mixed_video_batch(processor, clips=CLIPS):
    videos = [random_frames(seed, num_frames=count) for seed, (count, _) in enumerate(clips)]
    messages = [[{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": f"Clip {i}: where?"}]}]
                for i in range(len(clips))]
    processor.tokenizer.padding_side = "left"
    return processor(
        text=[processor.apply_chat_template(m, add_generation_prompt=True) for m in messages], videos=videos,
        videos_kwargs={"video_metadata": [{"fps": fps, "total_num_frames": count, "frames_indices": list(range(count))}
                                          for count, fps in clips]},
        padding=True, return_tensors="pt",
    )


def teacher_forced_logits(model, batch, out, spec):
    """One forward of prompt + completion through the model's own forward, the loop's latent vectors re-inserted."""
    ids = out.sequences
    mask = torch.cat([batch["attention_mask"], torch.ones_like(out.completion_ids)], dim=1)
    types = torch.cat([batch["mm_token_type_ids"], torch.zeros_like(out.completion_ids)], dim=1)
    visual = {k: v for k, v in batch.items() if k not in ("input_ids", "attention_mask", "mm_token_type_ids")}
    with torch.no_grad(), inject_latents(model, spec.pad_id, out.latent_embeds[out.latent_mask]):
        logits = model(input_ids=ids, attention_mask=mask, mm_token_type_ids=types, **visual).logits
    return logits[:, batch["input_ids"].shape[1] - 1 : -1].float()


def test_loop_equals_teacher_forcing_on_long_low_fps_video(family_tiny):
    """Every family: Qwen2.5-VL spreads the frames by real time, Qwen2-VL by index, Qwen3-VL writes timestamps."""
    model, processor = family_tiny
    spec = get_latent_spec(model)
    batch = mixed_video_batch(processor)
    if model.config.model_type == "qwen2_5_vl":
        assert batch["second_per_grid_ts"].tolist() == [2.0, 20.0]
    if model.config.model_type == "qwen3_vl":  # one block per temporal patch, after its timestamp
        assert "<145.0 seconds>" in processor.tokenizer.decode(batch["input_ids"][1])
    force = ForceAt(batch["input_ids"].shape[1], {0: [1], 1: [0, 8]}, spec.start_id)
    out = generate_with_latents(model, **batch, max_new_tokens=16, output_logits=True,
                                logits_processor=LogitsProcessorList([force]))
    assert out.num_latent_blocks.tolist() == [1, 2]
    reference = teacher_forced_logits(model, batch, out, spec)
    valid = out.completion_mask
    difference = (out.logits[valid] - reference[valid]).abs().max().item()
    assert difference <= 1e-4, f"loop vs teacher-forced logits differ by {difference:.2e}"


def test_stock_generate_agrees_on_long_low_fps_video(stock_tiny):
    """With the reference rule, transformers' own ``generate`` (rope deltas from the patched ``get_rope_index``)
    continues where our loop does, so a stock checkpoint decodes the same text either way."""
    model, processor = stock_tiny
    batch = mixed_video_batch(processor)
    ours = generate_with_latents(model, **batch, max_new_tokens=10)
    theirs = model.generate(**batch, max_new_tokens=10, do_sample=False)
    assert ours.sequences.tolist() == theirs[:, : ours.sequences.shape[1]].tolist()
