#!/usr/bin/env bash
# Create (once) and refresh the project venv outside the clone, so reruns take seconds.
#   TRL_LATENT_VENV     where the venv lives (default: ~/.cache/trl-latent/venv)
#   TRL_LATENT_TORCH    torch/torchvision pair installed first (default: the pair known to work on CPU-only machines
#                       that also runs on CUDA; set it to your own pair, e.g. "torch torchvision")
# Prints the venv path on its last line.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${TRL_LATENT_VENV:-$HOME/.cache/trl-latent/venv}"
torch_spec="${TRL_LATENT_TORCH:-torch==2.14.1 torchvision==0.29.1}"
extras="eval,datagen,deepspeed,dev"
stamp="$venv/.trl-latent-stamp"
want="$( (cat "$repo/pyproject.toml"; echo "$torch_spec $extras") | sha256sum | cut -d' ' -f1)"

if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating $venv" >&2
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip -q --disable-pip-version-check)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing $torch_spec and trl-latent[$extras] (first run: a few minutes)" >&2
  # shellcheck disable=SC2086
  "${pip[@]}" install $torch_spec 2>&1 | grep -v "^WARNING: Location" >&2 || true
  "${pip[@]}" install -e "$repo[$extras]" 2>&1 | grep -v "^WARNING: Location" >&2 || true
  "$venv/bin/python" -c "import torch, torchvision, trl, transformers" >&2
  echo "$want" > "$stamp"
fi
# the editable install must point at this clone (CI clones afresh each run)
installed="$("$venv/bin/python" -c 'import trl_latent, os; print(os.path.dirname(os.path.dirname(os.path.dirname(trl_latent.__file__))))' 2>/dev/null || true)"
if [ "$installed" != "$repo" ]; then
  echo "[setup] pointing the editable install at $repo" >&2
  "${pip[@]}" install --no-deps -e "$repo" 2>&1 | grep -v "^WARNING: Location" >&2 || true
fi
echo "$venv"
