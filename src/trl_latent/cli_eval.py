"""``trl-latent eval``: lmms-eval on the trl-latent benchmarks, then a results table and per-category charts.

Runs lmms-eval's own ``TaskManager`` and ``simple_evaluate`` (nothing is re-implemented; the task folder is passed
explicitly, which also covers an lmms-eval without our task hook) and adds what lmms-eval does not write:
``summary.md`` / ``summary.json`` with one row per benchmark (headline ± standard error) and a bar chart per
benchmark. Flags follow lmms-eval's names. A folder that already holds results is never overwritten silently.

    trl-latent eval --model_args pretrained=runs/grpo --tasks dsr_bench_think,dyn_bench_think --dsr_root data/dsr
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trl-latent eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="latent_vlm",
                        help="lmms-eval model name (default: %(default)s, any supported family)")
    parser.add_argument("--model_args", required=True, help="e.g. pretrained=/ckpt,dtype=bfloat16,max_frames=50")
    parser.add_argument("--tasks", default="dsr_bench,dyn_bench", help="comma-separated (default: %(default)s)")
    parser.add_argument("--output_dir", default="runs/eval", help="where results and plots go (default: %(default)s)")
    parser.add_argument("--batch_size", default="1")
    parser.add_argument("--device", default=None, help="e.g. cuda:0 or cpu (default: the model's choice)")
    parser.add_argument("--limit", type=float, default=None, help="only the first N questions per task (debugging)")
    parser.add_argument("--gen_kwargs", default="", help="overrides the task's decoding, e.g. max_new_tokens=64")
    parser.add_argument("--repeats", type=int, default=1,
                        help="responses per question (lmms-eval --repeats; for sampled protocols such as 4dthinker)")
    parser.add_argument("--dsr_root", default=None, help="DSR-Bench root (else $DSR_BENCH_ROOT)")
    parser.add_argument("--dyn_root", default=None, help="Dyn-Bench root (else $DYN_BENCH_ROOT)")
    parser.add_argument("--dsr_ids_file", default=None, help="score only these DSR-Bench question ids (row indices)")
    parser.add_argument("--dyn_ids_file", default=None, help="score only these Dyn-Bench question ids")
    parser.add_argument("--overwrite", action="store_true", help="replace the results already in --output_dir")
    parser.add_argument("--seed", type=int, default=0, help="python / numpy / torch seeds of lmms-eval")
    parser.add_argument("--log_samples", action="store_true", help="also write samples_<task>.jsonl")
    parser.add_argument("--title", default=None, help="chart title prefix, e.g. the checkpoint name")
    return parser


def _write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2, default=str))


RESULT_FILES = ("results.json", "summary.md", "summary.json", "samples_*.jsonl", "*.png")


def _claim_output_dir(output_dir: Path, overwrite: bool) -> None:
    """Refuse a folder that already holds results (``--overwrite`` deletes them first, so no stale file remains)."""
    existing = sorted(p for pattern in RESULT_FILES for p in output_dir.glob(pattern))
    if existing and not overwrite:
        raise SystemExit(f"{output_dir} already holds results ({', '.join(p.name for p in existing[:4])}); choose "
                         f"another --output_dir or pass --overwrite")
    for path in existing:
        path.unlink()
    output_dir.mkdir(parents=True, exist_ok=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        from lmms_eval.evaluator import simple_evaluate
        from lmms_eval.tasks import TaskManager
    except ImportError as error:
        raise SystemExit(f"trl-latent eval needs lmms-eval: pip install 'trl-latent[eval]' ({error})") from error
    from lmms_eval_dsr import TASK_NAMES, tasks_dir
    from lmms_eval_dsr.report import markdown_table, summarize, write_report

    output_dir = Path(args.output_dir)
    _claim_output_dir(output_dir, args.overwrite)
    for flag, env_var in ((args.dsr_root, "DSR_BENCH_ROOT"), (args.dyn_root, "DYN_BENCH_ROOT"),
                          (args.dsr_ids_file, "DSR_BENCH_IDS_FILE"), (args.dyn_ids_file, "DYN_BENCH_IDS_FILE")):
        if flag:
            os.environ[env_var] = str(Path(flag).expanduser().resolve())
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    # Indexing lmms-eval's ~2,000 built-in tasks takes seconds; only do it when a built-in task is asked for.
    task_manager = TaskManager(include_path=tasks_dir(), include_defaults=not set(tasks) <= set(TASK_NAMES))
    limit = int(args.limit) if args.limit is not None and args.limit >= 1 else args.limit
    out = simple_evaluate(
        model=args.model, model_args=args.model_args, tasks=tasks, task_manager=task_manager,
        batch_size=args.batch_size, device=args.device, limit=limit, gen_kwargs=args.gen_kwargs or None,
        log_samples=args.log_samples, random_seed=args.seed, numpy_random_seed=args.seed,
        torch_random_seed=args.seed, bootstrap_iters=0, repeats=args.repeats,
    )
    if out is None:  # non-zero ranks of a distributed run
        return 0
    _write_json(output_dir / "results.json", {k: out[k] for k in ("results", "configs", "config", "n-samples") if k in out})
    for task, samples in (out.get("samples") or {}).items():
        with open(output_dir / f"samples_{task}.jsonl", "w") as handle:
            handle.writelines(json.dumps(sample, default=str) + "\n" for sample in samples)
    written = write_report(out["results"], output_dir, args.title)
    print(markdown_table(summarize(out["results"])))
    print(f"wrote {', '.join(str(p) for p in written.values())} and {output_dir / 'results.json'}")
    return 0
