"""The README's Use block runs as written, top to bottom, on a fresh folder (a new user's first commands)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def use_block() -> str:
    """The first ```bash block under the README's ``## Use`` heading."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Use", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert found, "README.md: no ```bash block under ## Use"
    return found.group(1)


def fresh_shell_env() -> dict[str, str]:
    """What a new login shell on this machine has, and nothing the README does not say: no venv on PATH.

    Kept from the machine: HOME, the language, the offline switches this test machine runs under (no Hub here), and
    ``TRL_LATENT_VENV``, the venv override the README documents, pointed at the venv running the tests so that
    ``setup_env.sh`` reuses it instead of building the default one.
    """
    env = {"HOME": os.environ["HOME"], "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "LANG": os.environ.get("LANG", "C.UTF-8"), "TRL_LATENT_VENV": sys.prefix,
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.update({k: v for k, v in os.environ.items() if k in ("OMP_NUM_THREADS", "TMPDIR", "UV_CACHE_DIR")})
    return env


def test_the_use_block_reaches_the_venv_itself():
    """A new user's shell has no venv on PATH: the block itself must enter the one the set-up made."""
    first = next(line for line in use_block().splitlines() if line.strip() and not line.startswith("#"))
    assert "scripts/setup_env.sh" in first and "bin/activate" in first, first
    run = subprocess.run(["bash", "-c", "command -v trl-latent || echo none"], env=fresh_shell_env(),
                         capture_output=True, text=True)
    assert run.stdout.strip() == "none" or not run.stdout.startswith(sys.prefix)


@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("model_type", [None, "qwen3_vl"])
def test_readme_use_block_runs_as_written(tmp_path, model_type):
    """As written, and with ``--model_type qwen3_vl`` given to ``init-tiny`` (the rest of the block unchanged)."""
    # a fresh folder that reaches the clone's examples and scripts the way the commands name them
    (tmp_path / "examples").symlink_to(REPO / "examples")
    (tmp_path / "scripts").symlink_to(REPO / "scripts")
    block = use_block()
    if model_type:
        assert "trl-latent init-tiny outputs/" in block
        block = block.replace("trl-latent init-tiny outputs/", f"trl-latent init-tiny --model_type {model_type} outputs/")
    script = "set -euxo pipefail\n" + block
    run = subprocess.run(["bash", "--noprofile", "--norc", "-c", script], cwd=tmp_path, env=fresh_shell_env(),
                         capture_output=True, text=True)
    assert run.returncode == 0, f"README Use block failed (exit {run.returncode}):\n{run.stderr[-6000:]}"
    # each stage wrote what the next one reads, and both evaluations printed a score table
    for path in ("outputs/tiny-qwen2.5-vl/config.json", "data/synth_out/export/dift.jsonl",
                 "data/synth_out/export/rl.jsonl", "data/synth_out/export/benchmark/benchmark.parquet",
                 "outputs/dift-tiny/config.json", "outputs/4drl-tiny/config.json"):
        assert (tmp_path / path).is_file(), path
    assert list(tmp_path.glob("outputs/eval/*/*_summary.json")) and list(tmp_path.glob("outputs/eval/*/*_results.json"))
    assert "dsr_bench_think" in run.stdout and "|dsr_bench" in run.stdout.replace(" ", "")
    config = json.loads((tmp_path / "outputs/4drl-tiny/config.json").read_text())
    assert config["model_type"] == (model_type or "qwen2_5_vl")
