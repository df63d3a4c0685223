# Sourced by setup_env.sh and lock.sh: one place that knows the torch pair, the extras and how uv finds packages.
#   TRL_LATENT_TORCH   the torch/torchvision pair (default: the pair known to work on CPU-only machines that also runs
#                      on CUDA; e.g. "torch torchvision" to take your own)
#   UV_VERSION         the uv used to install (pinned so a fresh machine resolves the same way CI did)
torch_spec="${TRL_LATENT_TORCH:-torch==2.14.1 torchvision==0.29.1}"
extras="eval,datagen,deepspeed,annotate,ray,dev"
uv_version="${UV_VERSION:-0.13.9}"

# uv does not read pip's configuration. Where pip is set up to find packages elsewhere too (a wheel folder, a mirror,
# extra indexes: pip.conf or PIP_* variables), hand the same places to uv, unless UV_* already says where to look.
# On a machine with a plain pip this adds nothing and uv uses PyPI, as pip does.
uv_sources_from_pip() {
  local py="$1" value
  if [ -z "${UV_INDEX_URL:-}${UV_DEFAULT_INDEX:-}" ]; then
    value="$("$py" -m pip config get global.index-url 2>/dev/null || true)"
    value="${PIP_INDEX_URL:-$value}"
    [ -n "$value" ] && export UV_DEFAULT_INDEX="$value"
  fi
  if [ -z "${UV_EXTRA_INDEX_URL:-}${UV_INDEX:-}" ]; then
    value="$("$py" -m pip config get global.extra-index-url 2>/dev/null || true)"
    value="${PIP_EXTRA_INDEX_URL:-$value}"
    [ -n "$value" ] && export UV_EXTRA_INDEX_URL="$value"
  fi
  if [ -z "${UV_FIND_LINKS:-}" ]; then
    value="$("$py" -m pip config get global.find-links 2>/dev/null || true)"
    value="${PIP_FIND_LINKS:-$value}"
    [ -n "$value" ] && export UV_FIND_LINKS="$value"
  fi
  # a package may sit on several of those places (e.g. torch on a local wheel folder and on PyPI): take the best match
  # across all of them, as pip does, instead of uv's default of the first place that has the name at all
  export UV_INDEX_STRATEGY="${UV_INDEX_STRATEGY:-unsafe-best-match}"
}

# Print the lines of a lock without the torch pair's own closure (torch, torchvision, triton, CUDA wheels), for a user
# who brings another torch: everything else stays pinned.
lock_without_torch() {
  grep -v -E '^(torch|torchvision|triton|nvidia-[a-z0-9-]+|cuda-[a-z0-9-]+)==' "$1"
}

# Make sure "$1" (a venv) has the pinned uv; print its path.
ensure_uv() {
  local venv="$1"
  if [ "$("$venv/bin/uv" --version 2>/dev/null | cut -d' ' -f2)" != "$uv_version" ]; then
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "uv==$uv_version" 2>&1 \
      | grep -v "^WARNING: Location" >&2 || true
  fi
  echo "$venv/bin/uv"
}
