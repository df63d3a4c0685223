#!/usr/bin/env bash
# Run benchmarks/gpu_check.py from a clone without installing it: the project venv's python when there is one
# (scripts/setup_env.sh), else $PYTHON or python3 (which needs torch, transformers, trl, peft, deepspeed), under an
# 8-minute limit. Arguments go to gpu_check.py (e.g. --out DIR, --skip zero2, --size tiny).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${TRL_LATENT_VENV:-$HOME/.cache/trl-latent/venv}"
python="${PYTHON:-python3}"
[ -x "$venv/bin/python" ] && python="$venv/bin/python"
cd "$repo"
export PYTHONPATH="$repo/src:$repo/tests${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec timeout "${GPU_CHECK_TIMEOUT:-480}" "$python" benchmarks/gpu_check.py "$@"
