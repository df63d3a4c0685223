#!/usr/bin/env bash
# Create (once) and refresh the project venv outside the clone, so reruns take about a second.
#   TRL_LATENT_VENV   where the venv lives (default: ~/.cache/trl-latent/venv)
#   TRL_LATENT_TORCH  the torch/torchvision pair (see scripts/_uv.sh); another pair drops torch's own closure from the lock
#   TRL_LATENT_LOCK   the lock to install (default: requirements/lock.txt, what CI tested); "none" resolves the newest
#                     versions pyproject.toml allows instead (the drift check: scripts/test.sh --latest)
# Installs with uv (about 3x faster than pip on a fresh machine). Prints the venv path on its last line.
set -euo pipefail
repo="$(cd -P "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"  # -P: also when reached through a symlink
# shellcheck source=scripts/_uv.sh
source "$repo/scripts/_uv.sh"
venv="${TRL_LATENT_VENV:-$HOME/.cache/trl-latent/venv}"
lock="${TRL_LATENT_LOCK:-$repo/requirements/lock.txt}"
stamp="$venv/.trl-latent-stamp"
want="$( (cat "$repo/pyproject.toml"; [ "$lock" = none ] || cat "$lock"; echo "$torch_spec $extras $uv_version $lock") \
  | sha256sum | cut -d' ' -f1)"

if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating $venv" >&2
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  uv="$(ensure_uv "$venv")"
  uv_sources_from_pip "$venv/bin/python"
  uv_pip=("$uv" pip install -q --python "$venv/bin/python")
  # shellcheck disable=SC2206
  torch_args=($torch_spec)
  if [ "$lock" = none ]; then
    echo "[setup] installing $torch_spec and the newest trl-latent[$extras] dependencies (no lock)" >&2
    "${uv_pip[@]}" "${torch_args[@]}" -e "$repo[$extras]"
  else
    [ -f "$lock" ] || { echo "[setup] no lock at $lock (TRL_LATENT_LOCK=none resolves without one)" >&2; exit 1; }
    echo "[setup] installing $torch_spec and trl-latent[$extras] pinned by $lock (first run: about a minute)" >&2
    if [ -z "${TRL_LATENT_TORCH:-}" ]; then
      "${uv_pip[@]}" -r "$lock"
    else
      "${uv_pip[@]}" "${torch_args[@]}" -r <(lock_without_torch "$lock")
    fi
    # the project itself, without letting it move any pinned version
    "${uv_pip[@]}" --no-deps -e "$repo[$extras]"
  fi
  # pip's check, not uv's: uv flags decord 0.6.0, whose only wheel is mis-tagged cp36 but loads fine
  "$venv/bin/python" -m pip check -q --disable-pip-version-check >&2
  "$venv/bin/python" -c "import torch, torchvision, trl, transformers, lmms_eval.evaluator" >&2
  echo "$want" > "$stamp"
fi
# the editable install must point at this clone (CI clones afresh each run)
installed="$("$venv/bin/python" -c 'import trl_latent, os; print(os.path.dirname(os.path.dirname(os.path.dirname(trl_latent.__file__))))' 2>/dev/null || true)"
if [ "$installed" != "$repo" ]; then
  echo "[setup] pointing the editable install at $repo" >&2
  "$(ensure_uv "$venv")" pip install -q --python "$venv/bin/python" --no-deps -e "$repo" >&2
fi
echo "$venv"
