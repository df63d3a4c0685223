"""``trl-latent-datagen``: one sub-command per stage, ``run`` for all of them, ``validate`` and ``synth``.

Examples::

    trl-latent-datagen run --config examples/datagen_synthetic.yaml
    trl-latent-datagen object-qa --config cfg.yaml --limit 10
    trl-latent-datagen validate out/export/dift.jsonl out/export/rl.jsonl
    trl-latent-datagen synth --root data/synth --num-clips 100 --seed 0
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys

import yaml

from .config import STAGES, DatagenConfig
from .pipeline import STAGE_FUNCTIONS, run_pipeline
from .validate import format_report, validate_jsonl


def _config(args: argparse.Namespace) -> DatagenConfig:
    data: dict = {}
    if args.config:
        data = dataclasses.asdict(DatagenConfig.from_yaml(args.config))
    for key in ("input_root", "output_dir", "limit"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    for assignment in args.set or []:  # --set cot.backend=api
        key, _, value = assignment.partition("=")
        if not _:
            raise SystemExit(f"--set {assignment!r}: expected section.field=value")
        target = data
        *parents, leaf = key.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = yaml.safe_load(value)
    missing = [k for k in ("input_root", "output_dir") if k not in data]
    if missing:
        raise SystemExit(f"missing {missing}: pass --config or --input-root/--output-dir")
    return DatagenConfig.from_dict(data, args.config or "command line")


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file with DatagenConfig fields (see docs/datagen.md)")
    parser.add_argument("--input-root", dest="input_root", help="dataset root (overrides the config)")
    parser.add_argument("--output-dir", dest="output_dir", help="output folder (overrides the config)")
    parser.add_argument("--limit", type=int, help="only the first N clips")
    parser.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE", help="override one config field")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trl-latent-datagen", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_config_args(sub.add_parser("run", help="run the configured stages in order"))
    for stage in STAGES:
        if stage != "validate":
            _add_config_args(sub.add_parser(stage, help=f"run the '{stage}' stage"))
    validate = sub.add_parser("validate", help="check exported JSONL records and print per-check counts")
    validate.add_argument("jsonl", nargs="*", help="JSONL files (default: <output_dir>/export/*.jsonl)")
    _add_config_args(validate)
    synth = sub.add_parser("synth", help="write a synthetic 4D world in the SpatialVID-style layout")
    synth.add_argument("--root", required=True)
    synth.add_argument("--num-clips", type=int, default=100)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--option", action="append", metavar="KEY=VALUE", help="extra write_dataset option")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
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
        reports = {path: validate_jsonl(path) for path in args.jsonl}
        print(format_report(reports))
        return int(any(c["failed"] for r in reports.values() for c in r["checks"].values()))
    config = _config(args)
    if args.command == "run":
        print(json.dumps({k: str(v) for k, v in run_pipeline(config).items()}, indent=1))
        return 0
    result = STAGE_FUNCTIONS[args.command](config)
    if args.command == "validate":
        print(format_report(result))
        return int(any(c["failed"] for r in result.values() for c in r["checks"].values()))
    if args.command == "export":
        print(json.dumps({k: str(v) for k, v in result.items()}, indent=1))
        return 0
    print(result.summary())
    for item, error in result.failed.items():
        print(f"  failed {item}: {error}", file=sys.stderr)
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main())
