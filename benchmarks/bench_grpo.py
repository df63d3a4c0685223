"""4DRL overhead: GRPO step time vs stock GRPOTrainer, vision once per prompt vs per row on video prompts, and
rollout tokens/s with latents vs plain HF generate.

    python benchmarks/bench_grpo.py [--steps 4] [--new-tokens 32] [--device cpu|cuda] [--size tiny|small|3b]
                                    [--frames 16] [--frame-side 224] [--generations 4]

Step time: both trainers train the same stock tiny Qwen2.5-VL (no latent tokens, so both roll out plain text) on the
same image prompts for ``--steps`` steps; the first step is warm-up and dropped; TRL's own ``step_time`` metric is
compared (target: LatentGRPOTrainer ≤ 1.2× stock). Vision once per prompt: LatentGRPOTrainer on two video prompts
(``--frames`` frames of ``--frame-side`` pixels) × ``--generations`` rollouts, ``vision_once_per_prompt`` on and off in
the same run; besides the step time, the seconds the vision tower's forwards take per step (rollout prefill included,
which encodes every row) are printed (target: the log-prob passes' vision share divided by about ``--generations``).
Rollout: ``generate_with_latents`` on a latent model whose every row
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
from PIL import Image  # noqa: E402
from tiny_inputs import image_prompts, random_frames, random_image  # noqa: E402

from trl_latent.data import build_prompt  # noqa: E402
from trl_latent.generation import generate_with_latents  # noqa: E402
from trl_latent.grpo import LatentGRPOConfig, LatentGRPOTrainer  # noqa: E402
from trl_latent.latents import vision_backbone  # noqa: E402
from trl_latent.testing import MODEL_SIZES, build_processor, build_tiny_qwen2_5_vl  # noqa: E402

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


class TowerClock:
    """Wall seconds spent in the vision tower's forwards (pre/post hooks; the backward is not included)."""

    def __init__(self, tower: torch.nn.Module) -> None:
        self.seconds, self.started = 0.0, 0.0
        self.handles = [tower.register_forward_pre_hook(self.start), tower.register_forward_hook(self.stop)]

    def start(self, *args) -> None:
        self.started = time.perf_counter()

    def stop(self, *args) -> None:
        self.seconds += time.perf_counter() - self.started


def bench_video(args, model, processor, folder: Path) -> tuple[dict[bool, tuple[float, float]], dict[bool, float]]:
    """Per ``vision_once_per_prompt`` setting: mean step time and vision-tower forward seconds per step; then the
    median seconds of the policy pass (log-probs, loss, backward: what the setting changes) on one rollout batch, the
    two settings alternating so that load on a shared machine hits both alike."""
    rows = []
    for clip in range(2):
        paths = []
        for i, frame in enumerate(random_frames(clip, num_frames=args.frames, size=args.frame_side)):
            paths.append(str(folder / f"clip{clip}_{i}.png"))
            Image.fromarray(frame).save(paths[-1])
        rows.append({"prompt": f"Clip {clip}. {QUESTION}", "frames": paths})
    processor.tokenizer.padding_side = "left"
    steps = {}
    for share in (False, True):
        trainer = LatentGRPOTrainer(
            copy.deepcopy(model), reward_funcs=length_reward, processing_class=copy.deepcopy(processor),
            args=LatentGRPOConfig(
                output_dir=str(folder / f"video-{share}"), use_cpu=args.device == "cpu", bf16=False,
                num_generations=args.generations, per_device_train_batch_size=2 * args.generations,
                max_completion_length=args.new_tokens, max_steps=args.steps, logging_steps=1, report_to=[],
                save_strategy="no", activation_checkpointing=False, seed=0, fps=1.0, frames_fps=1.0,
                max_frames=args.frames, max_pixels=args.frame_side**2, vision_once_per_prompt=share,
            ),
            train_dataset=Dataset.from_list(rows * args.steps),
        )
        clock = TowerClock(vision_backbone(trainer.model).visual)
        times = step_times(trainer)
        steps[share] = (statistics.mean(times[1:]), clock.seconds / len(times))

    batch = trainer._generate_and_score_completions([row for row in rows for _ in range(args.generations)])
    passes: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.steps):
        for share in (False, True):
            trainer.args.vision_once_per_prompt = share
            trainer.model.zero_grad()
            start = time.perf_counter()
            trainer.compute_loss(trainer.model, batch).backward()
            passes[share].append(time.perf_counter() - start)
    return steps, {share: statistics.median(seconds) for share, seconds in passes.items()}


class OpenBlockAtStep(LogitsProcessor):
    """Every row picks ``<|latent_start|>`` at completion step 1, so each rollout runs one latent block."""

    def __init__(self, start_id: int, prompt_length: int) -> None:
        self.start_id, self.prompt_length = start_id, prompt_length

    def __call__(self, input_ids, scores):
        if input_ids.shape[1] - self.prompt_length == 1:
            scores[:] = float("-inf")
            scores[:, self.start_id] = 0.0
        return scores


def bench_rollout(model, processor, *, device: str, new_tokens: int, batch_size: int = 4,
                  cuda_graph: bool = False) -> dict:
    """Tokens/s of HF ``generate`` and of ``generate_with_latents`` (one latent block per row), with its dynamic and
    its static cache (``cuda_graph``: its step replayed as a CUDA graph), on ``batch_size`` image prompts,
    ``new_tokens`` tokens each, after one warm-up call of each."""
    inputs = image_prompts(processor, [QUESTION] * batch_size)
    inputs = {k: v.to(device) for k, v in inputs.items()}
    prompt_length = inputs["input_ids"].shape[1]
    model = model.to(device)
    kwargs = dict(max_new_tokens=new_tokens, do_sample=True, eos_token_id=[], pad_token_id=processor.tokenizer.pad_token_id)

    def timed(fn) -> float:
        fn()  # warm-up (and, for the CUDA graph, its capture)
        synchronize(device)
        start = time.perf_counter()
        tokens = fn()
        synchronize(device)
        return tokens / (time.perf_counter() - start)

    def plain() -> int:
        out = model.generate(**inputs, min_new_tokens=new_tokens, **kwargs)
        return (out.shape[1] - prompt_length) * out.shape[0]

    def latent(**options) -> int:
        forcing = LogitsProcessorList([OpenBlockAtStep(model.config.latent_start_id, prompt_length)])
        out = generate_with_latents(model, logits_processor=forcing, **inputs, **kwargs, **options)
        assert bool(out.latent_mask.any(-1).all()), "every row should have run a latent block"
        return out.completion_ids.numel()

    results = dict(hf_tokens_per_s=timed(plain), latent_tokens_per_s=timed(latent), cuda_graph=cuda_graph)
    try:
        results["latent_static_tokens_per_s"] = timed(lambda: latent(cache_implementation="static", cuda_graph=cuda_graph))
    except Exception as error:  # a failed graph capture is reported, and the eager static step timed
        if not cuda_graph:
            raise
        results.update(cuda_graph=False, cuda_graph_error=f"{type(error).__name__}: {error}"[:500])
        results["latent_static_tokens_per_s"] = timed(lambda: latent(cache_implementation="static"))
    return results


def synchronize(device: str | torch.device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", choices=tuple(MODEL_SIZES), default="tiny")
    parser.add_argument("--frames", type=int, default=16, help="frames per video of the vision-once comparison")
    parser.add_argument("--frame-side", type=int, default=224, help="frame side in pixels (a multiple of 28)")
    parser.add_argument("--generations", type=int, default=4, help="rollouts per video prompt")
    args = parser.parse_args()
    text, vision = MODEL_SIZES[args.size]
    shape = dict(text=text, vision=vision)
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

    with tempfile.TemporaryDirectory() as folder:
        video_processor = build_processor(max_pixels=args.frame_side**2)  # the test processor's cap is 56x56
        video, passes = bench_video(args, stock_model, video_processor, Path(folder))
    (per_row, per_row_vision), (shared, shared_vision) = video[False], video[True]
    print(f"GRPO on video ({args.size}, {args.device}, 2 prompts x {args.generations} generations, "
          f"{args.frames} frames of {args.frame_side}x{args.frame_side}, {args.new_tokens} tokens):")
    print(f"  vision per rollout row   step {per_row:.3f} s   vision tower forwards {per_row_vision:.3f} s/step   "
          f"policy pass {passes[False]:.3f} s")
    print(f"  vision once per prompt   step {shared:.3f} s   vision tower forwards {shared_vision:.3f} s/step   "
          f"policy pass {passes[True]:.3f} s")
    print(f"  ratio (once / per row)   step {shared / per_row:.2f}x   policy pass {passes[True] / passes[False]:.2f}x")

    latent_model, processor = build_tiny_qwen2_5_vl(latent_size=4, dtype=dtype, **shape)
    rollout = bench_rollout(latent_model, processor, device=args.device, new_tokens=args.new_tokens,
                            cuda_graph=args.device == "cuda")
    plain_tps, latent_tps = rollout["hf_tokens_per_s"], rollout["latent_tokens_per_s"]
    print(f"Rollout tokens/s (batch 4, {args.new_tokens} new tokens, one latent block per row):")
    print(f"  HF generate             {plain_tps:.1f} tok/s")
    print(f"  generate_with_latents   {latent_tps:.1f} tok/s   ratio {latent_tps / plain_tps:.2f}x")
    static_tps = rollout["latent_static_tokens_per_s"]
    print(f"  ... static cache{', CUDA graph' if rollout['cuda_graph'] else ''}  {static_tps:.1f} tok/s   "
          f"ratio {static_tps / plain_tps:.2f}x")


if __name__ == "__main__":
    main()
