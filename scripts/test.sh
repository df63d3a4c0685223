#!/usr/bin/env bash
# Run the whole test suite (CPU, offline) in the project venv, on every core; extra arguments go to pytest.
#   bash scripts/test.sh             the locked environment (requirements/lock.txt), what CI runs
#   bash scripts/test.sh --latest    the drift check: the newest versions pyproject.toml allows, in a throw-away venv
#                                    ($TRL_LATENT_LATEST_VENV, default /tmp/trl-latent-latest/venv, made anew), printing
#                                    which versions differ from the lock before the tests run
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "${1:-}" = "--latest" ]; then
  shift
  export TRL_LATENT_LOCK=none TRL_LATENT_VENV="${TRL_LATENT_LATEST_VENV:-${TMPDIR:-/tmp}/trl-latent-latest/venv}"
  rm -rf "$TRL_LATENT_VENV"
  venv="$(bash "$repo/scripts/setup_env.sh" | tail -n 1)"
  echo "[drift] versions that differ from requirements/lock.txt (lock → newest allowed):" >&2
  "$venv/bin/python" - "$repo/requirements/lock.txt" <<'PY' >&2
import importlib.metadata as md, re, sys
norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()
locked = dict(line.strip().split("==", 1) for line in open(sys.argv[1]) if "==" in line)
locked = {norm(k): v for k, v in locked.items()}
installed = {norm(d.metadata["Name"]): d.version for d in md.distributions()}
rows = [f"  {name}: {locked.get(name, '-')} → {installed.get(name, '-')}" for name in sorted(set(locked) | set(installed))
        if name not in ("trl-latent", "pip", "uv") and locked.get(name) != installed.get(name)]
print("\n".join(rows) or "  none")
PY
else
  venv="$(bash "$repo/scripts/setup_env.sh" | tail -n 1)"
fi
cd "$repo"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# One intra-op thread: the tests' models are tiny, so a second thread buys nothing but synchronisation, and when
# another job holds a core, torch's waiting threads slow a step many times over (docs/install.md, "Suite time").
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# One pytest-xdist worker per core (at most 4: each holds torch and its tiny models), a test file per worker so that
# module fixtures are built once; TRL_LATENT_TEST_WORKERS=0 runs in this process (a later -n on the command line wins).
cores="$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)"  # nproc itself answers OMP_NUM_THREADS when it is set
workers="${TRL_LATENT_TEST_WORKERS:-$(( cores < 4 ? cores : 4 ))}"
exec "$venv/bin/python" -m pytest -q -n "$workers" --dist loadfile "$@"
