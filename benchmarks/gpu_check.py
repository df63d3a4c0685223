"""One-shot performance check on one GPU: the real Qwen2.5-VL-3B shape with random weights, nothing downloaded.

    python benchmarks/gpu_check.py                 # GPU: --size 3b, bf16, SDPA (flash-attn 2 when importable)
    python benchmarks/gpu_check.py --size tiny     # the same checks on the tiny model, CPU, in about a minute
    bash benchmarks/gpu_check.sh                   # the same through the project venv, under a time limit

It measures, and writes to ``--out`` as ``gpu_check.json`` and ``gpu_check.md`` (a markdown table; the JSON is
rewritten after each check, so a run cut short keeps what it measured):

- **dift**: one training step (forward, backward, AdamW) at per-device batch 1 and 8 (rows of different lengths) of
  a stock ``SFTTrainer`` with the same options (the batch without its imagery), and of ``LatentImageryTrainer`` in
  each ``latent_feedback`` mode (``teacher``, ``self``), padded and, for ``teacher`` at the larger batch, packed
  padding-free: median step time, model FLOPs utilisation (MFU), peak memory, the fed-back norm ratio, and the ratios
  to stock and of self to teacher;
- **zero2**: the batch-1 step of each mode under DeepSpeed ZeRO-2 in a single process (run in a child process, as
  `accelerate launch` would, because a DeepSpeed config changes the process-wide accelerate state);
- **generate**: tokens/s at batch 1, 16 and 64 of `model.generate` and of `generate_with_latents` (one latent block
  per row) with its dynamic cache and with its static cache (its decode step replayed as a CUDA graph on a GPU);
- **grpo**: `LatentGRPOTrainer` step time against a stock `GRPOTrainer` on the same model and prompts.

MFU is the usual estimate: 6 x (language-model parameters, embeddings excluded) x tokens, plus causal attention
(6 x layers x hidden x tokens^2 per row), plus the fused LM head on the supervised tokens (6 x vocab x hidden each),
plus a forward-only vision tower (2 x its parameters per patch of the video and imagery images), divided by the step
time and the GPU's dense bf16 peak (known for H100/H200/GH200/A100/B200, or ``--peak_tflops``). It is left empty on
CPU and on unknown GPUs rather than guessed.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import transformers

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests"), str(HERE.parent / "tests" / "dift")]

from bench_dift import peak_memory_mb, time_steps  # noqa: E402
from bench_grpo import (  # noqa: E402
    QUESTION,
    OpenBlockAtStep,
    bench_rollout,
    bench_steps,
    synchronize,
)
from dift_data import dift_record, write_jsonl  # noqa: E402

from trl_latent.testing import (  # noqa: E402
    QWEN2_5_VL_3B_TEXT,
    QWEN2_5_VL_3B_VISION,
    build_tiny_qwen2_5_vl,
)

CHECKS = ("dift", "zero2", "generate", "grpo")
FEEDBACK = ("teacher", "self")  # the DIFT latent_feedback modes, both timed
LABELS = {"stock": "stock SFTTrainer", "teacher": "teacher", "teacher_packed": "teacher, padding-free",
          "self": "self"}
# dense bf16 tensor-core peak, TFLOP/s (vendor datasheets, SXM parts)
PEAK_BF16_TFLOPS = {"H200": 989.0, "GH200": 989.0, "H100": 989.0, "A100": 312.0, "B200": 2250.0}
# per size: frames and side of the DIFT video sample, DIFT batch sizes (rows of a batch have fewer frames in turn),
# new tokens per rollout, rollout batch sizes, timed steps
SIZES = {
    "tiny": dict(num_frames=4, frame_size=56, dift_batches=(1, 2), new_tokens=8, batches=(1, 4), steps=1, warmup=1,
                 grpo_steps=2),
    "3b": dict(num_frames=16, frame_size=448, dift_batches=(1, 8), new_tokens=64, batches=(1, 16, 64), steps=3,
               warmup=1, grpo_steps=4),
}


def build_model(size: str, device: torch.device, latent_size: int | None, attn: str):
    """Random-weight model created directly on ``device`` (a 3B init on the CPU would take longer than the checks)."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    shapes = dict(text=QWEN2_5_VL_3B_TEXT, vision=QWEN2_5_VL_3B_VISION) if size == "3b" else {}
    with device:
        model, processor = build_tiny_qwen2_5_vl(latent_size=latent_size, dtype=dtype, **shapes)
    model.set_attn_implementation(attn)
    return model, processor


def attention_implementation(device: torch.device) -> str:
    if device.type == "cuda":
        try:
            import flash_attn  # noqa: F401

            return "flash_attention_2"
        except ImportError:
            pass
    return "sdpa"


def dift_records(root: Path, size: str, count: int = 1):
    """``count`` DIFT records with two imagery images each; row ``i`` has ``2 * (i % 3)`` frames fewer than the first,
    so a batch's rows differ in length."""
    from trl_latent.data import load_records

    shape = SIZES[size]
    rows = [dift_record(root, i, num_imagery=2, num_frames=shape["num_frames"] - 2 * (i % 3), size=shape["frame_size"])
            for i in range(count)]
    return load_records(write_jsonl(root / f"train{count}.jsonl", rows))


def dift_args(root: Path, size: str, device: torch.device, stock: bool = False, **overrides):
    """The DIFT config of the check, or (``stock``) the ``SFTConfig`` with the same options."""
    from trl import SFTConfig

    from trl_latent.dift import LatentImageryConfig

    pixels = SIZES[size]["frame_size"] ** 2
    settings = dict(
        output_dir=str(root / "out"), report_to=[], save_strategy="no", use_cpu=device.type == "cpu",
        bf16=device.type == "cuda", activation_checkpointing=False, per_device_train_batch_size=1,
        disable_tqdm=True, dataloader_num_workers=0, max_length=None,
    )
    if stock:
        return SFTConfig(remove_unused_columns=False, dataset_kwargs={"skip_prepare_dataset": True}, **settings,
                         **overrides)
    settings.update(min_pixels=pixels, max_pixels=pixels, imagery_min_pixels=pixels, imagery_max_pixels=pixels)
    settings.update(overrides)
    return LatentImageryConfig(**settings)


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def dift_step_flops(model, batch: dict) -> float:
    """Model FLOPs of one DIFT training step on the padded ``batch`` (see the module docstring for the formula)."""
    backbone = model.model
    text = model.config.text_config
    language = parameter_count(backbone.language_model) - parameter_count(backbone.language_model.embed_tokens)
    lengths = batch["attention_mask"].sum(-1).double()
    tokens = float(lengths.sum())
    supervised = float((batch["labels"][:, 1:] != -100).sum())
    patches = batch["pixel_values_videos"].shape[0] if "pixel_values_videos" in batch else 0
    patches += batch["pixel_values"].shape[0] if "pixel_values" in batch else 0
    patches += batch["latent_pixel_values"].shape[0] if "latent_pixel_values" in batch else 0
    return (
        6 * language * tokens
        + 6 * text.num_hidden_layers * text.hidden_size * float((lengths**2).sum())
        + 6 * text.vocab_size * text.hidden_size * supervised
        + 2 * parameter_count(backbone.visual) * patches
    )


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override is not None:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_TFLOPS.items() if key in name), None)


def check_dift(model, processor, size: str, device: torch.device, peak: float | None, save, results: dict) -> None:
    """Per batch size, into ``results``: the stock SFT step, then each DIFT variant, with its ratios (see the module
    docstring); ``save()`` after each."""
    from trl import SFTTrainer

    from trl_latent.dift import LatentImageryTrainer

    shape = SIZES[size]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for batch_size in shape["dift_batches"]:
            records = dift_records(root, size, batch_size)
            rows = [records[i] for i in range(batch_size)]
            variants = [("stock", {}), ("teacher", {}), ("self", dict(latent_feedback="self"))]
            if batch_size > 1:
                variants.insert(2, ("teacher_packed", dict(padding_free=True)))
            measured: dict = {}
            # the padded DIFT batch (its FLOPs count for every variant); this also freezes the tower of ``model``,
            # as every DIFT trainer does, so the stock trainer trains the same parameters
            padded = LatentImageryTrainer(model, processing_class=processor, train_dataset=records,
                                          args=dift_args(root, size, device)).data_collator(rows)
            flops = dift_step_flops(model, padded)
            for name, overrides in variants:
                trainer = None
                try:
                    if name == "stock":
                        trainer = SFTTrainer(copy.deepcopy(model), processing_class=processor, train_dataset=records,
                                             data_collator=lambda x: x, args=dift_args(root, size, device, stock=True))
                        batch = {k: v for k, v in padded.items() if not k.startswith("latent_")}
                    else:
                        trainer = LatentImageryTrainer(copy.deepcopy(model), processing_class=processor,
                                                       train_dataset=records,
                                                       args=dift_args(root, size, device, **overrides))
                        batch = trainer.data_collator(rows)
                    seconds, memory = time_steps(trainer, batch, shape["steps"], shape["warmup"])
                    entry = dict(step_s=seconds, tokens=int(padded["attention_mask"].sum()),
                                 padded_tokens=int(padded["attention_mask"].numel()), step_tflop=flops / 1e12,
                                 tflops=flops / seconds / 1e12, mfu=flops / seconds / (peak * 1e12) if peak else None,
                                 peak_memory_mib=memory)
                    if name != "stock":
                        entry["fed_back_norm_ratio"] = trainer._metrics["train"]["latent_norm_ratio"][-1]
                        if "stock" in measured:
                            entry["over_stock"] = seconds / measured["stock"]["step_s"]
                    measured[name] = entry
                except Exception as error:  # one failed variant must not lose the others' figures
                    measured[name] = dict(error=f"{type(error).__name__}: {error}"[:500])
                trainer = None
                free(device)
                results[f"batch_{batch_size}"] = measured
                save()
            if "step_s" in measured.get("self", {}) and "step_s" in measured.get("teacher", {}):
                measured["self_over_teacher"] = measured["self"]["step_s"] / measured["teacher"]["step_s"]


def check_zero2(size: str) -> dict:
    """Run the ZeRO-2 step of each feedback mode in a child process (a single-rank DeepSpeed world); read its JSON."""
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in FEEDBACK:
            out = Path(tmp) / f"zero2_{mode}.json"
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            env = dict(os.environ, RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1",
                       MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
            command = [sys.executable, __file__, "--size", size, "--zero2_child", str(out), "--latent_feedback", mode]
            subprocess.run(command, env=env, check=True)
            results[mode] = json.loads(out.read_text())
    return results


def zero2_child(size: str, mode: str, out: Path) -> None:
    from transformers import TrainerCallback

    from trl_latent.dift import LatentImageryTrainer

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    shape = SIZES[size]
    model, processor = build_model(size, device, 4, attention_implementation(device))

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_step_begin(self, args, state, control, **kwargs):
            synchronize(device)
            if state.global_step == shape["warmup"] and device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            synchronize(device)
            self.times.append(time.perf_counter() - self.start)

    deepspeed = {
        "zero_optimization": {"stage": 2, "overlap_comm": False, "contiguous_gradients": True},
        "bf16": {"enabled": "auto"}, "train_micro_batch_size_per_gpu": "auto", "train_batch_size": "auto",
        "gradient_accumulation_steps": "auto", "gradient_clipping": "auto", "zero_allow_untested_optimizer": True,
    }
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        records = dift_records(root, size)
        trainer = LatentImageryTrainer(
            model, processing_class=processor, train_dataset=records, callbacks=[timer],
            args=dift_args(root, size, device, deepspeed=deepspeed, max_steps=shape["warmup"] + shape["steps"],
                           logging_steps=1, latent_feedback=mode),
        )
        trainer.train()
    timed = sorted(timer.times[shape["warmup"]:])
    engine = type(trainer.model_wrapped).__name__
    if engine != "DeepSpeedEngine":
        raise RuntimeError(f"the ZeRO-2 run trained a {engine}, not a DeepSpeedEngine")
    loss = next(entry["loss"] for entry in trainer.state.log_history if "loss" in entry)
    out.write_text(json.dumps(dict(step_s=timed[len(timed) // 2], peak_memory_mib=peak_memory_mb(device),
                                   steps=len(timer.times), first_loss=loss, engine=engine)))


def check_graph_equality(device: torch.device) -> dict:
    """On a GPU, the tiny model in float32: the CUDA-graphed static loop against the dynamic one (greedy, every row
    forced into a latent block; left-padded rows), twice, so the second call replays the kept graph."""
    from tiny_inputs import image_prompts
    from transformers import LogitsProcessorList

    from trl_latent.generation import generate_with_latents

    with device:
        model, processor = build_tiny_qwen2_5_vl(latent_size=4, dtype=torch.float32)
    inputs = {k: v.to(device) for k, v in image_prompts(processor, [QUESTION, "Short?", QUESTION + " Why?"]).items()}
    forcing = LogitsProcessorList([OpenBlockAtStep(model.config.latent_start_id, inputs["input_ids"].shape[1])])
    kwargs = dict(max_new_tokens=12, logits_processor=forcing, output_logits=True, eos_token_id=[])
    dynamic = generate_with_latents(model, **inputs, **kwargs)
    result: dict = dict(tokens_equal=True, max_logit_diff=0.0)
    for _ in range(2):
        graphed = generate_with_latents(model, **inputs, cache_implementation="static", cuda_graph=True, **kwargs)
        result["tokens_equal"] &= bool(torch.equal(graphed.completion_ids, dynamic.completion_ids))
        result["max_logit_diff"] = max(result["max_logit_diff"],
                                       float((graphed.logits - dynamic.logits).abs().max()))
    return result


def check_generate(model, processor, size: str, device: torch.device, save, results: dict) -> None:
    """Tokens/s of HF generate and of generate_with_latents (dynamic cache; static cache, CUDA-graphed on a GPU)."""
    if device.type == "cuda":
        try:
            results["cuda_graph_equality"] = check_graph_equality(device)
        except Exception as error:  # reported; the speed figures follow
            results["cuda_graph_equality"] = dict(error=f"{type(error).__name__}: {error}"[:500])
        save()
    for batch_size in SIZES[size]["batches"]:
        entry: dict = {}
        try:
            entry.update(bench_rollout(model, processor, device=device, new_tokens=SIZES[size]["new_tokens"],
                                       batch_size=batch_size, cuda_graph=device.type == "cuda"))
            entry["ratio"] = entry["latent_tokens_per_s"] / entry["hf_tokens_per_s"]
            entry["static_ratio"] = entry["latent_static_tokens_per_s"] / entry["hf_tokens_per_s"]
        except Exception as error:  # keep the other batch sizes' figures
            entry["error"] = f"{type(error).__name__}: {error}"[:500]
        results[f"batch_{batch_size}"] = entry
        save()
        free(device)


def check_grpo(size: str, device: torch.device, attn: str) -> dict:
    model, processor = build_model(size, device, None, attn)  # stock: both trainers roll out plain text
    with tempfile.TemporaryDirectory() as tmp:
        stock, ours = bench_steps(model, processor, Path(tmp), device=device.type, new_tokens=SIZES[size]["new_tokens"],
                                  steps=SIZES[size]["grpo_steps"], bf16=device.type == "cuda")
    return dict(stock_step_s=stock, latent_step_s=ours, ratio=ours / stock)


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def markdown(results: dict) -> str:
    """The results as one markdown table (check, measure, value)."""

    def number(value, digits: int = 3) -> str:
        return "–" if value is None else f"{value:.{digits}g}" if isinstance(value, float) else str(value)

    rows = []
    for batch, variants in results.get("dift", {}).items():
        for name, dift in variants.items():
            if not isinstance(dift, dict):
                continue
            label = f"DIFT {batch.replace('_', ' ')}, {LABELS[name]}"
            if "error" in dift:
                rows.append((label, "failed", dift["error"].replace("|", "/").replace("\n", " ")))
                continue
            rows += [
                (label, "step time (s)" + (", over stock" if "over_stock" in dift else ""),
                 number(dift["step_s"]) + (f", {number(dift['over_stock'])}x" if "over_stock" in dift else "")),
                (label, "tokens (padded) / model TFLOP",
                 f"{dift['tokens']} ({dift['padded_tokens']}) / {number(dift['step_tflop'])}"),
                (label, "achieved TFLOP/s / MFU", f"{number(dift['tflops'])} / {number(dift['mfu'])}"),
                (label, "peak memory (MiB)", number(dift["peak_memory_mib"], 6)),
            ]
            if "fed_back_norm_ratio" in dift:
                rows.append((label, "fed-back ‖h‖/‖target‖", number(dift["fed_back_norm_ratio"])))
        if "self_over_teacher" in variants:
            rows.append((f"DIFT {batch.replace('_', ' ')}", "self / teacher step time",
                         f"{number(variants['self_over_teacher'])}x"))
    for mode, zero2 in results.get("zero2", {}).items():
        label = f"DIFT step ({mode}), DeepSpeed ZeRO-2 (1 process)"
        rows += [(label, "step time (s)", number(zero2["step_s"])),
                 (label, "peak memory (MiB)", number(zero2["peak_memory_mib"], 6))]
    for batch, gen in results.get("generate", {}).items():
        label = f"rollout, {batch.replace('_', ' ')}"
        if batch == "cuda_graph_equality":
            rows.append(("rollout, CUDA graph vs dynamic loop (tiny, fp32)", "tokens equal / max logit diff",
                         gen.get("error", "").replace("|", "/") or f"{gen['tokens_equal']} / {gen['max_logit_diff']:.2g}"))
            continue
        if "error" in gen:
            rows.append((label, "failed", gen["error"].replace("|", "/").replace("\n", " ")))
            continue
        rows += [(label, "HF generate (tok/s)", number(gen["hf_tokens_per_s"], 4)),
                 (label, "generate_with_latents, dynamic cache (tok/s), ratio",
                  f"{number(gen['latent_tokens_per_s'], 4)}, {number(gen['ratio'])}x"),
                 (label, f"generate_with_latents, static cache{', CUDA graph' if gen['cuda_graph'] else ''} (tok/s), ratio",
                  f"{number(gen['latent_static_tokens_per_s'], 4)}, {number(gen['static_ratio'])}x")]
        if "cuda_graph_error" in gen:
            rows.append((label, "CUDA graph failed", gen["cuda_graph_error"].replace("|", "/").replace("\n", " ")))
    if "grpo" in results:
        grpo = results["grpo"]
        rows += [("GRPO step", "stock GRPOTrainer (s)", number(grpo["stock_step_s"])),
                 ("GRPO step", "LatentGRPOTrainer (s), ratio", f"{number(grpo['latent_step_s'])}, {number(grpo['ratio'])}x")]
    header = (f"Device: {results['device']} · size {results['size']} · {results['dtype']} · attention "
              f"{results['attention']} · torch {results['torch']} · transformers {results['transformers']} · "
              f"{results['wall_s']:.0f} s in all\n\n")
    lines = ["| check | measure | value |", "|---|---|---|", *(f"| {a} | {b} | {c} |" for a, b, c in rows)]
    return header + "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=tuple(SIZES), default=None, help="3b on GPU, tiny on CPU by default")
    parser.add_argument("--out", type=Path, default=Path("runs/gpu_check"))
    parser.add_argument("--skip", default="", help=f"comma-separated checks to leave out, among {', '.join(CHECKS)}")
    parser.add_argument("--peak_tflops", type=float, default=None, help="dense bf16 peak of an unlisted GPU")
    parser.add_argument("--zero2_child", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--latent_feedback", choices=FEEDBACK, default="teacher", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    args.size = args.size or ("3b" if device.type == "cuda" else "tiny")
    if args.zero2_child is not None:
        zero2_child(args.size, args.latent_feedback, args.zero2_child)
        return 0
    skip = {name for name in args.skip.split(",") if name}
    if skip - set(CHECKS):
        parser.error(f"--skip takes checks among {CHECKS}, got {sorted(skip - set(CHECKS))}")

    start = time.perf_counter()
    attn = attention_implementation(device)
    results: dict = dict(
        device=torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.processor() or 'x86'})",
        size=args.size, dtype="bf16" if device.type == "cuda" else "fp32", attention=attn, torch=torch.__version__,
        transformers=transformers.__version__,
    )
    args.out.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        results["wall_s"] = time.perf_counter() - start
        (args.out / "gpu_check.json").write_text(json.dumps(results, indent=2) + "\n")

    if {"dift", "generate"} - skip:
        model, processor = build_model(args.size, device, 4, attn)
        if "dift" not in skip:
            results["dift"] = {}
            check_dift(model, processor, args.size, device, peak_tflops(device, args.peak_tflops), save,
                       results["dift"])
        if "generate" not in skip:
            results["generate"] = {}
            check_generate(model, processor, args.size, device, save, results["generate"])
        del model
        free(device)
    if "grpo" not in skip:
        results["grpo"] = check_grpo(args.size, device, attn)
        save()
    if "zero2" not in skip:
        results["zero2"] = check_zero2(args.size)
    save()
    table = markdown(results)
    (args.out / "gpu_check.md").write_text(table)
    print(table)
    print(f"wrote {args.out / 'gpu_check.json'} and {args.out / 'gpu_check.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
