"""4DRL overhead: GRPO step time vs stock GRPOTrainer, and rollout tokens/s with latents vs plain HF generate.

    python benchmarks/bench_grpo.py [--steps 4] [--new-tokens 32] [--device cpu|cuda] [--size tiny|3b]

Step time: both trainers train the same stock tiny Qwen2.5-VL (no latent tokens, so both roll out plain text) on the
same image prompts for ``--steps`` steps; the first step is warm-up and dropped; TRL's own ``step_time`` metric is
compared (target: LatentGRPOTrainer ≤ 1.2× stock). Rollout: ``generate_with_latents`` on a latent model whose every row
opens a latent block at its second step, against ``model.generate`` on the same prompts and length.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from datasets import Dataset
from transformers import LogitsProcessor, LogitsProcessorList
from trl import GRPOConfig, GRPOTrainer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from tiny_inputs import image_prompts, random_image  # noqa: E402

from trl_latent.data import build_prompt  # noqa: E402
from trl_latent.generation import generate_with_latents  # noqa: E402
from trl_latent.grpo import LatentGRPOConfig, LatentGRPOTrainer  # noqa: E402
from trl_latent.testing import QWEN2_5_VL_3B_TEXT, QWEN2_5_VL_3B_VISION, build_tiny_qwen2_5_vl  # noqa: E402

QUESTION = build_prompt("Which way does the red sphere move?\nA. left\nB. right\nC. up\nD. down")


def length_reward(completions, **kwargs):
    return [float(len(c[0]["content"])) for c in completions]


def step_times(trainer) -> list[float]:
    trainer.train()
    return [entry["step_time"] for entry in trainer.state.log_history if "step_time" in entry]


def bench_steps(
    model, processor, folder: Path, *, device: str, new_tokens: int, steps: int, bf16: bool = False
) -> tuple[float, float]:
    """Mean step time of stock ``GRPOTrainer`` and ``LatentGRPOTrainer`` (first step dropped), batch 4 = 2 prompts x
    2 generations of ``new_tokens`` tokens on one image prompt."""
    random_image(0).save(folder / "image.png")
    common = dict(
        use_cpu=device == "cpu", bf16=bf16, num_generations=2, per_device_train_batch_size=4,
        max_completion_length=new_tokens, max_steps=steps, logging_steps=1, report_to=[],
        save_strategy="no", activation_checkpointing=False, seed=0,
    )
    processor.tokenizer.padding_side = "left"
    stock = GRPOTrainer(
        copy.deepcopy(model), reward_funcs=length_reward, processing_class=copy.deepcopy(processor),
        args=GRPOConfig(output_dir=str(folder / "stock"), **common),
        train_dataset=Dataset.from_list([{"prompt": [{"role": "user", "content": QUESTION}], "image": random_image(0)}] * 8),
    )
    stock_step = statistics.mean(step_times(stock)[1:])
    del stock  # one copy of the model at a time (the 3B shape on GPU)
    ours = LatentGRPOTrainer(
        copy.deepcopy(model), reward_funcs=length_reward, processing_class=copy.deepcopy(processor),
        args=LatentGRPOConfig(output_dir=str(folder / "ours"), **common),
        train_dataset=Dataset.from_list([{"prompt": QUESTION, "image": str(folder / "image.png")}] * 8),
    )
    return stock_step, statistics.mean(step_times(ours)[1:])


class OpenBlockAtStep(LogitsProcessor):
    """Every row picks ``<|latent_start|>`` at completion step 1, so each rollout runs one latent block."""

    def __init__(self, start_id: int, prompt_length: int) -> None:
        self.start_id, self.prompt_length = start_id, prompt_length

    def __call__(self, input_ids, scores):
        if input_ids.shape[1] - self.prompt_length == 1:
            scores[:] = float("-inf")
            scores[:, self.start_id] = 0.0
        return scores


def bench_rollout(model, processor, *, device: str, new_tokens: int, batch_size: int = 4) -> tuple[float, float]:
    """Tokens/s of HF ``generate`` and of ``generate_with_latents`` (one latent block per row) on ``batch_size``
    image prompts, ``new_tokens`` tokens each, after one warm-up call of each."""
    inputs = image_prompts(processor, [QUESTION] * batch_size)
    inputs = {k: v.to(device) for k, v in inputs.items()}
    prompt_length = inputs["input_ids"].shape[1]
    model = model.to(device)
    kwargs = dict(max_new_tokens=new_tokens, do_sample=True, eos_token_id=[], pad_token_id=processor.tokenizer.pad_token_id)

    def timed(fn) -> float:
        fn()  # warm-up
        synchronize(device)
        start = time.perf_counter()
        tokens = fn()
        synchronize(device)
        return tokens / (time.perf_counter() - start)

    def plain() -> int:
        out = model.generate(**inputs, min_new_tokens=new_tokens, **kwargs)
        return (out.shape[1] - prompt_length) * out.shape[0]

    def latent() -> int:
        forcing = LogitsProcessorList([OpenBlockAtStep(model.config.latent_start_id, prompt_length)])
        out = generate_with_latents(model, logits_processor=forcing, **inputs, **kwargs)
        assert bool(out.latent_mask.any(-1).all()), "every row should have run a latent block"
        return out.completion_ids.numel()

    return timed(plain), timed(latent)


def synchronize(device: str | torch.device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", choices=("tiny", "3b"), default="tiny")
    args = parser.parse_args()
    shape = {} if args.size == "tiny" else dict(text=QWEN2_5_VL_3B_TEXT, vision=QWEN2_5_VL_3B_VISION)
    dtype = torch.float32 if args.device == "cpu" else torch.bfloat16
    torch.manual_seed(0)

    stock_model, processor = build_tiny_qwen2_5_vl(latent_size=None, dtype=dtype, **shape)
    with tempfile.TemporaryDirectory() as folder:
        stock_step, ours_step = bench_steps(
            stock_model, processor, Path(folder), device=args.device, new_tokens=args.new_tokens, steps=args.steps,
            bf16=args.device != "cpu",
        )
    print(f"GRPO step time ({args.size}, {args.device}, batch 4 = 2 prompts x 2 generations, {args.new_tokens} tokens):")
    print(f"  stock GRPOTrainer   {stock_step:.3f} s")
    print(f"  LatentGRPOTrainer   {ours_step:.3f} s   ratio {ours_step / stock_step:.2f}x (target <= 1.2x)")

    latent_model, processor = build_tiny_qwen2_5_vl(latent_size=4, dtype=dtype, **shape)
    plain_tps, latent_tps = bench_rollout(latent_model, processor, device=args.device, new_tokens=args.new_tokens)
    print(f"Rollout tokens/s (batch 4, {args.new_tokens} new tokens, one latent block per row):")
    print(f"  HF generate             {plain_tps:.1f} tok/s")
    print(f"  generate_with_latents   {latent_tps:.1f} tok/s   ratio {latent_tps / plain_tps:.2f}x")


if __name__ == "__main__":
    main()
