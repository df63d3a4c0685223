"""``trl-latent init-tiny OUT``: save a random-weight Qwen2.5-VL checkpoint (model + processor) to start from offline.

No hub is reachable on CI machines and air-gapped clusters, yet every recipe needs a ``model_name_or_path``. This writes
one built from a config (sizes ``tiny``/``small`` for CPU smoke runs, ``3b`` for the real Qwen2.5-VL-3B shape on a GPU)
with the offline Qwen tokenizer, so the README's commands chain on a fresh machine. The weights are random: it checks
that the pipeline runs, not what the method learns.
"""

from __future__ import annotations

import argparse

# the names of trl_latent.testing.MODEL_SIZES, spelled here so that --help answers before torch loads (testing imports
# it); tests/test_scripts_common.py checks that the two agree
SIZES = ("tiny", "small", "3b")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trl-latent init-tiny",
        description="Save a random-weight Qwen2.5-VL checkpoint (model + processor) built from a config, offline.",
    )
    parser.add_argument("output_dir", help="Folder to write the checkpoint to (created; must not hold a checkpoint).")
    parser.add_argument("--size", choices=SIZES, default="tiny",
                        help="Config values: tiny / small (CPU, seconds) or 3b (the real Qwen2.5-VL-3B shape).")
    parser.add_argument("--latent_size", "--latent-size", type=int, default=0,
                        help="Register the latent tokens with K pads per block (0: a stock checkpoint, which is what "
                             "`trl-latent dift` expects; it adds the tokens itself).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the random weights.")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pathlib import Path

    from ..testing import MODEL_SIZES, save_tiny_checkpoint

    out = Path(args.output_dir)
    if (out / "config.json").exists():
        raise SystemExit(f"trl-latent init-tiny: {out} already holds a checkpoint (config.json); choose another folder")
    if args.latent_size < 0:
        raise SystemExit(f"trl-latent init-tiny: --latent_size must be >= 0, got {args.latent_size}")
    text, vision = MODEL_SIZES[args.size]
    path, spec = save_tiny_checkpoint(out, latent_size=args.latent_size or None, seed=args.seed, text=text,
                                      vision=vision)
    latents = f", latent tokens with K={spec.latent_size}" if spec is not None else ", no latent tokens"
    print(f"saved a random {args.size} Qwen2.5-VL{latents} to {path}")
    return 0
