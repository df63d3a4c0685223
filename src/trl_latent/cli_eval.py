"""``trl-latent eval``: lmms-eval on the trl-latent benchmarks, then a results table and per-category charts.

Runs lmms-eval's own ``TaskManager``, ``simple_evaluate`` and ``EvaluationTracker`` (nothing is re-implemented; the
task folder is passed explicitly, which also covers an lmms-eval without our task hook), so ``--output_path`` holds
exactly what ``lmms-eval --output_path`` writes: ``<output_path>/<model>/<date>_results.json`` and, with
``--log_samples``, ``<date>_samples_<task>.jsonl``. Beside them it adds what lmms-eval does not write:
``<date>_summary.md`` / ``<date>_summary.json`` with one row per benchmark (headline ± standard error) and a bar chart
per benchmark, ``<date>_<task>.png``. Flags follow lmms-eval's names; every run gets new dated files, as with lmms-eval.

    trl-latent eval --model_args pretrained=runs/grpo --tasks dsr_bench_think,dyn_bench_think --dsr_root data/dsr
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trl-latent eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="latent_vlm",
                        help="lmms-eval model name (default: %(default)s, any supported family)")
    parser.add_argument("--model_args", required=True, help="e.g. pretrained=/ckpt,dtype=bfloat16,max_frames=50")
    parser.add_argument("--tasks", default="dsr_bench,dyn_bench", help="comma-separated (default: %(default)s)")
    parser.add_argument("--output_path", default="runs/eval",
                        help="lmms-eval's output folder: <output_path>/<model>/<date>_results.json (default: %(default)s)")
    parser.add_argument("--output_dir", default=None, help=argparse.SUPPRESS)  # deprecated alias of --output_path
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
    parser.add_argument("--seed", type=int, default=0, help="python / numpy / torch seeds of lmms-eval")
    parser.add_argument("--log_samples", action="store_true", help="also write <date>_samples_<task>.jsonl")
    parser.add_argument("--timezone", default="Asia/Singapore", help="for the <date> of file names (lmms-eval's default)")
    parser.add_argument("--title", default=None, help="chart title prefix, e.g. the checkpoint name")
    return parser


def latest_samples(output_path: str | Path, task: str) -> Path:
    """The newest ``<date>_samples_<task>.jsonl`` under ``output_path`` (lmms-eval's layout; needs ``--log_samples``)."""
    found = sorted(Path(output_path).glob(f"*_samples_{task}.jsonl")) + sorted(
        Path(output_path).glob(f"*/*_samples_{task}.jsonl"))
    if not found:
        raise FileNotFoundError(f"no *_samples_{task}.jsonl under {output_path} (was the run made with --log_samples?)")
    return max(found, key=lambda path: path.name)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.output_dir is not None:
        print("trl-latent eval: --output_dir is deprecated; use --output_path (lmms-eval's name)", file=sys.stderr)
        args.output_path = args.output_dir
    try:
        from lmms_eval.evaluator import simple_evaluate
        from lmms_eval.loggers import EvaluationTracker
        from lmms_eval.tasks import TaskManager
        from lmms_eval.utils import get_datetime_str
    except ImportError as error:
        raise SystemExit(f"trl-latent eval needs lmms-eval: pip install 'trl-latent[eval]' ({error})") from error
    from lmms_eval_dsr import TASK_NAMES, tasks_dir
    from lmms_eval_dsr.report import markdown_table, summarize, write_report

    for flag, env_var in ((args.dsr_root, "DSR_BENCH_ROOT"), (args.dyn_root, "DYN_BENCH_ROOT"),
                          (args.dsr_ids_file, "DSR_BENCH_IDS_FILE"), (args.dyn_ids_file, "DYN_BENCH_IDS_FILE")):
        if flag:
            os.environ[env_var] = str(Path(flag).expanduser().resolve())
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    # Indexing lmms-eval's ~2,000 built-in tasks takes seconds; only do it when a built-in task is asked for.
    task_manager = TaskManager(include_path=tasks_dir(), include_defaults=not set(tasks) <= set(TASK_NAMES))
    limit = int(args.limit) if args.limit is not None and args.limit >= 1 else args.limit
    output_path = Path(args.output_path)
    tracker = EvaluationTracker(output_path=str(output_path))
    datetime_str = get_datetime_str(timezone=args.timezone)
    out = simple_evaluate(
        model=args.model, model_args=args.model_args, tasks=tasks, task_manager=task_manager,
        batch_size=args.batch_size, device=args.device, limit=limit, gen_kwargs=args.gen_kwargs or None,
        log_samples=args.log_samples, evaluation_tracker=tracker, datetime_str=datetime_str,
        random_seed=args.seed, numpy_random_seed=args.seed, torch_random_seed=args.seed, bootstrap_iters=0,
        repeats=args.repeats,
    )
    if out is None:  # non-zero ranks of a distributed run
        return 0
    # What `lmms-eval --output_path` writes, by lmms-eval's own tracker (same calls, same order as its command).
    samples = out.pop("samples", None) if args.log_samples else None
    tracker.save_results_aggregated(results=out, samples=samples, datetime_str=datetime_str)
    for task in out["configs"] if samples else ():
        tracker.save_results_samples(task_name=task, samples=samples[task])
    run_folder = output_path / tracker.general_config_tracker.model_name_sanitized
    date_id = getattr(tracker, "date_id", None)  # set once lmms-eval has written the results (it only warns if not)
    if date_id is None or not (run_folder / f"{date_id}_results.json").is_file():
        raise SystemExit(f"trl-latent eval: lmms-eval could not write its results under {run_folder} (see its warning)")
    written = write_report(out, run_folder, args.title, prefix=f"{date_id}_")
    print(markdown_table(summarize(out)))
    print(f"wrote {run_folder / (date_id + '_results.json')} and {', '.join(str(p) for p in written.values())}")
    return 0
