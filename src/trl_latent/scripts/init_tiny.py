"""``trl-latent init-tiny OUT``: save a random-weight checkpoint (model + processor) to start from offline.

No hub is reachable on CI machines and air-gapped clusters, yet every recipe needs a ``model_name_or_path``. This writes
one built from a config (``--model_type`` qwen2_5_vl, qwen2_vl or qwen3_vl; sizes ``tiny``/``small`` for CPU smoke
runs, ``3b`` for the real Qwen2.5-VL-3B shape and ``2b`` for Qwen2-VL-2B's, on a GPU) with the offline Qwen tokenizer,
so the README's commands chain on a fresh machine. The weights are random: it checks
that the pipeline runs, not what the method learns.
"""

from __future__ import annotations

import argparse

# trl_latent.models.FAMILIES and the size names of trl_latent.testing.model_sizes over them, spelled here so that
# --help answers before torch loads (both modules import it); tests/test_scripts_common.py checks that they agree
FAMILIES = ("qwen2_5_vl", "qwen2_vl", "qwen3_vl")
SIZES = ("tiny", "small", "3b", "2b")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trl-latent init-tiny",
        description="Save a random-weight vision-language checkpoint (model + processor) built from a config, offline.",
    )
    parser.add_argument("output_dir", help="Folder to write the checkpoint to (created; must not hold a checkpoint).")
    parser.add_argument("--model_type", "--model-type", choices=FAMILIES, default=FAMILIES[0],
                        help="Model family (default: %(default)s).")
    parser.add_argument("--size", choices=SIZES,
                        default="tiny", help="Config values: tiny / small (CPU, seconds; every family), 3b (the real "
                                             "Qwen2.5-VL-3B shape) or 2b (Qwen2-VL-2B's).")
    parser.add_argument("--latent_size", "--latent-size", type=int, default=0,
                        help="Register the latent tokens with K pads per block (0: a stock checkpoint, which is what "
                             "`trl-latent dift` expects; it adds the tokens itself).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the random weights.")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pathlib import Path

    from ..testing import model_sizes, save_tiny_checkpoint

    out = Path(args.output_dir)
    if (out / "config.json").exists():
        raise SystemExit(f"trl-latent init-tiny: {out} already holds a checkpoint (config.json); choose another folder")
    if args.latent_size < 0:
        raise SystemExit(f"trl-latent init-tiny: --latent_size must be >= 0, got {args.latent_size}")
    sizes = model_sizes(args.model_type)
    if args.size not in sizes:
        raise SystemExit(f"trl-latent init-tiny: --size {args.size} is not defined for {args.model_type} "
                         f"(choose from {', '.join(sorted(sizes))})")
    text, vision = sizes[args.size]
    path, spec = save_tiny_checkpoint(out, model_type=args.model_type, latent_size=args.latent_size or None,
                                      seed=args.seed, text=text, vision=vision)
    latents = f", latent tokens with K={spec.latent_size}" if spec is not None else ", no latent tokens"
    print(f"saved a random {args.size} {args.model_type}{latents} to {path}")
    return 0
