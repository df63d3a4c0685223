#!/usr/bin/env bash
# The main job on the embedded default: synthetic 4D world → datagen → DIFT → 4DRL → eval → report (CPU, ~10 min).
# Extra arguments go to `trl-latent quickstart` (see `trl-latent quickstart --help`).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(bash "$repo/scripts/setup_env.sh" | tail -n 1)"
cd "$repo"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "$venv/bin/trl-latent" quickstart "$@"
