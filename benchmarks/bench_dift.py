"""Step time and peak memory of LatentImageryTrainer vs a stock SFTTrainer on the same model and batch, and of
DIFT's self-fed latents (``latent_feedback: self``) vs its teacher forcing.

Not a test: run it by hand and read the ratios (target: DIFT <= 1.10x the SFT step time).

    python benchmarks/bench_dift.py                      # tiny random Qwen2.5-VL, CPU
    python benchmarks/bench_dift.py --size 3b --steps 10 # real 3B shape (random weights), GPU, bf16

Both trainers see the same collated batch (the DIFT collator's output; the stock trainer gets it without the
imagery keys, so its sequence still holds the latent blocks, with the learned pad embedding instead of injected
vectors). The difference is therefore exactly what DIFT adds: encoding the imagery images, the injection hook, the
hidden-state hook and the cosine loss. The self-fed row trains the same batch with the language model run in lockstep
rounds through the KV cache (one batched round per latent position), so its ratio to the teacher row is the price of
feeding back the model's own hidden states.
"""

from __future__ import annotations

import argparse
import copy
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "dift"))


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS (monotonic on CPU)


def time_steps(trainer, batch: dict, steps: int, warmup: int) -> tuple[float, float]:
    """Median seconds per training step (forward + backward + optimizer) and peak memory."""
    from trl import SFTTrainer

    model = trainer.model
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    device = next(model.parameters()).device
    times = []
    for step in range(warmup + steps):
        inputs = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        if device.type == "cuda":
            torch.cuda.synchronize()
            if step == warmup:
                torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        with trainer.compute_loss_context_manager():
            loss = SFTTrainer.compute_loss(trainer, model, inputs) if type(trainer) is SFTTrainer else \
                trainer.compute_loss(model, inputs)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= warmup:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2], peak_memory_mb(device)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("tiny", "3b"), default="tiny")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=2)
    parser.add_argument("--num_frames", type=int, default=8)
    parser.add_argument("--frame_size", type=int, default=56)
    options = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from dift_data import dift_record, write_jsonl
    from trl import SFTConfig, SFTTrainer

    from trl_latent.data import load_records
    from trl_latent.dift import LatentImageryConfig, LatentImageryTrainer
    from trl_latent.testing import (
        QWEN2_5_VL_3B_TEXT,
        QWEN2_5_VL_3B_VISION,
        build_tiny_qwen2_5_vl,
    )

    cuda = torch.cuda.is_available()
    dtype = torch.bfloat16 if cuda else torch.float32
    shapes = dict(text=QWEN2_5_VL_3B_TEXT, vision=QWEN2_5_VL_3B_VISION) if options.size == "3b" else {}
    model, processor = build_tiny_qwen2_5_vl(latent_size=4, dtype=dtype, **shapes)
    if cuda:
        model.cuda()
    pixels = options.frame_size**2

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows = [dift_record(root, i, num_imagery=2, num_frames=options.num_frames) for i in range(options.batch_size)]
        records = load_records(write_jsonl(root / "train.jsonl", rows))
        common = dict(output_dir=str(root / "out"), report_to=[], use_cpu=not cuda, bf16=cuda,
                      activation_checkpointing=False, per_device_train_batch_size=options.batch_size)
        dift, dift_self = (
            LatentImageryTrainer(
                copy.deepcopy(model), processing_class=processor, train_dataset=records,
                args=LatentImageryConfig(max_pixels=max(pixels, 784), imagery_max_pixels=max(pixels, 4 * 784),
                                         latent_feedback=feedback, **common),
            )
            for feedback in ("teacher", "self")
        )
        batch = dift.data_collator([records[i] for i in range(options.batch_size)])
        stock_batch = {k: v for k, v in batch.items() if not k.startswith("latent_")}
        stock = SFTTrainer(
            copy.deepcopy(model), processing_class=processor, train_dataset=records, data_collator=lambda x: x,
            args=SFTConfig(remove_unused_columns=False, dataset_kwargs={"skip_prepare_dataset": True},
                           max_length=None, **common),
        )
        # stock first: on CPU the peak RSS only grows, so the DIFT figure includes the stock one
        sft_time, sft_mem = time_steps(stock, stock_batch, options.steps, options.warmup)
        dift_time, dift_mem = time_steps(dift, batch, options.steps, options.warmup)
        self_time, self_mem = time_steps(dift_self, batch, options.steps, options.warmup)

    device = torch.cuda.get_device_name(0) if cuda else "cpu"
    print(f"device: {device}  size: {options.size}  batch: {options.batch_size} x {batch['input_ids'].shape[1]} tokens, "
          f"{batch['latent_image_grid_thw'].shape[0]} imagery images")
    print(f"{'':8}{'step s':>10}{'peak MiB':>12}")
    print(f"{'SFT':8}{sft_time:10.4f}{sft_mem:12.1f}")
    print(f"{'DIFT':8}{dift_time:10.4f}{dift_mem:12.1f}")
    print(f"ratio   {dift_time / sft_time:10.3f}x{dift_mem / sft_mem:11.3f}x   (target time <= 1.10x)")
    print(f"{'DIFT self':8}{self_time:10.4f}{self_mem:12.1f}")
    print(f"self / teacher step time {self_time / dift_time:.3f}x   (latent_feedback: self vs teacher; "
          f"{int((batch['input_ids'] == dift.latent_spec.pad_id).sum(1).max()) + 1} rounds per forward)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
