"""``trl-latent-datagen``: one sub-command per stage, ``run`` for all of them, ``validate`` and ``synth``.

Examples::

    trl-latent-datagen run --config examples/datagen_synthetic.yaml
    trl-latent-datagen object-qa --config cfg.yaml --limit 10 --set object_qa.min_motion=0.3
    trl-latent-datagen validate --decode out/export/dift.jsonl out/export/rl.jsonl
    trl-latent-datagen synth --root data/synth --num_clips 100 --seed 0
    trl-latent-datagen index data/raw        # metadata.csv for raw videos under data/raw/videos/

Flags are spelled with underscores as in TRL (``--output_dir``); the dashed spellings (``--output-dir``) still work.
Every command ends with a table of done / reused / failed items per stage and exits with status 1 when anything
failed, unless ``--allow_partial`` accepts a partial result. A user's mistake (bad config, empty metadata, Ray that
cannot start, ...) ends in one line; ``--debug`` or ``TRL_LATENT_DEBUG=1`` shows its traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys

import yaml

from .annotate.index import index_videos
from .config import STAGES, DatagenConfig, apply_override, read_yaml
from .errors import USER_ERRORS, debug_requested, one_line
from .manifest import StageResult, format_summary
from .pipeline import STAGE_FUNCTIONS, preflight, run_pipeline, save_config, validation_result
from .validate import format_report, validate_jsonl


def _config(args: argparse.Namespace) -> DatagenConfig:
    data = read_yaml(args.config) if args.config else {}
    for key in ("input_root", "output_dir", "limit"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    if args.ray is not None:  # --ray [ADDRESS]
        data.setdefault("ray", {}).update(enabled=True, **({"address": args.ray} if args.ray else {}))
    if getattr(args, "decode", False):
        data.setdefault("validate", {})["decode"] = True
    for assignment in args.set or []:  # --set cot.backend=api
        apply_override(data, assignment)
    missing = [k for k in ("input_root", "output_dir") if k not in data]
    if missing:
        raise SystemExit(f"missing {missing}: pass --config or --input_root/--output_dir")
    return DatagenConfig.from_dict(data, args.config or "command line")


def _flag(parser: argparse.ArgumentParser, name: str, **kwargs) -> None:
    """``--name_with_underscores`` plus its dashed alias when it has one."""
    flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
    parser.add_argument(*flags, dest=name, **kwargs)


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    _flag(parser, "config", help="YAML file with DatagenConfig fields (see docs/datagen.md)")
    _flag(parser, "input_root", help="dataset root in the SpatialVID-style layout (overrides the config)")
    _flag(parser, "output_dir", help="folder every stage writes under (overrides the config)")
    _flag(parser, "limit", type=int, help="only the first N clips of metadata.csv")
    _flag(parser, "set", action="append", metavar="SECTION.FIELD=VALUE",
          help="override one config field, value parsed as YAML and checked like the config file's (repeatable)")
    _flag(parser, "ray", nargs="?", const="", metavar="ADDRESS",
          help="run the per-clip stages on Ray: a local instance, or the cluster at ADDRESS (auto, ray://head:10001); "
               "needs pip install 'trl-latent[ray]'")
    _flag(parser, "allow_partial", action="store_true",
          help="exit with status 0 even when clips, questions or records failed (the summary still lists them)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trl-latent-datagen", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log each stage's progress and each failure")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (also TRL_LATENT_DEBUG=1); default: one line")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help="a stage, run, validate, synth or index")
    _add_config_args(sub.add_parser("run", help="run the configured stages in order"))
    for stage in STAGES:
        if stage != "validate":
            _add_config_args(sub.add_parser(stage, help=f"run the '{stage}' stage"))
    validate = sub.add_parser("validate", help="check exported JSONL records and print per-check counts")
    validate.add_argument("jsonl", nargs="*", help="JSONL files (default: <output_dir>/export/*.jsonl)")
    _flag(validate, "decode", action="store_true",
          help="also decode every frame of every referenced image and video (catches corrupt media; slow)")
    _add_config_args(validate)
    synth = sub.add_parser("synth", help="write a synthetic 4D world in the SpatialVID-style layout")
    _flag(synth, "root", required=True, help="folder to write the dataset into")
    _flag(synth, "num_clips", type=int, default=100, help="number of clips (default: 100)")
    _flag(synth, "seed", type=int, default=0, help="random seed of the world (default: 0)")
    _flag(synth, "option", action="append", metavar="KEY=VALUE",
          help="extra write_dataset / SynthConfig option, value parsed as YAML (repeatable)")
    index = sub.add_parser("index", help="write metadata.csv for the raw videos under DATASET_ROOT/videos/")
    index.add_argument("root", metavar="DATASET_ROOT", help="folder whose videos/ holds the videos")
    return parser


def _finish(results: list[StageResult], allow_partial: bool) -> int:
    """Print the summary table once; status 1 when anything failed and partial results were not allowed."""
    print(format_summary(results), file=sys.stderr)
    failures = sum(len(r.failed) for r in results)
    if failures and not allow_partial:
        print(f"{failures} failure(s): the outputs are partial (pass --allow_partial to accept that)", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return _command(args)
    except USER_ERRORS as e:  # bad config or input, refused API, stale outputs, Ray not starting, ...
        if debug_requested(args.debug or args.verbose):
            raise
        raise one_line(f"trl-latent-datagen {args.command}", e) from None


def _command(args: argparse.Namespace) -> int:
    if args.command == "index":
        print(index_videos(args.root))
        return 0
    if args.command == "synth":
        from .synthetic import write_dataset

        options = {}
        for item in args.option or []:
            key, _, value = item.partition("=")
            options[key] = yaml.safe_load(value)
        write_dataset(args.root, args.num_clips, args.seed, **options)
        print(args.root)
        return 0
    if args.command == "validate" and args.jsonl:
        reports = {path: validate_jsonl(path, args.decode) for path in args.jsonl}
        print(format_report(reports))
        return _finish([validation_result(reports, "the failures above")], args.allow_partial)
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    config = _config(args)
    preflight(config if args.command == "run" else dataclasses.replace(config, stages=[args.command]))
    if args.command == "run":
        result = run_pipeline(config)
        print(json.dumps({k: str(v) for k, v in result.items()}, indent=1))
        return _finish(list(result.stages.values()), args.allow_partial)
    save_config(config)
    result = STAGE_FUNCTIONS[args.command](config)
    if args.command == "validate":
        print(format_report(json.loads(result.outputs["validation"].read_text())))
    return _finish([result], args.allow_partial)


if __name__ == "__main__":
    sys.exit(main())
